"""A client for Bazel's HTTP remote-cache protocol.

    GET|HEAD|PUT <prefix>/cas/<sha256>   blobs, named by the sha256 of their bytes
    GET|PUT      <prefix>/ac/<key>       REAPI `ActionResult` protobuf messages

Spec: https://bazel.build/remote/caching#http-caching (the protocol), and
`reapi.py` for the messages. A server (nginx WebDAV, bazel-remote) answers
404 for a missing entry; WebDAV servers may answer 204 with no body, which is
a miss too. Every PUT has a Content-Length (nginx and some proxies reject
chunked uploads), and every download is checked against its sha256 before it
is renamed into place, so a wrong blob is never an output. A body that is not
an `ActionResult` or a blob with the wrong bytes raises `InvalidEntry`: the
action runs, and the build warns once.

The cache is an optimisation: a server that is down or times out costs one
warning, then this client turns itself off for the rest of the build and
everything runs locally. Connections come from one urllib3 pool whose size is
the concurrency limit.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import tempfile
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3

from strata import written
from strata.engine.cache import InvalidEntry, reapi
from strata.engine.redact import redact_header, redact_url
from strata.errors import UserError
from strata.oci.digest import DigestingWriter

_CHUNK = 1 << 20
_MISS = (404, 204)


@dataclass(frozen=True)
class RemoteOptions:
    url: str
    """`http(s)://[user:password@]host[:port][/prefix]`."""
    upload_local_results: bool = True
    accept_cached: bool = True
    timeout: float = 60.0
    """Seconds for connecting and for each read; Bazel's `--remote_timeout`."""
    headers: tuple[tuple[str, str], ...] = ()
    max_connections: int = 8
    download_outputs: str = "toplevel"
    """Bazel's `--remote_download_outputs`: "all" downloads every output of a remote hit;
    "toplevel" (strata's default, Bazel 7's) only those the build was asked for and
    those an action that runs here reads; "minimal" not even the asked-for ones."""


@dataclass
class TransferStats:
    """Bytes and requests moved in this build, for the summary and the benchmark."""

    uploaded: int = 0
    """Bytes the server accepted (a refused PUT counts in `refused_uploads` instead)."""
    downloaded: int = 0
    requests: int = 0
    ac_hits: int = 0
    refused_reads: int = 0
    """Reads answered 401/403: misses the server would not let us see."""
    refused_uploads: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, *, up: int = 0, down: int = 0) -> None:
        with self._lock:
            self.uploaded += up
            self.downloaded += down
            self.requests += 1

    def refused(self, *, read: bool) -> None:
        with self._lock:
            if read:
                self.refused_reads += 1
            else:
                self.refused_uploads += 1


@dataclass(frozen=True)
class Endpoint:
    base: str
    """`scheme://host:port/prefix` without credentials or a trailing slash."""
    headers: tuple[tuple[str, str], ...]


_EXAMPLE = "write e.g. --remote_cache=http://user:password@cache.example:8080/prefix"
# RFC 9110 token characters for a header name.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _bad_url(what: str, url: str) -> UserError:
    """Errors show the URL without its credentials (and query): they end up in CI logs."""
    return UserError(f"--remote_cache {what} (got {redact_url(url)!r}); {_EXAMPLE}", where="strata")


