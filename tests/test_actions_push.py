"""ImagePush names the image_push target in its errors, not its request file."""

from __future__ import annotations

from pathlib import Path

import pytest

from strata.actions.image_push import run
from strata.errors import UserError


def request(tmp_path: Path, **extra: object) -> dict[str, object]:
    return {
        "image": str(tmp_path / "missing.tar"),
        "registry": "127.0.0.1:1",
        "repository": "team/app",
        "schema_version": 1,
        "tags": ["bad tag with spaces", ""],
        **extra,
    }


def test_errors_name_the_label(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        run(request(tmp_path, label="//app:push"), "bazel-out/k8-fastbuild/bin/app/push.push.json")
    assert err.value.where == "//app:push"
    assert str(err.value).startswith("//app:push: tags must be a list of non-empty strings")


def test_without_a_label_the_request_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        run(request(tmp_path), "push.push.json")
    assert err.value.where == "push.push.json"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"repository": "team/app\ntouch /tmp/x"},
            "invalid repository (got 'team/app\\ntouch /tmp/x')",
        ),
        ({"repository": "team/$(touch x)"}, "invalid repository (got 'team/$(touch x)')"),
        ({"tags": ["1.0", "v1;rm"]}, "invalid tag (got 'v1;rm')"),
        ({"mount_from": "a`b`"}, "invalid mount_from (got 'a`b`')"),
        ({"registry": "host:99999"}, "invalid registry address (got 'host:99999')"),
        ({"registry": "h\nx"}, "invalid registry address (got 'h\\nx')"),
    ],
)
def test_names_are_checked_before_anything_is_read(
    tmp_path: Path, extra: dict[str, object], message: str
) -> None:
    req = request(tmp_path, label="//app:push", tags=["1.0"]) | extra
    with pytest.raises(UserError) as err:
        run(req, "push.push.json")
    assert str(err.value).startswith(f"//app:push: {message}; use ")


@pytest.mark.parametrize("content", [None, b"not a certificate\n"])
def test_unreadable_ca_file_is_one_error_naming_the_target(
    tmp_path: Path, content: bytes | None
) -> None:
    ca = tmp_path / "ca.pem"
    if content is not None:
        ca.write_bytes(content)
    req = request(tmp_path, label="//app:push", tags=["1.0"], ca_file=str(ca))
    with pytest.raises(UserError) as err:
        run(req, "push.push.json")
    assert str(err.value).startswith(
        f"//app:push: cannot read ca_file as PEM certificates (got {str(ca)!r}: "
    )
    assert str(err.value).endswith("give the absolute path of the registry's CA certificate file")
