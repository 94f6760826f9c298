"""A small HTTP server whose answers a test sets per path: for remote caches and registries.

`FaultServer.routes` maps a path (or a path prefix ending in `*`) to a `Rule`:
status, body, headers, a delay before answering, a body cut short or a
connection dropped without an answer, and the methods it applies to (a PUT
it answers is not stored: a lost upload). The longest matching key wins.
Unrouted GETs and HEADs answer what was PUT there (a cache that works), else
404; unrouted PUTs are stored.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

POLL = 0.02
"""How often a test server's loop looks for `shutdown()`: the default, 0.5 s, was the
longest part of many tests' teardown."""


@dataclass
class Rule:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    cut: bool = False
    """Promise the whole body in Content-Length, send half of it, close."""
    drop: bool = False
    """Close the connection without answering."""
    methods: tuple[str, ...] = ("GET", "HEAD")


@dataclass
class FaultServer:
    routes: dict[str, Rule] = field(default_factory=dict)
    stored: dict[str, bytes] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)

    def rule(self, method: str, path: str) -> Rule | None:
        best: tuple[int, Rule] | None = None
        for key, rule in list(self.routes.items()):
            hit = key == path or (key.endswith("*") and path.startswith(key[:-1]))
            if hit and method in rule.methods and (best is None or len(key) > best[0]):
                best = (len(key), rule)
        return None if best is None else best[1]

    def start(self) -> FaultServer:
        state = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_a: object) -> None:
                pass

            def _send(self, rule: Rule) -> None:
                if rule.delay:
                    time.sleep(rule.delay)
                if rule.drop:
                    self.close_connection = True
                    return
                self.send_response(rule.status)
                for k, v in rule.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(rule.body)))
                if rule.cut:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(rule.body[: len(rule.body) // 2] if rule.cut else rule.body)

            def _answer(self) -> None:
                path = self.path.split("?")[0]
                state.seen.append(f"{self.command} {self.path}")
                rule = state.rule(self.command, path)
                if rule is None:
                    data = state.stored.get(path)
                    rule = Rule(404) if data is None else Rule(200, data)
                self._send(rule)

            def do_GET(self) -> None:  # noqa: N802 - http.server's names
                self._answer()

            def do_HEAD(self) -> None:  # noqa: N802
                self._answer()

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer()

            def do_PUT(self) -> None:  # noqa: N802
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?")[0]
                state.seen.append(f"PUT {self.path}")
                rule = state.rule("PUT", path)
                if rule is not None:
                    self._send(rule)
                    return
                state.stored[path] = data
                self._send(Rule(201))

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                """A client that gave up (a timeout, on purpose) is no error of the server's."""
                import sys

                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)  # type: ignore[arg-type]

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": POLL}, daemon=True
        )
        self.thread.start()
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
