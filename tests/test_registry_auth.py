"""Credentials lookup (Docker config, credential helpers, podman auth.json) and challenges."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from strata.errors import UserError
from strata.registry.auth import Credentials, find_credentials, parse_challenge
from strata.registry.endpoint import Registry


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write(path: Path, obj: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def helper(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    p = bin_dir / f"docker-credential-{name}"
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)


def test_parse_bearer_and_basic_challenges() -> None:
    c = parse_challenge(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
        'scope="repository:team/app:pull,push"'
    )
    assert c.scheme == "bearer"
    assert dict(c.params) == {
        "realm": "https://auth.example.com/token",
        "service": "registry.example.com",
        "scope": "repository:team/app:pull,push",
    }
    assert parse_challenge('Basic realm="Registry Realm"') == parse_challenge(
        'basic realm="Registry Realm"'
    )
    assert parse_challenge('Basic realm="a \\"quoted\\" realm"').params["realm"] == (
        'a "quoted" realm'
    )


def test_docker_config_auths_by_host(tmp_path: Path) -> None:
    write(
        tmp_path / "docker/config.json",
        {
            "auths": {
                "https://reg.example.com:5000/v1/": {"auth": b64("alice:pw:with:colons")},
                "https://index.docker.io/v1/": {"auth": b64("hubuser:hubpw")},
                "other.example.com": {"identitytoken": "refresh-123"},
            }
        },
    )
    env = {"DOCKER_CONFIG": str(tmp_path / "docker")}
    assert find_credentials("reg.example.com:5000", env) == Credentials("alice", "pw:with:colons")
    assert find_credentials("registry-1.docker.io", env) == Credentials("hubuser", "hubpw")
    assert find_credentials("other.example.com", env) == Credentials(identity_token="refresh-123")
    assert find_credentials("reg.example.com", env) is None  # the port is part of the host
    # Without DOCKER_CONFIG, ~/.docker/config.json.
    assert find_credentials("reg.example.com:5000", {"HOME": str(tmp_path / "nohome")}) is None
    write(tmp_path / "home/.docker/config.json", {"auths": {"h.example": {"auth": b64("u:p")}}})
    assert find_credentials("h.example", {"HOME": str(tmp_path / "home")}) == Credentials("u", "p")


def test_podman_auth_files_come_before_docker(tmp_path: Path) -> None:
    docker = write(tmp_path / "docker/config.json", {"auths": {"r.example": {"auth": b64("d:1")}}})
    runtime = write(
        tmp_path / "run/containers/auth.json", {"auths": {"r.example": {"auth": b64("x:2")}}}
    )
    explicit = write(
        tmp_path / "auth.json", {"auths": {"r.example/team/app": {"auth": b64("e:3")}}}
    )
    env = {"DOCKER_CONFIG": str(docker.parent), "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    assert find_credentials("r.example", env) == Credentials("x", "2")
    env["REGISTRY_AUTH_FILE"] = str(explicit)
    assert find_credentials("r.example", env) == Credentials("e", "3")
    runtime.unlink()
    del env["REGISTRY_AUTH_FILE"]
    assert find_credentials("r.example", env) == Credentials("d", "1")


def test_cred_helpers_and_creds_store(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    helper(
        bin_dir,
        "team",
        'read s; echo "{\\"ServerURL\\":\\"$s\\",\\"Username\\":\\"helper-$s\\",'
        '\\"Secret\\":\\"hs\\"}"\n',
    )
    helper(
        bin_dir,
        "store",
        'read s; if [ "$s" = "known.example" ]; then '
        'echo "{\\"Username\\":\\"<token>\\",\\"Secret\\":\\"idtok\\"}"; '
        "else echo 'credentials not found in native keychain'; exit 1; fi\n",
    )
    write(
        tmp_path / "docker/config.json",
        {
            "credHelpers": {"team.example:5000": "team"},
            "credsStore": "store",
            "auths": {"fallback.example": {"auth": b64("f:b")}},
        },
    )
    env = {"DOCKER_CONFIG": str(tmp_path / "docker"), "PATH": f"{bin_dir}:/usr/bin:/bin"}
    assert find_credentials("team.example:5000", env) == Credentials(
        "helper-team.example:5000", "hs"
    )
    assert find_credentials("known.example", env) == Credentials(identity_token="idtok")
    # The store has nothing for it: fall back to the static auths entry.
    assert find_credentials("fallback.example", env) == Credentials("f", "b")
    assert find_credentials("nobody.example", env) is None


def test_credential_errors_are_one_line(tmp_path: Path) -> None:
    config = write(tmp_path / "docker/config.json", {"credHelpers": {"r.example": "missing"}})
    env = {"DOCKER_CONFIG": str(config.parent), "PATH": str(tmp_path / "empty")}
    with pytest.raises(UserError) as e:
        find_credentials("r.example", env)
    assert str(e.value) == (
        f"{config}: credential helper not found (got docker-credential-missing); "
        "install it or remove 'missing' from credHelpers/credsStore"
    )
    write(config, {"auths": {"r.example": {"auth": b64("no-colon")}}})
    with pytest.raises(UserError) as e:
        find_credentials("r.example", env)
    assert str(e.value) == (
        f"{config}: auths entry is not base64 'user:password' (got key 'r.example'); log in again"
    )
    config.write_text("{not json")
    with pytest.raises(UserError, match=r"cannot read the credentials file"):
        find_credentials("r.example", env)


def test_registry_address_parsing() -> None:
    assert Registry.parse("reg.example.com:5000") == Registry("reg.example.com:5000", "https")
    assert Registry.parse("http://127.0.0.1:5000/") == Registry("127.0.0.1:5000", "http")
    assert Registry.parse("docker.io") == Registry("registry-1.docker.io", "https")
    with pytest.raises(UserError) as e:
        Registry.parse("ftp://x", where="pull_image")
    assert str(e.value).startswith("pull_image: invalid registry address (got 'ftp://x'); use")
