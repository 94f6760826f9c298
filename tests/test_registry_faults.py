"""Registry client behaviour a real registry will not show on demand, against a small fake
(fake_registry.py).

The fake speaks just enough of the distribution API (manifests, blobs, a token
endpoint) and can cut a blob mid-stream, answer 503, or demand a Bearer token,
so retries, the token flow and the no-half-stored guarantee are tested exactly.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fake_registry import (
    AMD64,
    LAYER,
    Fake,
    blob_gets,
    client,
    image,
    serve_image,
    served,
)
from strata.cli import main
from strata.errors import UserError
from strata.oci.digest import sha256_bytes
from strata.oci.manifest import OCI_INDEX, OCI_MANIFEST
from strata.registry.auth import Credentials
from strata.registry.blobstore import BlobStore
from strata.registry.client import RegistryClient
from strata.registry.endpoint import ACCEPT, Options, Registry
from strata.registry.fetch import get_manifest
from strata.registry.pull import pull


@pytest.fixture
def fake() -> Iterator[tuple[Fake, str]]:
    state = Fake()
    with served(state) as url:
        yield state, url


def test_connection_cut_mid_blob_retries_then_fails_storing_nothing(
    tmp_path: Path, fake: tuple[Fake, str]
) -> None:
    state, address = fake
    digest = serve_image(state, [LAYER])
    state.cut_blob = 100
    store = BlobStore(tmp_path / "store")
    sleeps: list[float] = []
    with pytest.raises(UserError) as e:
        pull(client(address, sleeps), store, "team/app", digest, AMD64, tmp_path / "o", None, "p")
    layer = sha256_bytes(LAYER)
    config = sha256_bytes(image([LAYER])[0])
    assert str(e.value).startswith(
        f"p: connection lost while fetching blob {config} from {address} after 3 attempts (got "
    )
    assert "nothing was stored" in str(e.value)
    assert blob_gets(state, config) == 3 and blob_gets(state, layer) == 0
    assert sleeps == [0.25, 0.5]
    assert not [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert not (tmp_path / "o").exists()


def test_connection_cut_twice_then_whole_blob(tmp_path: Path, fake: tuple[Fake, str]) -> None:
    state, address = fake
    digest = serve_image(state, [LAYER])
    state.cut_blob = 2
    store = BlobStore(tmp_path / "store")
    got = pull(client(address), store, "team/app", digest, AMD64, tmp_path / "o", None, "p")
    assert got.blobs_fetched == 2
    assert store.path(sha256_bytes(LAYER)).read_bytes() == LAYER
    assert blob_gets(state, sha256_bytes(image([LAYER])[0])) == 3


def test_503_is_retried_with_doubling_backoff(fake: tuple[Fake, str]) -> None:
    state, address = fake
    digest = serve_image(state, [LAYER])
    state.fail_503 = 2
    sleeps: list[float] = []
    assert get_manifest(client(address, sleeps), "team/app", digest, "p").digest == digest
    assert sleeps == [0.25, 0.5]
    state.fail_503 = 10
    with pytest.raises(UserError, match=r"after 3 attempts \(got HTTP 503\)"):
        get_manifest(client(address), "team/app", digest, "p")


def test_accept_header_lists_oci_and_docker_types(fake: tuple[Fake, str]) -> None:
    state, address = fake
    serve_image(state, [LAYER])
    for media_type in (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ):
        assert media_type in ACCEPT


def test_anonymous_bearer_token_flow(tmp_path: Path, fake: tuple[Fake, str]) -> None:
    state, address = fake
    digest = serve_image(state, [LAYER])
    state.bearer = True
    store = BlobStore(tmp_path / "store")
    got = pull(client(address), store, "team/app", digest, AMD64, tmp_path / "o", None, "p")
    assert got.blobs_fetched == 2
    assert len(state.token_requests) == 1  # one token per scope, reused for every request
    req = state.token_requests[0]
    assert req["scope"] == ["repository:team/app:pull"] and req["service"] == ["fake"]
    assert req["auth"] == ""
    authed = [a for _, p, a in state.log if "/blobs/" in p]
    assert authed and all(a == "Bearer tok-1" for a in authed)


def test_bearer_token_with_credentials(tmp_path: Path, fake: tuple[Fake, str]) -> None:
    state, address = fake
    digest = serve_image(state, [LAYER])
    state.bearer = True
    state.token_needs = "alice:pw"
    with pytest.raises(UserError) as e:
        get_manifest(client(address), "team/app", digest, "p")
    assert str(e.value).startswith(
        f"p: registry requires authentication for GET /v2/team/app/manifests/{digest} "
        "(got HTTP 401 UNAUTHORIZED: None); log in"
    )
    c = client(address, credentials=Credentials("alice", "pw"))
    assert get_manifest(c, "team/app", digest, "p").digest == digest
    # An identity token (docker login with OAuth) is exchanged by POST grant_type=refresh_token.
    c = client(address, credentials=Credentials(identity_token="refresh-me"))
    state.token_needs = ""
    assert get_manifest(c, "team/app", digest, "p").digest == digest
    posted = state.token_requests[-1]
    assert posted["method"] == "POST" and posted["refresh_token"] == ["refresh-me"]
    assert posted["grant_type"] == ["refresh_token"]


def test_manifest_digest_mismatch(tmp_path: Path, fake: tuple[Fake, str]) -> None:
    state, address = fake
    digest = serve_image(state, [LAYER])
    other = serve_image(state, [LAYER + b"x"])
    state.manifests[digest] = state.manifests[other]
    with pytest.raises(UserError) as e:
        pull(client(address), BlobStore(tmp_path / "s"), "team/app", digest, AMD64,
             tmp_path / "o", None, "p")  # fmt: skip
    assert str(e.value) == (
        f"p: manifest digest mismatch (got {other}, expected {digest}) for team/app; "
        "the registry served different content than the pinned digest"
    )
    assert not (tmp_path / "o").exists()


def test_manifest_unknown_message(fake: tuple[Fake, str]) -> None:
    _, address = fake
    with pytest.raises(UserError) as e:
        get_manifest(client(address), "team/app", "nope", "p")
    assert str(e.value) == (
        "p: not found: GET /v2/team/app/manifests/nope (got HTTP 404 MANIFEST_UNKNOWN: "
        "manifest unknown); check the repository, tag and digest"
    )


def test_error_bodies_of_any_shape_give_one_line() -> None:
    # Found by tools/fuzz (registry-pull): `"errors": 5` was a TypeError traceback.
    from strata.registry.endpoint import error_codes

    assert error_codes(b'{"errors": 5}') == ""
    assert error_codes(b'{"errors": ["x"]}') == ""
    assert error_codes(b'{"errors": [{"code": "DENIED", "message": "no\\nway"}]}') == (
        "DENIED: no way"
    )


class _Canned:
    """A RegistryClient transport that answers GETs from a dict of path -> body."""

    @staticmethod
    def client(bodies: dict[str, bytes]) -> Any:
        from strata.registry.endpoint import Response

        class Client(RegistryClient):
            def _send(self, method: str, url: str, headers: Any, body: Any, **kw: Any) -> Any:
                path = urllib.parse.urlsplit(url).path
                data = bodies.get(path)
                return Response(404, {}, b"") if data is None else Response(200, {}, data)

        return Client(Registry.parse("http://reg.test"), Options(retries=0, env={}))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (b"\xff\xfe", "config sha256:"),
        (b"[1]", "config sha256:"),
        (b'{"architecture": "amd64", "os": "linux", "rootfs": 3}', "manifest lists 0 layers but"),
    ],
)
def test_a_config_of_the_wrong_shape_is_one_error(
    tmp_path: Path, config: bytes, message: str
) -> None:
    # Found by tools/fuzz (registry-pull): UnicodeDecodeError, AttributeError, TypeError.
    from strata.oci.digest import sha256_bytes
    from strata.oci.platform import Platform
    from strata.registry.blobstore import BlobStore
    from strata.registry.pull import pull

    digest = sha256_bytes(config)
    manifest = json.dumps(
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"digest": digest, "size": len(config)},
            "layers": [],
        }
    ).encode()
    client = _Canned.client({"/v2/r/manifests/t": manifest, f"/v2/r/blobs/{digest}": config})
    with pytest.raises(UserError) as e:
        pull(client, BlobStore(tmp_path / "s"), "r", "t", Platform("amd64"), tmp_path / "l",
             None, "pull")  # fmt: skip
    assert str(e.value).startswith(f"pull: {message}"), str(e.value)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "l").exists()


# -- a registry that is never silent long enough to time out, but never done -------------


def test_a_trickling_manifest_is_stopped_by_the_minimum_rate(
    tmp_path: Path, fake: tuple[Fake, str]
) -> None:
    state, address = fake
    digest = serve_image(state, [LAYER])
    state.trickle = 0.02  # 50 bytes a second: every read is well within the read timeout
    state.trickled = "/manifests/"
    slow = client(address, min_rate=1000.0, rate_window=0.5)
    with pytest.raises(UserError) as e:
        pull(slow, BlobStore(tmp_path / "s"), "team/app", digest, AMD64, tmp_path / "o", None,
             "p")  # fmt: skip
    assert re.fullmatch(
        rf"p: registry {address} sends GET /v2/team/app/manifests/{digest} too slowly \(got "
        r"\d+ bytes in 1 s, less than 1000 bytes a second\); check the network and the "
        "registry, then pull again",
        str(e.value),
    ), str(e.value)
    assert not (tmp_path / "o").exists()


def test_a_trickling_layer_is_stopped_and_nothing_is_stored(
    tmp_path: Path, fake: tuple[Fake, str]
) -> None:
    state, address = fake
    digest = serve_image(state, [LAYER])
    slow = client(address, min_rate=1000.0, rate_window=0.5)
    manifest = get_manifest(slow, "team/app", digest, "p")
    config = sha256_bytes(image([LAYER])[0])
    state.trickle = 0.02
    with pytest.raises(UserError, match=rf"^p: registry {address} sends blob {config} too slowly"):
        pull(slow, BlobStore(tmp_path / "s"), "team/app", manifest.digest, AMD64, tmp_path / "o",
             None, "p")  # fmt: skip
    assert not [p for p in (tmp_path / "s").rglob("*") if p.is_file()]
    assert not (tmp_path / "o").exists()


def test_a_deadline_bounds_the_whole_pull(tmp_path: Path, fake: tuple[Fake, str]) -> None:
    state, address = fake
    digest = serve_image(state, [LAYER])
    state.trickle = 0.001  # fast enough for any minimum rate, too slow for the deadline
    slow = client(address, min_rate=0.0, deadline=0.5)
    with pytest.raises(UserError) as e:
        pull(slow, BlobStore(tmp_path / "s"), "team/app", digest, AMD64, tmp_path / "o", None,
             "p")  # fmt: skip
    assert re.fullmatch(
        rf"p: talking to registry {address} took longer than the deadline \(got 0.5 s, stopped "
        rf"during blob {sha256_bytes(LAYER)}\); check the network and the registry, or raise "
        "pull_image's timeout",
        str(e.value),
    ), str(e.value)
    stored = [p.name for p in (tmp_path / "s").rglob("*") if p.is_file()]
    assert stored == [sha256_bytes(image([LAYER])[0]).split(":")[1]]  # the config, whole


NOT_MANIFESTS = {
    "not JSON": (b"<html>login here</html>", r"is not JSON \(got Expecting value: .*\)"),
    "JSON, not an object": (b"[1, 2]", r"is not a JSON object \(got list\)"),
    "a manifest without layers": (
        b'{"config": {"digest": "sha256:' + b"0" * 64 + b'", "size": 2}, "schemaVersion": 2}',
        r"\(application/vnd.oci.image.manifest.v1\+json\) lacks layers",
    ),
    "an index without manifests": (
        b'{"schemaVersion": 2}',
        r"\(application/vnd.oci.image.index.v1\+json\) lacks manifests",
    ),
}


@pytest.mark.parametrize("case", sorted(NOT_MANIFESTS))
def test_pull_digest_never_pins_what_is_not_a_manifest(
    fake: tuple[Fake, str], capsys: pytest.CaptureFixture[str], case: str
) -> None:
    state, address = fake
    body, expected = NOT_MANIFESTS[case]
    media_type = OCI_INDEX if "index" in case else OCI_MANIFEST
    state.manifests["junk"] = (body, media_type)
    host = address.removeprefix("http://")
    assert main(["pull-digest", "--plain-http", f"{host}/team/app:junk"]) == 1
    out, err = capsys.readouterr()
    assert out == ""  # no pull_image(...) to paste
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert re.fullmatch(
        rf"error: strata pull-digest: manifest sha256:[0-9a-f]{{64}} {expected}; the registry "
        "did not serve an image manifest: check the repository and tag",
        lines[0],
    ), lines[0]
