"""Against Debian's docker-registry on 127.0.0.1, continued: basic auth, TLS (a CA file, a
certs.d directory, no verification) and the bad cases (unknown manifest, a blob with the
wrong digest, a registry that is down).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry_kit import AMD64, client, registry, small
from registry_server import PASSWORD, USER, RegistryServer, free_port
from strata.errors import UserError
from strata.oci.digest import sha256_bytes
from strata.oci.oci_layout import write_oci_layout
from strata.registry.auth import Credentials
from strata.registry.blobstore import BlobStore
from strata.registry.client import RegistryClient
from strata.registry.endpoint import Options, Registry
from strata.registry.fetch import get_manifest
from strata.registry.pull import pull
from strata.registry.push import push

pytestmark = pytest.mark.realtool


@pytest.fixture(scope="module")
def plain() -> Iterator[RegistryServer]:
    yield from registry("plain")


@pytest.fixture(scope="module")
def basic_auth() -> Iterator[RegistryServer]:
    yield from registry("htpasswd")


@pytest.fixture(scope="module")
def tls() -> Iterator[RegistryServer]:
    yield from registry("tls")


# -- auth and TLS ----------------------------------------------------------------------------


def test_basic_auth_needs_credentials(tmp_path: Path, basic_auth: RegistryServer) -> None:
    img = small(tmp_path, AMD64, b"auth\n")
    write_oci_layout(tmp_path / "img", [img])
    with pytest.raises(UserError) as e:
        push(client(basic_auth), "team/secret", tmp_path / "img", ["v1"], where="push")
    msg = str(e.value)
    assert msg.startswith("push: registry requires authentication for HEAD /v2/team/secret/")
    assert "(got HTTP 401" in msg and "docker login" in msg
    # The hint names the file this environment makes strata read, not ~/.docker.
    config = tmp_path / "docker"
    config.mkdir()
    for env, named in (
        ({"DOCKER_CONFIG": str(config), "HOME": "/root"}, f"{config}/config.json"),
        ({"HOME": str(tmp_path)}, f"{tmp_path}/.docker/config.json"),
        (
            {"REGISTRY_AUTH_FILE": str(tmp_path / "auth.json"), "DOCKER_CONFIG": str(config)},
            f"{tmp_path}/auth.json or {config}/config.json",
        ),
    ):
        with pytest.raises(UserError) as e:
            push(client(basic_auth, env=env), "team/secret", tmp_path / "img", [], where="p")
        assert str(e.value).endswith(
            f"log in (docker login / podman login) or put credentials for {basic_auth.host} "
            f"in {named}"
        ), str(e.value)
    # Credentials from a Docker config.json (what `docker login` writes).
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (config / "config.json").write_text(json.dumps({"auths": {basic_auth.host: {"auth": auth}}}))
    env = {"DOCKER_CONFIG": str(config)}
    got = push(client(basic_auth, env=env), "team/secret", tmp_path / "img", ["v1"], where="push")
    assert got.counters.blobs_uploaded == 3
    # Pull with credentials from a credential helper program on PATH.
    helper_dir = tmp_path / "bin"
    helper_dir.mkdir()
    helper = helper_dir / "docker-credential-strata-test"
    helper.write_text(
        "#!/bin/sh\nread server\n"
        f'echo "{{\\"ServerURL\\":\\"$server\\",\\"Username\\":\\"{USER}\\",'
        f'\\"Secret\\":\\"{PASSWORD}\\"}}"\n'
    )
    helper.chmod(0o755)
    (config / "config.json").write_text(
        json.dumps({"credHelpers": {basic_auth.host: "strata-test"}})
    )
    env = {"DOCKER_CONFIG": str(config), "PATH": f"{helper_dir}:/usr/bin:/bin"}
    c = client(basic_auth, env=env)
    got_pull = pull(
        c,
        BlobStore(tmp_path / "store"),
        "team/secret",
        got.digest,
        AMD64,
        tmp_path / "o",
        None,
        "t",
    )
    assert got_pull.config_digest == img.config_digest
    # Wrong password: still a clear 401.
    bad = client(basic_auth, credentials=Credentials(USER, "wrong"))
    with pytest.raises(UserError, match=r"requires authentication .*\(got HTTP 401"):
        get_manifest(bad, "team/secret", "v1", "t")


def test_tls_with_ca_file_and_without_verification(tmp_path: Path, tls: RegistryServer) -> None:
    img = small(tmp_path, AMD64, b"tls\n")
    write_oci_layout(tmp_path / "img", [img])
    with pytest.raises(UserError) as e:
        push(client(tls), "team/tls", tmp_path / "img", ["v1"], where="push")
    assert f"push: TLS verification failed for {tls.host}" in str(e.value)
    assert "ca_file" in str(e.value)
    got = push(client(tls, ca_file=str(tls.cert)), "team/tls", tmp_path / "img", ["v1"], where="p")
    assert got.counters.blobs_uploaded == 3
    insecure = client(tls, tls_verify=False)
    assert get_manifest(insecure, "team/tls", "v1", "t").digest == got.digest
    out = pull(
        insecure,
        BlobStore(tmp_path / "s"),
        "team/tls",
        got.digest,
        AMD64,
        tmp_path / "o",
        None,
        "t",
    )
    assert out.config_digest == img.config_digest


# -- bad cases -------------------------------------------------------------------------------


def test_manifest_unknown(tmp_path: Path, plain: RegistryServer) -> None:
    missing = "sha256:" + "ab" * 32
    with pytest.raises(UserError) as e:
        pull(client(plain), BlobStore(tmp_path / "s"), "team/nothing", missing, AMD64,
             tmp_path / "o", None, "pull")  # fmt: skip
    assert str(e.value).startswith(f"pull: not found: GET /v2/team/nothing/manifests/{missing}")
    assert "MANIFEST_UNKNOWN" in str(e.value) or "NAME_UNKNOWN" in str(e.value)
    assert not (tmp_path / "o").exists()


def test_blob_digest_mismatch_stores_nothing(tmp_path: Path, plain: RegistryServer) -> None:
    img = small(tmp_path, AMD64, b"to be corrupted\n")
    write_oci_layout(tmp_path / "img", [img])
    pushed = push(client(plain), "team/corrupt", tmp_path / "img", ["v1"], where="t")
    layer = img.layers[1]  # the uncompressed one: flip one byte, same size
    data = plain.blob_data(layer.digest)
    raw = bytearray(data.read_bytes())
    raw[600] ^= 0xFF
    data.write_bytes(bytes(raw))
    actual = sha256_bytes(bytes(raw))
    store = BlobStore(tmp_path / "store")
    with pytest.raises(UserError) as e:
        pull(client(plain), store, "team/corrupt", pushed.digest, AMD64, tmp_path / "o", None, "p")
    msg = str(e.value)
    assert f"blob digest mismatch (got {actual}, {len(raw)} bytes; expected {layer.digest}" in msg
    assert not store.path(layer.digest).exists()
    assert not [p for p in (tmp_path / "store/sha256").iterdir() if p.name.startswith(".")]
    assert not (tmp_path / "o").exists()


def test_registry_down(tmp_path: Path) -> None:
    port = free_port()
    c = RegistryClient(
        Registry.parse(f"http://127.0.0.1:{port}"), Options(retries=2, backoff=0.0, env={})
    )
    with pytest.raises(UserError) as e:
        get_manifest(c, "team/app", "v1", "pull")
    msg = str(e.value)
    assert msg.startswith(
        f"pull: cannot reach registry http://127.0.0.1:{port} for GET "
        "/v2/team/app/manifests/v1 after 3 attempts (got "
    )
    assert "check the address and that the registry is up" in msg


def test_tls_ca_from_a_certs_d_directory(tmp_path: Path, tls: RegistryServer) -> None:
    """As Docker and podman: `<certs.d>/<host:port>/*.crt` is trusted for that host alone."""
    img = small(tmp_path, AMD64, b"certs.d\n")
    write_oci_layout(tmp_path / "img", [img])
    certs = tmp_path / "certs.d"
    (certs / tls.host).mkdir(parents=True)
    (certs / "other.example:5000").mkdir()
    (certs / "other.example:5000" / "ca.crt").write_bytes(tls.cert.read_bytes())
    with pytest.raises(UserError) as e:  # a CA for another host does not count
        push(client(tls, certs_dirs=(str(certs),)), "team/c", tmp_path / "img", [], where="p")
    assert f"/etc/docker/certs.d/{tls.host}/ca.crt" in str(e.value)
    (certs / tls.host / "ca.crt").write_bytes(tls.cert.read_bytes())
    got = push(client(tls, certs_dirs=(str(certs),)), "team/c", tmp_path / "img", [], where="p")
    assert got.counters.blobs_uploaded == 3
    (certs / tls.host / "broken.crt").write_text("not a certificate\n")
    with pytest.raises(UserError) as e:
        client(tls, certs_dirs=(str(certs),))
    assert str(e.value).startswith(f"registry: cannot read a CA file of {tls.host} as PEM")
    assert "broken.crt" in str(e.value) and "\n" not in str(e.value)
