"""An OCI distribution (registry v2) HTTP client over urllib3: auth, TLS, retries.

Why our own client: pulls must verify every byte against its digest while it
streams, and pushes must skip what the registry already has; both need control
over requests that skopeo-style tools hide. Authentication follows the
registry's `WWW-Authenticate` challenge: `Bearer` (token server, anonymous or
with credentials, one token per scope) or `Basic`. Every request sends an
`Accept` listing OCI and Docker manifest and index types: without it
distribution answers 404 for OCI manifests and down-converts v2s2 to schema 1.
5xx answers and connection errors are retried with exponential backoff, a
bounded number of times.

Every body is read with bounds, so a registry cannot hold a build forever:
each read waits at most `timeout` seconds, each `rate_window` seconds must
bring at least `min_rate` bytes a second (a registry trickling a blob at one
byte a second passed the per-read timeout for ever), and with `deadline`
everything the client does must end within that many seconds of its creation
(the `timeout` of `pull_image`). Bodies read whole (manifests, tokens,
errors) are also bounded in size.

Spec: https://github.com/opencontainers/distribution-spec/blob/main/spec.md,
token auth: https://distribution.github.io/distribution/spec/auth/token/
"""

from __future__ import annotations

import json
import time
import urllib.parse
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any

import urllib3
from urllib3.exceptions import HTTPError, InsecureRequestWarning, SSLError

from strata.errors import UserError
from strata.registry.auth import (
    Challenge,
    Credentials,
    auth_files,
    find_credentials,
    parse_challenge,
)
from strata.registry.endpoint import (
    ACCEPT,
    Options,
    Registry,
    RegistryError,
    Response,
    error_codes,
    tls_context,
)

_RETRY_STATUS = frozenset({500, 502, 503, 504})
_READ_CHUNK = 1 << 16
_MAX_SMALL_BODY = 4 << 20
"""Bodies read whole (manifests, tokens, error answers) are never larger than this."""


Body = bytes | Callable[[], IO[bytes]] | None


