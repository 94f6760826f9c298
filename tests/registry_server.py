"""Debian's docker-registry (CNCF distribution 2.8) on 127.0.0.1 for the registry tests.

Three set-ups: plain HTTP, htpasswd basic auth, and TLS with a self-signed
certificate made by openssl (for 127.0.0.1, so the CA file is the certificate).
State lives under a temporary directory; the server is stopped by its PID.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import warnings
from pathlib import Path

import urllib3

from realtools import need, run, stop_process, unavailable

USER = "strata"
PASSWORD = "s3cret-pass"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RegistryServer:
    """One registry process; `mode` is "plain", "htpasswd" or "tls"."""

    def __init__(self, root: Path, mode: str = "plain", *, access_log: bool = False) -> None:
        self.root = root
        self.mode = mode
        self.access_log = access_log
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.storage = root / "storage"
        self.cert = root / "cert.pem"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        """The registry address as strata takes it (plain HTTP needs the scheme)."""
        return self.host if self.mode == "tls" else f"http://{self.host}"

    def blob_data(self, digest: str) -> Path:
        """Where the registry keeps a blob's bytes (tests corrupt it there)."""
        hexpart = digest.partition(":")[2]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"

    def _config(self) -> str:
        lines = [
            "version: 0.1",
            f"log: {{level: warn, accesslog: {{disabled: {str(not self.access_log).lower()}}}}}",
            "storage:",
            f"  filesystem: {{rootdirectory: {self.storage}}}",
            "  delete: {enabled: true}",
            "http:",
            f"  addr: {self.host}",
            "  secret: not-a-secret",
        ]
        if self.mode == "tls":
            lines += [
                "  tls:",
                f"    certificate: {self.cert}",
                f"    key: {self.root / 'key.pem'}",
            ]
        lines += ["health: {storagedriver: {enabled: false}}"]
        if self.mode == "htpasswd":
            lines += [
                "auth:",
                "  htpasswd:",
                "    realm: strata-test",
                f"    path: {self.root / 'htpasswd'}",
            ]
        return "\n".join(lines) + "\n"

    def start(self) -> RegistryServer:
        registry = need("docker-registry")
        self.root.mkdir(parents=True, exist_ok=True)
        if self.mode == "htpasswd":
            need("htpasswd")
            out = run("htpasswd", "-Bbn", USER, PASSWORD).stdout
            (self.root / "htpasswd").write_text(out)
        if self.mode == "tls":
            need("openssl")
            run(
                "openssl", "req", "-x509", "-nodes", "-days", "2",
                "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-keyout", self.root / "key.pem", "-out", self.cert,
                "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            )  # fmt: skip
        (self.root / "config.yml").write_text(self._config())
        log = open(self.root / "registry.log", "wb")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            [registry, "serve", str(self.root / "config.yml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OTEL_TRACES_EXPORTER": "none"},
        )
        scheme = "https" if self.mode == "tls" else "http"
        pool = urllib3.PoolManager(cert_reqs="CERT_NONE", retries=False)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
                    pool.request("GET", f"{scheme}://{self.host}/v2/", timeout=2)
                return self
            except urllib3.exceptions.HTTPError:
                time.sleep(0.1)
        self.stop()
        tail = (self.root / "registry.log").read_text(errors="replace")[-2000:]
        unavailable(f"docker-registry did not start:\n{tail}")
        return self

    def bytes_sent(self, method: str = "GET", path_part: str = "/blobs/") -> int:
        """Body bytes the registry has sent so far answering `method` on paths containing
        `path_part`, from its access log (Apache combined format; needs `access_log`)."""
        total = 0
        log = (self.root / "registry.log").read_text(errors="replace")
        for m in re.finditer(r'"([A-Z]+) (\S+) HTTP/[0-9.]+" (\d{3}) (\d+|-)', log):
            if m[1] == method and path_part in m[2] and m[4] != "-":
                total += int(m[4])
        return total

    def stop(self) -> None:
        stop_process(self.proc, timeout=10)
