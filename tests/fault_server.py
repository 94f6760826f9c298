"""A small HTTP server whose answers a test sets per path: for remote caches and registries.

`FaultServer.routes` maps a path (or a path prefix ending in `*`) to a `Rule`:
status, body, headers, a delay before answering, and what to do with a PUT.
Unrouted GETs answer what was PUT there (a cache that works), else 404.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Rule:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class FaultServer:
    routes: dict[str, Rule] = field(default_factory=dict)
    stored: dict[str, bytes] = field(default_factory=dict)
    put_status: int = 201
    keep_puts: bool = True
    seen: list[str] = field(default_factory=list)

    def start(self) -> FaultServer:
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_a: object) -> None:
                pass

            def _rule(self) -> Rule | None:
                path = self.path.split("?")[0]
                for key, rule in state.routes.items():
                    if key == path or (key.endswith("*") and path.startswith(key[:-1])):
                        return rule
                return None

            def _answer(self, head: bool) -> None:
                state.seen.append(f"{self.command} {self.path}")
                rule = self._rule()
                if rule is None:
                    data = state.stored.get(self.path.split("?")[0])
                    rule = Rule(404) if data is None else Rule(200, data)
                if rule.delay:
                    time.sleep(rule.delay)
                self.send_response(rule.status)
                for k, v in rule.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(rule.body)))
                self.end_headers()
                if not head:
                    self.wfile.write(rule.body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's names
                self._answer(head=False)

            def do_HEAD(self) -> None:  # noqa: N802
                self._answer(head=True)

            def do_PUT(self) -> None:  # noqa: N802
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                state.seen.append(f"PUT {self.path}")
                if state.keep_puts:
                    state.stored[self.path] = data
                self.send_response(state.put_status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
