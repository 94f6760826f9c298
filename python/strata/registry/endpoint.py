"""A registry's address and what talking to it is made of: options, answers, errors, scopes.

What the client (strata.registry.client) and its callers share: `Registry`
(where a registry lives; `docker.io` is Docker Hub's API host), `Options` (TLS,
retries, read bounds, credentials), a `Response`, the `RegistryError` a status
becomes, and the token scopes of a repository.
"""

from __future__ import annotations

import json
import os
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import urllib3

from strata.errors import UserError
from strata.oci.manifest import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST
from strata.oci.reference import REGISTRY_HINT, check_host
from strata.registry.auth import Credentials

CERTS_DIRS = ("/etc/docker/certs.d", "/etc/containers/certs.d")
"""Docker's and podman's per-registry CA directories."""
MANIFEST_TYPES = (OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST)
ACCEPT = ", ".join(MANIFEST_TYPES)
_DOCKER_HUB_API = "registry-1.docker.io"


@dataclass(frozen=True)
class Options:
    """How to talk to a registry; `retries` and `backoff` are small in tests."""

    tls_verify: bool = True
    ca_file: str = ""
    retries: int = 4
    backoff: float = 0.5
    """Seconds before the first retry; doubled each time."""
    timeout: float = 60.0
    """Seconds one read (or the connection) may wait."""
    min_rate: float = 1024.0
    """Bytes a second a body must keep arriving at, measured over each `rate_window`."""
    rate_window: float = 60.0
    deadline: float | None = None
    """Seconds everything this client does may take from its creation (None: no bound)."""
    certs_dirs: tuple[str, ...] = CERTS_DIRS
    """Where a registry's own CAs are found, as Docker and podman find them:
    `<dir>/<host[:port]>/*.crt` (added to the system's CAs and `ca_file`)."""
    credentials: Credentials | None = None
    """Explicit credentials; None means look them up in the usual files."""
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    sleep: Callable[[float], None] = time.sleep


@dataclass(frozen=True)
class Registry:
    """Where a registry lives: `scheme` ("https" or "http") and `host[:port]`."""

    host: str
    scheme: str = "https"

    @staticmethod
    def parse(text: str, where: str = "registry") -> Registry:
        """`host:5000`, `https://host`, `http://127.0.0.1:5000` → Registry; docker.io → Hub."""
        raw = text.strip().rstrip("/")
        scheme = "https"
        if "://" in raw:
            scheme, _, raw = raw.partition("://")
            scheme = scheme.lower()
        if scheme not in ("http", "https") or not raw or "/" in raw:
            raise UserError(
                f"invalid registry address (got {text!r}); {REGISTRY_HINT}", where=where
            )
        check_host(raw, where, "registry address")
        if raw in ("docker.io", "index.docker.io"):
            raw = _DOCKER_HUB_API
        return Registry(raw.lower(), scheme)

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def __str__(self) -> str:
        return self.host if self.scheme == "https" else self.base_url


@dataclass
class Response:
    """A finished (or streaming) answer; `stream` is set when the body was not preloaded."""

    status: int
    headers: Mapping[str, str]
    data: bytes
    raw: urllib3.BaseHTTPResponse | None = None

    def header(self, name: str) -> str:
        return self.headers.get(name, "") or ""


class RegistryError(UserError):
    """A registry answered with an error status we do not retry."""

    def __init__(self, message: str, *, status: int, where: str) -> None:
        super().__init__(message, where=where)
        self.status = status


def error_codes(data: bytes) -> str:
    """`MANIFEST_UNKNOWN: manifest unknown` from a distribution error body, or ''."""
    try:
        errors = json.loads(data).get("errors") or []
        text = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
    except (ValueError, AttributeError, TypeError, RecursionError):
        return ""
    return " ".join(text.split())[:300]  # the registry's words, on one line


def host_cas(host: str, certs_dirs: Sequence[str]) -> list[Path]:
    """The CA files Docker and podman trust for `host` (`host[:port]`): `<dir>/<host>/*.crt`."""
    found: list[Path] = []
    for root in certs_dirs:
        d = Path(root) / host
        if host and "/" not in host and host not in (".", "..") and d.is_dir():
            found += sorted(p for p in d.glob("*.crt") if p.is_file())
    return found


def tls_context(
    ca_file: str, where: str, host: str = "", certs_dirs: Sequence[str] = ()
) -> ssl.SSLContext:
    """The system's CAs, plus those of `ca_file` when given, plus the host's in `certs_dirs`."""
    try:
        ctx = ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as e:
        raise UserError(
            f"cannot read ca_file as PEM certificates (got {ca_file!r}: {_reason(e)}); give "
            "the absolute path of the registry's CA certificate file",
            where=where,
        ) from None
    for path in host_cas(host, certs_dirs):
        try:
            ctx.load_verify_locations(cafile=str(path))
        except (OSError, ssl.SSLError) as e:
            raise UserError(
                f"cannot read a CA file of {host} as PEM certificates (got {str(path)!r}: "
                f"{_reason(e)}); fix or remove it",
                where=where,
            ) from None
    return ctx


def _reason(e: OSError | ssl.SSLError) -> str:
    return e.strerror if isinstance(e, OSError) and e.strerror else str(e)


def pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"
