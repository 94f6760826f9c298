"""A real nginx with WebDAV PUT on 127.0.0.1, serving as a Bazel HTTP cache.

What a Bazel HTTP cache needs of nginx: `dav_methods PUT`,
`create_full_put_path` (Bazel PUTs to `ac/<hash>` and `cas/<hash>` without
making the directories), and `user root` (without it PUT answers 500 when
the tests run as root). State lives under the given directory; `stop()`
ends the one process we started, by its pid.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from realtools import need, stop_process

_CONF = """\
{user}worker_processes 1; daemon off; pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log {root}/access.log;
  client_body_temp_path {root}/tmp;
  server {{ listen 127.0.0.1:{port};
    location / {{ root {root}/cache; dav_methods PUT DELETE;
                 create_full_put_path on; dav_access user:rw group:rw all:r;
                 client_max_body_size 0; {extra} }} }} }}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NginxCache:
    def __init__(self, root: Path, *, extra: str = "") -> None:
        self.root = root
        self.port = free_port()
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    def start(self, nginx: str) -> None:
        for d in ("cache", "tmp"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        user = "user root; " if os.geteuid() == 0 else ""
        conf = self.root / "nginx.conf"
        conf.write_text(_CONF.format(user=user, root=self.root, port=self.port, extra=self.extra))
        log = open(self.root / "stderr.log", "wb")  # noqa: SIM115 - lives as long as nginx
        self.proc = subprocess.Popen(
            [nginx, "-c", str(conf), "-p", str(self.root)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                urllib.request.urlopen(self.url + "/", timeout=2).close()
                return
            except urllib.error.HTTPError:
                return  # 403/404 for "/" still means it is serving
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            "nginx did not start: " + (self.root / "stderr.log").read_text(errors="replace")
        )

    def stop(self) -> None:
        stop_process(self.proc, timeout=10)
        self.proc = None

    def entries(self, kind: str) -> dict[str, bytes]:
        """Stored `ac` or `cas` entries (any prefix below the root) by name."""
        out: dict[str, bytes] = {}
        for p in self.cache_dir.rglob("*"):
            if p.is_file() and p.parent.name == kind:
                out[p.name] = p.read_bytes()
        return out

    def requests(self) -> list[str]:
        """Access-log lines seen so far ("METHOD /path STATUS")."""
        log = self.root / "access.log"
        if not log.exists():
            return []
        lines = []
        for line in log.read_text().splitlines():
            try:
                req = line.split('"')[1]
                status = line.split('"')[2].split()[0]
            except IndexError:
                continue
            method, path = req.split()[:2]
            lines.append(f"{method} {path} {status}")
        return lines


@contextmanager
def running_nginx(root: Path) -> Iterator[NginxCache]:
    """A started NginxCache under `root` (nginx from PATH, or skip/fail as `need` does)."""
    server = NginxCache(root)
    server.start(need("nginx"))
    try:
        yield server
    finally:
        server.stop()