def parse_remote_cache(url: str, headers: tuple[tuple[str, str], ...] = ()) -> Endpoint:
    """Split credentials out of the URL into an Authorization header; reject what we can't use."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        # urllib's reason may quote a piece of the password (`u:p/w@h` reads `p` as a port).
        raise _bad_url(
            "is not a valid URL: its host must be a name, an IPv4 address or an IPv6 "
            "address in [ ], its port a number from 1 to 65535",
            url,
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _bad_url("must be an http(s) URL", url)
    if port == 0:
        raise _bad_url("port must be a number from 1 to 65535", url)
    if parts.query or parts.fragment:
        raise _bad_url("cannot have a query or fragment: give scheme, host, port and path", url)
    for name, value in headers:
        if not _HEADER_NAME.fullmatch(name) or not _header_value_ok(value):
            raise UserError(
                f"--remote_header must be Name=Value with a token name and a value without "
                f"control characters (got {redact_header(name + '=' + value)!r}); "
                "write e.g. --remote_header=X-Token=SECRET",
                where="strata",
            )
    out = list(headers)
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        out.append(("Authorization", f"Basic {token}"))
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = f"{host}:{port}" if port else host
    base = f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"
    return Endpoint(base, tuple(out))


def _header_value_ok(value: str) -> bool:
    """Latin-1 without control characters: what http.client sends without raising."""
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return not any(ord(c) < 32 and c != "\t" or ord(c) == 127 for c in value)


class RemoteUnavailable(Exception):
    """The server did not answer; the cache is off for the rest of the build."""


class HttpCache:
    """Blobs and raw `ActionResult` messages on a Bazel HTTP cache server."""

    def __init__(self, options: RemoteOptions, warn: Callable[[str], None]) -> None:
        self.options = options
        self.endpoint = parse_remote_cache(options.url, options.headers)
        self.shown_url = redact_url(options.url)
        """The URL as warnings print it: the user's, without credentials."""
        self.name = f"remote cache {self.shown_url}"
        self._warn = warn
        self._lock = threading.Lock()
        self._warned_put = False
        self._warned_read = False
        self.disabled = False
        self.uploads_off = False
        """Set when the server lost an upload: later ones would be lost too."""
        self.corrupt_blobs: set[str] = set()
        """Blobs the server sent wrong bytes for: uploaded again even though it has them."""
        self.stats = TransferStats()
        timeout = urllib3.Timeout(connect=options.timeout, read=options.timeout)
        self._pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=max(1, options.max_connections),
            block=True,
            timeout=timeout,
            retries=False,
            headers=dict(self.endpoint.headers),
        )

    def close(self) -> None:
        self._pool.clear()

    # -- transport -------------------------------------------------------------

    def _url(self, kind: str, name: str) -> str:
        return f"{self.endpoint.base}/{kind}/{name}"

    def _off(self, method: str, url: str, err: Exception) -> RemoteUnavailable:
        with self._lock:
            first = not self.disabled
            self.disabled = True
        if first:
            reason = type(err).__name__
            detail = str(getattr(err, "reason", "") or err).split(": ", 1)[-1][:160]
            self._warn(
                f"remote cache {self.shown_url}: {method} {url} failed "
                f"(got {reason}: {detail}); continuing without the remote cache for this "
                "build; check that the server is up or raise --remote_timeout"
            )
        return RemoteUnavailable(str(err))

    def _request(self, method: str, url: str, **kw: Any) -> urllib3.BaseHTTPResponse:
        if self.disabled:
            raise RemoteUnavailable("remote cache is off for this build")
        try:
            resp = self._pool.request(method, url, **kw)
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise self._off(method, url, err) from None
        if method != "PUT" and resp.status in (401, 403):
            self._read_refused(method, url, resp)
        return resp

    def _read_refused(self, method: str, url: str, resp: urllib3.BaseHTTPResponse) -> None:
        """A read the server refuses is a miss, as a 404 is; unlike a 404, it is worth one
        warning: every action will run locally until the credentials are fixed."""
        self.stats.refused(read=True)
        with self._lock:
            first, self._warned_read = not self._warned_read, True
        if first:
            got = f"HTTP {resp.status} {resp.reason or ''}".rstrip()
            self._warn(
                f"remote cache {self.shown_url}: reading was refused ({method} {url}: got "
                f"{got}); every lookup misses and actions run locally; give the cache's "
                "credentials (--remote_cache=http://user:password@host:port/..., or "
                "--remote_header=Authorization=...) or check the ones given"
            )

    def _failed_read(self, url: str, resp: urllib3.BaseHTTPResponse) -> None:
        """An action result answered with neither data, a miss nor a refusal (a 5xx, a
        redirect): a miss, and the one warning a build for reads, as a refused read is."""
        self.stats.refused(read=True)
        with self._lock:
            first, self._warned_read = not self._warned_read, True
        if first:
            where = resp.headers.get("Location", "")
            moved = f" to {redact_url(where)[:160]}, which is not followed" if where else ""
            self._warn(
                f"remote cache {self.shown_url}: GET {url} failed (got HTTP {resp.status}"
                f"{moved}); such entries count as misses; check the server and that "
                "--remote_cache is the cache's own URL"
            )

    def upload_lost(self, what: str, how: str) -> None:
        """An upload the server took, then lost: warn once and stop uploading for this build."""
        with self._lock:
            first, self._warned_put = not self._warned_put, True
            self.uploads_off = True
        if first:
            self._warn(
                f"remote cache {self.shown_url}: the server accepted {what} but {how} when "
                "read back; results stay local: check the server's storage (full? read-only?) "
                "and its log"
            )

    def _rejected(self, method: str, url: str, status: int) -> None:
        self.stats.refused(read=False)
        with self._lock:
            first, self._warned_put = not self._warned_put, True
        if first:
            self._warn(
                f"remote cache {self.shown_url}: {method} {url} was refused "
                f"(got HTTP {status}); results stay local; check credentials "
                "(--remote_header, user:password@ in the URL) and that the server accepts PUT"
            )

    # -- action results --------------------------------------------------------

    def get_action_result(self, key: str) -> Any | None:
        """The stored `reapi.ActionResult`, or None (miss, server off); `InvalidEntry` if the
        body is not such a message."""
        try:
            resp = self._request("GET", self._url("ac", key))
        except RemoteUnavailable:
            return None
        data = resp.data
        self.stats.add(down=len(data) if resp.status == 200 else 0)
        if resp.status not in (200, 401, 403, *_MISS):
            self._failed_read(self._url("ac", key), resp)
        if resp.status != 200 or not data:
            return None
        try:
            return reapi.ActionResult.FromString(data)
        except Exception:  # noqa: BLE001 - protobuf raises DecodeError or RuntimeError
            raise InvalidEntry(
                self.name, f"entry is not an ActionResult message (got {len(data)} bytes)"
            ) from None

    def put_action_result(self, key: str, result: Any) -> bool:
        return self.put_bytes("ac", key, reapi.encode(result))

    # -- blobs -----------------------------------------------------------------

    def has_blob(self, sha256: str) -> bool:
        try:
            resp = self._request("HEAD", self._url("cas", sha256))
        except RemoteUnavailable:
            return False
        self.stats.add()
        return resp.status == 200

    def get_bytes(self, sha256: str) -> bytes | None:
        """A small blob (a Tree message) in memory, verified; None if missing."""
        try:
            resp = self._request("GET", self._url("cas", sha256))
        except RemoteUnavailable:
            return None
        data = resp.data
        self.stats.add(down=len(data) if resp.status == 200 else 0)
        if resp.status != 200:
            return None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise self._corrupt(sha256)
        return data

    def _corrupt(self, sha256: str) -> InvalidEntry:
        with self._lock:
            self.corrupt_blobs.add(sha256)
        return InvalidEntry(self.name, f"blob {sha256} does not match its sha256")

    def get_blob(self, sha256: str, dest: Path, *, read_only: bool = False) -> bool:
        """Stream a blob to `dest` through a temp file; only a verified blob is renamed in.

        False if it is missing; `InvalidEntry` if the server sent other bytes.

        `read_only` makes the file read-only, as the local disk cache stores its
        entries (not fsynced: that cache verifies a blob on every read, but believes
        the digests noted here, strata.written, while the file is unchanged).
        """
        try:
            resp = self._request("GET", self._url("cas", sha256), preload_content=False)
        except RemoteUnavailable:
            return False
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                h = DigestingWriter(out, xxh3=True)
                if resp.status == 200:
                    for chunk in resp.stream(_CHUNK):
                        h.write(chunk)
                        size += len(chunk)
            if resp.status != 200 or h.hexdigest != sha256:
                os.unlink(tmp)
                if resp.status == 200:
                    raise self._corrupt(sha256)
                return False
            if read_only:
                os.chmod(tmp, 0o444)
            os.replace(tmp, dest)
            written.note(dest, h.xxh3_hexdigest, sha256)  # checked as it came: not read again
            return True
        except urllib3.exceptions.HTTPError as err:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            self._off("GET", self._url("cas", sha256), err)
            return False
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return False
        finally:
            resp.release_conn()
            self.stats.add(down=size)

    def put_blob(self, sha256: str, src: Path) -> bool:
        size = src.stat().st_size
        with open(src, "rb") as body:
            return self._put("cas", sha256, body, size)

    def put_bytes(self, kind: str, name: str, data: bytes) -> bool:
        return self._put(kind, name, data, len(data))

    def _put(self, kind: str, name: str, body: Any, size: int) -> bool:
        """True when the server stored it."""
        url = self._url(kind, name)
        headers = {
            **dict(self.endpoint.headers),
            "Content-Length": str(size),
            "Content-Type": "application/octet-stream",
        }
        try:
            resp = self._request("PUT", url, body=body, headers=headers, chunked=False)
        except RemoteUnavailable:
            return False
        stored = resp.status in (200, 201, 204)
        # Only what the server kept counts as uploaded.
        self.stats.add(up=size if stored else 0)
        if not stored:
            self._rejected("PUT", url, resp.status)
        return stored
