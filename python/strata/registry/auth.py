"""Registry credentials: where `docker login` and `podman login` put them, and challenges.

Lookup order (first file that knows the registry wins), as podman does it:
`$REGISTRY_AUTH_FILE`, `${XDG_RUNTIME_DIR}/containers/auth.json`, then Docker's
`$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`). Inside one file a
`credHelpers` entry for the host wins, then `credsStore`, then a static `auths`
entry (base64 `user:password`, or an `identitytoken`). Helpers are the
`docker-credential-<name>` programs: `get` reads the server on stdin and prints
`{"Username", "Secret"}`; a Username of `<token>` means Secret is an identity token.

Specs: https://docs.docker.com/reference/cli/docker/login/#credential-helpers,
https://github.com/containers/image/blob/main/docs/containers-auth.json.5.md,
WWW-Authenticate challenges: https://distribution.github.io/distribution/spec/auth/token/
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.errors import UserError

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_DOCKER_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")


@dataclass(frozen=True)
class Credentials:
    """A user name and password, or an identity (refresh) token for the token flow."""

    username: str = ""
    password: str = ""
    identity_token: str = ""

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


@dataclass(frozen=True)
class Challenge:
    """One parsed `WWW-Authenticate` header: scheme (`bearer`/`basic`) and its parameters."""

    scheme: str
    params: Mapping[str, str]


_PARAM = re.compile(r'\s*([A-Za-z][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


def parse_challenge(header: str) -> Challenge:
    """`Bearer realm="https://a/token",service="reg"` → Challenge("bearer", {...})."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None or m.end() == pos:
            break
        value = m.group(2) if m.group(2) is not None else m.group(3)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
        pos = m.end()
    return Challenge(scheme.lower(), params)


def _host_of(key: str) -> str:
    """An `auths` key (`https://host:5000/v1/`, `host:5000`, `host/ns/repo`) → its host part."""
    key = re.sub(r"^[a-z]+://", "", key.strip())
    return key.split("/", 1)[0]


def _normal_host(host: str) -> str:
    return "docker.io" if host in _DOCKER_HUB_HOSTS else host


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise UserError(
            f"cannot read the credentials file ({e}); fix or remove it", where=str(path)
        ) from None
    if not isinstance(data, dict):
        raise UserError(
            f"credentials file is not a JSON object (got {type(data).__name__}); fix it",
            where=str(path),
        )
    return data


def auth_files(env: Mapping[str, str]) -> list[Path]:
    """The credentials files to consult, in order (they need not exist)."""
    files: list[Path] = []
    if env.get("REGISTRY_AUTH_FILE"):
        files.append(Path(env["REGISTRY_AUTH_FILE"]))
    if env.get("XDG_RUNTIME_DIR"):
        files.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    if env.get("DOCKER_CONFIG"):
        files.append(Path(env["DOCKER_CONFIG"]) / "config.json")
    elif env.get("HOME"):
        files.append(Path(env["HOME"]) / ".docker" / "config.json")
    return files


def run_helper(name: str, server: str, env: Mapping[str, str], where: str) -> Credentials | None:
    """Ask `docker-credential-<name>` for `server`; None when it has nothing for it."""
    program = f"docker-credential-{name}"
    try:
        proc = subprocess.run(
            [program, "get"],
            input=server.encode(),
            capture_output=True,
            env=dict(env),
            timeout=60,
        )
    except FileNotFoundError:
        raise UserError(
            f"credential helper not found (got {program}); install it or remove "
            f"{name!r} from credHelpers/credsStore",
            where=where,
        ) from None
    except subprocess.TimeoutExpired:
        raise UserError(
            f"credential helper did not answer within 60s (got {program}); check it",
            where=where,
        ) from None
    out = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0:
        if "credentials not found" in (out + proc.stderr.decode(errors="replace")).lower():
            return None
        msg = (proc.stderr.decode(errors="replace").strip() or out).splitlines()
        raise UserError(
            f"credential helper failed (got {program} exit {proc.returncode}: "
            f"{msg[0] if msg else ''}); fix the helper or log in again",
            where=where,
        )
    try:
        data = json.loads(out)
        username, secret = str(data["Username"]), str(data["Secret"])
    except (ValueError, KeyError, TypeError):
        raise UserError(
            f"credential helper printed no Username/Secret JSON (got {out[:60]!r}); fix it",
            where=where,
        ) from None
    if username == "<token>":
        return Credentials(identity_token=secret)
    return Credentials(username, secret)


def _from_auths(auths: Any, host: str, where: str) -> Credentials | None:
    if not isinstance(auths, dict):
        return None
    for key in sorted(auths, key=lambda k: (_normal_host(_host_of(k)) != host, k)):
        if _normal_host(_host_of(key)) != host:
            continue
        entry = auths[key]
        if not isinstance(entry, dict):
            continue
        if entry.get("identitytoken"):
            return Credentials(identity_token=str(entry["identitytoken"]))
        if entry.get("auth"):
            try:
                user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                sep = ""
            if not sep:
                raise UserError(
                    f"auths entry is not base64 'user:password' (got key {key!r}); log in again",
                    where=where,
                )
            return Credentials(user, password)
        if entry.get("username"):
            return Credentials(str(entry["username"]), str(entry.get("password", "")))
    return None


def find_credentials(registry_host: str, env: Mapping[str, str]) -> Credentials | None:
    """Credentials for `registry_host` (`host[:port]`) from the usual files, or None."""
    host = _normal_host(registry_host)
    server = DOCKER_HUB_KEY if host == "docker.io" else host
    for path in auth_files(env):
        data = _read_json(path)
        if data is None:
            continue
        where = str(path)
        helpers = data.get("credHelpers") or {}
        helper = helpers.get(server) or helpers.get(host) if isinstance(helpers, dict) else None
        if helper:
            found = run_helper(str(helper), server, env, where)
            if found is not None:
                return found
            continue
        if data.get("credsStore"):
            found = run_helper(str(data["credsStore"]), server, env, where)
            if found is not None:
                return found
        found = _from_auths(data.get("auths"), host, where)
        if found is not None:
            return found
    return None
