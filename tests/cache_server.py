"""An in-process HTTP cache server for the tests (Bazel's HTTP cache protocol: GET, HEAD
and PUT of `<prefix>/ac/<key>` and `<prefix>/cas/<sha256>`), which records every
request and can be told to delay, garble, lose or refuse."""

from __future__ import annotations

import hashlib
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fault_server import POLL


class CacheServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), CacheHandler)
        self.data: dict[str, bytes] = {}
        self.log: list[tuple[str, str, dict[str, str], bytes]] = []
        self.miss_status = 404
        self.miss_headers: dict[str, str] = {}
        self.put_status = 200
        self.delay = 0.0
        self.on_get: Callable[[str, bytes], bytes] = lambda _path, data: data
        """What a GET answers instead of the stored bytes (a server that garbles)."""
        self.on_put: Callable[[str, bytes], bytes | None] = lambda _path, data: data
        """What a PUT stores (None: nothing, though the answer is 200)."""


class CacheHandler(http.server.BaseHTTPRequestHandler):
    server: CacheServer

    def log_message(self, *args: object) -> None:
        pass

    def _record(self, body: bytes = b"") -> None:
        self.server.log.append((self.command, self.path, dict(self.headers), body))
        if self.server.delay:
            time.sleep(self.server.delay)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._record()
        data = self.server.data.get(self.path)
        if data is None:
            self.send_response(self.server.miss_status)
            for name, value in self.server.miss_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = self.server.on_get(self.path, data)
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_HEAD(self) -> None:  # noqa: N802
        self._record()
        data = self.server.data.get(self.path)
        self.send_response(200 if data is not None else 404)
        self.send_header("Content-Length", str(len(data or b"")))
        self.end_headers()

    def do_PUT(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", "-1"))
        body = self.rfile.read(length) if length >= 0 else b""
        self._record(body)
        stored = self.server.on_put(self.path, body)
        if self.server.put_status < 300 and stored is not None:
            self.server.data[self.path] = stored
        self.send_response(self.server.put_status)
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextmanager
def serving() -> Iterator[CacheServer]:
    srv = CacheServer()
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": POLL}, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def cache_url(srv: CacheServer, prefix: str = "/team") -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}{prefix}"


def sha_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