class RegistryClient:
    """One registry, one connection pool, tokens kept per scope for this client's life."""

    def __init__(
        self, registry: Registry, options: Options | None = None, *, where: str = "registry"
    ) -> None:
        self.registry = registry
        self.options = options or Options()
        kw: dict[str, Any] = {"timeout": urllib3.Timeout(connect=10.0, read=self.options.timeout)}
        if registry.scheme == "https":
            if self.options.tls_verify:
                kw["ssl_context"] = tls_context(
                    self.options.ca_file, where, registry.host, self.options.certs_dirs
                )
            else:
                kw["cert_reqs"] = "CERT_NONE"
        self._pool = urllib3.PoolManager(retries=False, **kw)
        self._tokens: dict[str, str] = {}
        self._basic: str | None = None
        self._credentials_looked_up = False
        self._credentials: Credentials | None = self.options.credentials
        self._ends = (
            time.monotonic() + self.options.deadline if self.options.deadline is not None else None
        )

    # -- bounded reads -------------------------------------------------------------------

    def _left(self, what: str, where: str) -> float:
        """Seconds left before the deadline (`timeout` when there is none); past it, an error."""
        if self._ends is None:
            return self.options.timeout
        left = self._ends - time.monotonic()
        if left <= 0:
            raise UserError(
                f"talking to registry {self.registry} took longer than the deadline (got "
                f"{self.options.deadline:g} s, stopped during {what}); check the network and "
                "the registry, or raise pull_image's timeout",
                where=where,
            )
        return min(self.options.timeout, left)

    def body(
        self, raw: urllib3.BaseHTTPResponse, what: str, where: str, limit: int | None = None
    ) -> Iterator[bytes]:
        """The body of `raw` as it arrives, within the deadline, the minimum rate and `limit`."""
        window_start = time.monotonic()
        window_bytes = total = 0
        while True:
            self._left(what, where)
            data = raw.read1(_READ_CHUNK, decode_content=False)
            if not data:
                return
            total += len(data)
            window_bytes += len(data)
            if limit is not None and total > limit:
                raise UserError(
                    f"registry {self.registry} sent more than {limit} bytes for {what}; "
                    "that is not what was asked for: check the repository and reference",
                    where=where,
                )
            now = time.monotonic()
            if now - window_start >= self.options.rate_window:
                rate = window_bytes / (now - window_start)
                if rate < self.options.min_rate:
                    raise UserError(
                        f"registry {self.registry} sends {what} too slowly (got {window_bytes} "
                        f"bytes in {now - window_start:.0f} s, less than "
                        f"{self.options.min_rate:.0f} bytes a second); check the network and "
                        "the registry, then pull again",
                        where=where,
                    )
                window_start, window_bytes = now, 0
            yield data

    # -- credentials and challenges ------------------------------------------------------

    def _creds(self) -> Credentials | None:
        if self._credentials is None and not self._credentials_looked_up:
            self._credentials_looked_up = True
            self._credentials = find_credentials(self.registry.host, self.options.env)
        return self._credentials

    def _authorize(self, challenge: Challenge, scopes: tuple[str, ...], where: str) -> bool:
        """Get an Authorization header for `scopes`; False when we have nothing to offer."""
        creds = self._creds()
        if challenge.scheme == "basic":
            if creds is None or not creds.username:
                return False
            self._basic = creds.basic_header()
            return True
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            return False
        realm = challenge.params["realm"]
        query: list[tuple[str, str]] = []
        if challenge.params.get("service"):
            query.append(("service", challenge.params["service"]))
        query += [("scope", s) for s in scopes]
        headers = {}
        if creds is not None and creds.identity_token:
            body = urllib.parse.urlencode(
                [
                    ("grant_type", "refresh_token"),
                    ("refresh_token", creds.identity_token),
                    ("client_id", "strata"),
                    *query,
                ]
            ).encode()
            resp = self._send(
                "POST",
                realm,
                {"Content-Type": "application/x-www-form-urlencoded"},
                body,
                where=where,
            )
        else:
            if creds is not None and creds.username:
                headers["Authorization"] = creds.basic_header()
            url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
            resp = self._send("GET", url, headers, None, where=where)
        if resp.status in (401, 403):
            return False
        if resp.status != 200:
            raise RegistryError(
                f"token server refused (got HTTP {resp.status} from {realm}); "
                "check the credentials and the registry's auth set-up",
                status=resp.status,
                where=where,
            )
        try:
            answer = json.loads(resp.data)
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not token:
            raise UserError(
                f"token server answered without a token (got {resp.data[:60]!r}); "
                "the registry's auth service is misconfigured",
                where=where,
            )
        self._tokens[" ".join(scopes)] = str(token)
        return True

    def _auth_header(self, scopes: tuple[str, ...]) -> dict[str, str]:
        token = self._tokens.get(" ".join(scopes))
        if token:
            return {"Authorization": f"Bearer {token}"}
        if self._basic:
            return {"Authorization": self._basic}
        return {}

    # -- the request loop ----------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Body,
        *,
        where: str,
        stream: bool = False,
    ) -> Response:
        """One HTTP exchange with bounded retries on connection errors and 5xx answers."""
        attempts = max(1, self.options.retries + 1)
        last = ""
        for attempt in range(attempts):
            if attempt:
                self.options.sleep(self.options.backoff * (2 ** (attempt - 1)))
            data: Any = body() if callable(body) else body
            what = f"{method} {_path_of(url)}"
            try:
                left = self._left(what, where)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", InsecureRequestWarning)
                    raw = self._pool.request(
                        method,
                        url,
                        headers=dict(headers),
                        body=data,
                        preload_content=False,
                        decode_content=False,
                        timeout=urllib3.Timeout(connect=min(10.0, left), read=left),
                        retries=urllib3.Retry(
                            total=None,
                            connect=0,
                            read=0,
                            other=0,
                            status=0,
                            redirect=5 if method in ("GET", "HEAD") else 0,
                        ),
                    )
            except HTTPError as e:
                reason = getattr(e, "reason", None) or e
                if isinstance(reason, SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(reason):
                    raise UserError(
                        f"TLS verification failed for {self.registry.host} ({_short(reason)}); "
                        "give the registry's CA with ca_file (or as Docker takes it, in "
                        f"/etc/docker/certs.d/{self.registry.host}/ca.crt), or "
                        "tls_verify = False for a test registry",
                        where=where,
                    ) from None
                last = _short(reason)
                continue
            finally:
                if hasattr(data, "close"):
                    data.close()
            if raw.status in _RETRY_STATUS:
                last = f"HTTP {raw.status}"
                raw.drain_conn()
                raw.release_conn()
                continue
            headers_got = {k.lower(): v for k, v in raw.headers.items()}
            if stream:
                return Response(raw.status, headers_got, b"", raw)
            try:
                whole = b"".join(self.body(raw, what, where, _MAX_SMALL_BODY))
            except HTTPError as e:
                last = _short(getattr(e, "reason", None) or e)
                continue
            finally:
                raw.release_conn()
            return Response(raw.status, headers_got, whole)
        raise UserError(
            f"cannot reach registry {self.registry} for {method} {_path_of(url)} after "
            f"{attempts} attempts (got {last}); check the address and that the registry is up",
            where=where,
        )

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        scopes: tuple[str, ...],
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        where: str,
        stream: bool = False,
        ok: tuple[int, ...] = (200,),
    ) -> Response:
        """Send, answering one auth challenge if needed; statuses outside `ok` are errors."""
        url = path_or_url
        if not url.startswith(("http://", "https://")):
            url = self.registry.base_url + path_or_url
        base_headers = {"Accept": ACCEPT, "User-Agent": "strata", **(headers or {})}

        def send() -> Response:  # with the credentials known at the time
            all_headers = {**base_headers, **self._auth_header(scopes)}
            return self._send(method, url, all_headers, body, where=where, stream=stream)

        resp = send()
        if resp.status == 401:
            close(resp)
            challenge = parse_challenge(resp.header("www-authenticate"))
            if self._authorize(challenge, scopes, where):
                resp = send()
        if resp.status in ok:
            return resp
        detail = error_codes(resp.data if not stream else self._drain(resp, method, url, where))
        close(resp)
        raise self._status_error(method, url, resp.status, detail, where)

    def _status_error(
        self, method: str, url: str, status: int, detail: str, where: str
    ) -> RegistryError:
        what = f"{method} {_path_of(url)}"
        got = f"HTTP {status}" + (f" {detail}" if detail else "")
        if status == 401:
            # The files this client reads, as its environment names them ($DOCKER_CONFIG...).
            files = " or ".join(str(f) for f in auth_files(self.options.env))
            fix = (
                "log in (docker login / podman login) or put credentials for "
                f"{self.registry.host} in "
                + (files or "$DOCKER_CONFIG/config.json (neither DOCKER_CONFIG nor HOME is set)")
            )
            msg = f"registry requires authentication for {what} (got {got}); {fix}"
        elif status == 403:
            msg = f"registry denied {what} (got {got}); check the account's permissions"
        elif status == 404:
            msg = f"not found: {what} (got {got}); check the repository, tag and digest"
        else:
            msg = f"registry refused {what} (got {got}); see the registry's log"
        return RegistryError(msg, status=status, where=where)

    def _drain(self, resp: Response, method: str, url: str, where: str) -> bytes:
        """The start of an error answer's body (for its error codes), read with bounds."""
        if resp.raw is None:
            return resp.data
        out = b""
        try:
            for chunk in self.body(resp.raw, f"{method} {_path_of(url)}", where):
                out += chunk
                if len(out) >= 64 << 10:
                    break
        except (HTTPError, UserError):
            pass
        return out

    def iter_body(self, resp: Response, what: str, where: str) -> Iterator[bytes]:
        """The body of a streaming response, in chunks, without decoding, with bounds."""
        if resp.raw is None:
            yield resp.data
            return
        yield from self.body(resp.raw, what, where)

    def close(self) -> None:
        self._pool.clear()


def close(resp: Response) -> None:
    """Give a streaming response's connection back; one not read to its end is closed
    first (draining a trickling body would wait for all of it)."""
    if resp.raw is not None:
        if resp.raw.length_remaining != 0:
            resp.raw.close()
        resp.raw.release_conn()


def _short(e: BaseException) -> str:
    text = str(getattr(e, "reason", None) or e)
    return text.split(": ", 1)[-1][:160] if len(text) > 160 else text


def _path_of(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query and "mount=" in parts.query else "")
