from __future__ import annotations

import pytest

from strata.errors import UserError
from strata.oci.platform import Platform, parse_platform


@pytest.mark.parametrize(
    ("name", "arch", "variant"),
    [
        ("x86_64", "amd64", ""),
        ("amd64", "amd64", ""),
        ("aarch64", "arm64", ""),
        ("arm64", "arm64", ""),
        ("armv7l", "arm", "v7"),
        ("armv6l", "arm", "v6"),
        ("i686", "386", ""),
        ("i386", "386", ""),
        ("ppc64le", "ppc64le", ""),
        ("s390x", "s390x", ""),
        ("riscv64", "riscv64", ""),
        ("X86_64", "amd64", ""),
    ],
)
def test_goarch(name: str, arch: str, variant: str) -> None:
    p = parse_platform(name)
    assert (p.architecture, p.os, p.variant) == (arch, "linux", variant)


def test_to_json_omits_empty_variant() -> None:
    assert parse_platform("x86_64").to_json() == {"architecture": "amd64", "os": "linux"}
    assert parse_platform("armv7l").to_json() == {
        "architecture": "arm",
        "os": "linux",
        "variant": "v7",
    }
    assert str(parse_platform("armv7l")) == "linux/arm/v7"


def test_unknown_architecture_lists_known() -> None:
    with pytest.raises(UserError) as e:
        parse_platform("pdp11", where="req.json")
    msg = str(e.value)
    assert msg.startswith("req.json: unknown architecture (got 'pdp11'); use one of: ")
    assert "aarch64" in msg and "x86_64" in msg and "armv7l" in msg


def test_unknown_os() -> None:
    with pytest.raises(UserError, match=r"unknown os \(got 'plan9'\); use one of: linux"):
        parse_platform("x86_64", "plan9")


def test_matching_ignores_missing_variant() -> None:
    want = parse_platform("arm64")
    assert want.matches(Platform("arm64", "linux", "v8"))
    assert not want.matches(Platform("amd64", "linux"))
    assert not parse_platform("armv7l").matches(Platform("arm", "linux", "v6"))
    assert parse_platform("armv7l").matches(Platform("arm", "linux"))


@pytest.mark.parametrize("value", ["linux/amd64", None, ["amd64"], 3])
def test_a_platform_that_is_not_an_object_names_nothing(value: object) -> None:
    # Found by tools/fuzz (registry-pull, oci-layout): index entries from outside hold anything.
    assert Platform.from_json(value) == Platform("", "", "")
    assert not Platform("amd64").matches(Platform.from_json(value))
