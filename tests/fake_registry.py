"""A small fake registry (tests/test_registry_faults.py, test_rules_inputs.py): just enough
of the distribution API (manifests, blobs, a token endpoint) to cut a blob mid-stream,
answer 503 or demand a Bearer token, and a log of every request."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fault_server import POLL
from strata.canonical import json_bytes
from strata.oci.digest import sha256_bytes
from strata.oci.manifest import OCI_CONFIG, OCI_MANIFEST
from strata.oci.platform import parse_platform
from strata.registry.client import RegistryClient
from strata.registry.endpoint import Options, Registry

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
