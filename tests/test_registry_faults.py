"""Registry client behaviour a real registry will not show on demand, against a small fake.

The fake speaks just enough of the distribution API (manifests, blobs, a token
endpoint) and can cut a blob mid-stream, answer 503, or demand a Bearer token,
so retries, the token flow and the no-half-stored guarantee are tested exactly.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fault_server import POLL
from strata.canonical import json_bytes
from strata.cli import main
from strata.errors import UserError
from strata.oci.digest import sha256_bytes
from strata.oci.manifest import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST
from strata.oci.platform import parse_platform
from strata.registry.auth import Credentials
from strata.registry.blobstore import BlobStore
from strata.registry.client import RegistryClient
from strata.registry.endpoint import ACCEPT, Options, Registry
from strata.registry.fetch import get_manifest
from strata.registry.pull import pull

AMD64 = parse_platform("x86_64")
LAYER = b"not really a tar, but bytes with a digest\n" * 200


@dataclass
class Fake:
    """What the fake serves and how it misbehaves; `log` records every request."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    cut_blob: int = 0
    """Cut this many blob GETs halfway (Content-Length promises the whole blob)."""
    trickle: float = 0.0
    """Send the bodies of requests whose path holds `trickled` one byte at a time, this
    many seconds apart."""
    trickled: str = "/blobs/"
    fail_503: int = 0
    bearer: bool = False
    token_needs: str = ""
    """'user:password' the token endpoint insists on, if any."""
    log: list[tuple[str, str, str]] = field(default_factory=list)
    token_requests: list[dict[str, Any]] = field(default_factory=list)


def image(layers: list[bytes]) -> tuple[bytes, bytes]:
    """(config, manifest) for `layers` as plain-tar layers (diff_id = digest)."""
    diff_ids = [sha256_bytes(b) for b in layers]
    config = json_bytes(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    )
    manifest = json_bytes(
        {
            "config": {
                "digest": sha256_bytes(config),
                "mediaType": OCI_CONFIG,
                "size": len(config),
            },
            "layers": [
                {
                    "digest": sha256_bytes(b),
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "size": len(b),
                }
                for b in layers
            ],
            "mediaType": OCI_MANIFEST,
            "schemaVersion": 2,
        }
    )
    return config, manifest


def handler_for(fake: Fake, port_box: list[int]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "HEAD":
                return
            if not fake.trickle or status != 200 or fake.trickled not in self.path:
                self.wfile.write(body)
                return
            try:  # a registry (or a proxy) that is slow, but never silent for a minute
                for i in range(len(body)):
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                    time.sleep(fake.trickle)
            except OSError:  # the client gave up
                self.close_connection = True

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            fake.log.append(("POST", self.path, self.headers.get("Authorization", "")))
            if self.path.startswith("/token"):
                fake.token_requests.append({k: v for k, v in form.items()} | {"method": "POST"})
                self._send(200, json.dumps({"access_token": "tok-refresh"}).encode())
                return
            self._send(404)

        def do_HEAD(self) -> None:  # noqa: N802
            self.do_GET()

        def do_GET(self) -> None:  # noqa: N802
            auth = self.headers.get("Authorization", "")
            fake.log.append((self.command, self.path, auth))
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/token":
                query = urllib.parse.parse_qs(url.query)
                fake.token_requests.append({k: v for k, v in query.items()} | {"auth": auth})
                want = "Basic " + base64.b64encode(fake.token_needs.encode()).decode()
                if fake.token_needs and auth != want:
                    self._send(401, b'{"details":"bad credentials"}')
                    return
                self._send(200, json.dumps({"token": "tok-1"}).encode())
                return
            if fake.fail_503 > 0:
                fake.fail_503 -= 1
                self._send(503, b"busy")
                return
            if fake.bearer and auth not in ("Bearer tok-1", "Bearer tok-refresh"):
                realm = f"http://127.0.0.1:{port_box[0]}/token"
                scope = "repository:team/app:pull"
                challenge = f'Bearer realm="{realm}",service="fake",scope="{scope}"'
                self._send(
                    401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {"WWW-Authenticate": challenge}
                )
                return
            parts = url.path.split("/")
            if len(parts) >= 5 and parts[-2] == "manifests":
                found = fake.manifests.get(parts[-1])
                if found is None:
                    self._send(
                        404,
                        b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}',
                    )
                    return
                self._send(200, found[0], {"Content-Type": found[1]})
                return
            if len(parts) >= 5 and parts[-2] == "blobs":
                data = fake.blobs.get(parts[-1])
                if data is None:
                    self._send(404)
                    return
                if fake.cut_blob > 0:
                    fake.cut_blob -= 1
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self._send(200, data)
                return
            self._send(200 if url.path == "/v2/" else 404, b"{}")

    return Handler


@contextlib.contextmanager
def served(state: Fake) -> Iterator[str]:
    """`state` answering on a local port for the length of the block; yields its URL."""
    port_box: list[int] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state, port_box))
    port_box.append(server.server_address[1])
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{port_box[0]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def fake() -> Iterator[tuple[Fake, str]]:
    state = Fake()
    with served(state) as url:
        yield state, url


def serve_image(state: Fake, layers: list[bytes]) -> str:
    config, manifest = image(layers)
    state.blobs[sha256_bytes(config)] = config
    for b in layers:
        state.blobs[sha256_bytes(b)] = b
    digest = sha256_bytes(manifest)
    state.manifests[digest] = (manifest, OCI_MANIFEST)
    state.manifests["v1"] = (manifest, OCI_MANIFEST)
    return digest


def client(address: str, sleeps: list[float] | None = None, **kw: Any) -> RegistryClient:
    rec = sleeps if sleeps is not None else []
    opts: dict[str, Any] = {"retries": 2, "backoff": 0.25, "env": {}, "sleep": rec.append}
    opts.update(kw)
    return RegistryClient(Registry.parse(address), Options(**opts))


def blob_gets(state: Fake, digest: str) -> int:
    return sum(1 for m, p, _ in state.log if m == "GET" and p.endswith(f"/blobs/{digest}"))


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
        from strata.registry.client import RegistryClient
        from strata.registry.endpoint import Options, Registry, Response

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
