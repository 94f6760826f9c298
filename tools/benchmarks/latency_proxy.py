"""A TCP proxy that adds a fixed delay to every request, for benchmarks of a remote cache
that is across a network rather than on 127.0.0.1.

Each connection's bytes are passed on as they come; the first chunk a client sends
after the server has answered (a new HTTP request on a kept-alive connection) waits
`delay` seconds first: one round trip per request, as a cache on another machine
costs. Bandwidth is not limited.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class LatencyProxy:
    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        self.upstream = upstream
        self.delay = delay
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            answered = threading.Event()
            answered.set()  # the first request waits too
            threading.Thread(
                target=self._pump, args=(client, server, answered, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(server, client, answered, False), daemon=True
            ).start()

    def _pump(
        self, src: socket.socket, dst: socket.socket, answered: threading.Event, asking: bool
    ) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(1 << 20):
                if asking and answered.is_set():
                    answered.clear()
                    self._stop.wait(self.delay)
                elif not asking:
                    answered.set()
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
