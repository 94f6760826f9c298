"""`strata pull-digest` and the ImagePull/ImagePush actions, end to end against a registry."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from image_helpers import app_layer, make_layer
from realtools import need
from registry_server import RegistryServer
from strata.actions.image_pull import run as pull_run
from strata.cli import main
from strata.errors import UserError
from strata.oci.base import Selector, read_oci_layout
from strata.oci.digest import sha256_bytes
from strata.oci.docker_archive import write_docker_archive
from strata.oci.image import Image, assemble
from strata.oci.platform import parse_platform
from strata.registry.prefetch import RemoteRef, parse_remote_ref


def test_parse_remote_ref() -> None:
    assert parse_remote_ref("busybox") == RemoteRef("docker.io", "library/busybox", "latest")
    assert parse_remote_ref("team/app:1.0") == RemoteRef("docker.io", "team/app", "1.0")
    assert parse_remote_ref("127.0.0.1:5000/team/app") == RemoteRef(
        "127.0.0.1:5000", "team/app", "latest"
    )
    assert parse_remote_ref("http://localhost:5000/a/b:t") == RemoteRef(
        "http://localhost:5000", "a/b", "t"
    )
    d = "sha256:" + "0" * 64
    assert parse_remote_ref(f"reg.example.com/a@{d}") == RemoteRef("reg.example.com", "a", "", d)
    with pytest.raises(UserError) as e:
        parse_remote_ref("reg.example.com/Team/App:1", where="strata pull-digest")
    assert str(e.value).startswith(
        "strata pull-digest: invalid repository (got 'Team/App' in 'reg.example.com/Team/App:1')"
    )


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryServer]:
    root = Path(tempfile.mkdtemp(prefix="strata-registry-cli-", dir="/tmp"))
    server = RegistryServer(root, "plain").start()
    try:
        yield server
    finally:
        server.stop()


def image(tmp: Path, arch: str = "x86_64") -> Image:
    blob = make_layer(tmp / f"app-{arch}", app_layer, "gzip")[0]
    return assemble(
        layers=[blob], fields={"Cmd": ["/opt/app/run"]}, platform=parse_platform(arch), name="a/b"
    ).image


def request(path: Path, **req: object) -> str:
    path.write_text(json.dumps({"schema_version": 1, **req}, sort_keys=True))
    return f"@{path}"


@pytest.mark.realtool
def test_push_action_pull_digest_and_pull_action(
    tmp_path: Path, registry: RegistryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    need("docker-registry")
    img = image(tmp_path)
    archive = tmp_path / "img.tar"
    write_docker_archive(archive, [img])
    push_req = request(
        tmp_path / "push.json",
        image=str(archive),
        registry=registry.address,
        repository="team/cli",
        tags=["1.0", "latest"],
        outputs={"push_info": str(tmp_path / "push-info.json")},
    )
    assert main(["action", "ImagePush", push_req]) == 0
    out, err = capsys.readouterr()
    digest = sha256_bytes(img.manifest(docker=True))
    assert out == f"{registry.address}/team/cli@{digest}\n"
    assert "uploaded 2 blobs" in err and "tags: 1.0, latest" in err
    info = json.loads((tmp_path / "push-info.json").read_text())
    assert info["digest"] == digest and info["blobs_uploaded"] == 2

    assert main(["pull-digest", f"{registry.host}/team/cli:1.0", "--plain-http"]) == 0
    out, _ = capsys.readouterr()
    assert out == (
        "pull_image(\n"
        '    name = "cli",\n'
        f'    registry = "{registry.address}",\n'
        '    repository = "team/cli",\n'
        f'    digest = "{digest}",\n'
        '    # tag = "1.0" resolved to the digest above; pin, do not follow\n'
        ")\n"
    )

    pull_req = request(
        tmp_path / "pull.json",
        registry=registry.address,
        repository="team/cli",
        tag="1.0",
        final_image_name="base/cli",
        blob_store=str(tmp_path / "blobs"),
        outputs={"oci_layout": str(tmp_path / "layout"), "pull_info": str(tmp_path / "pi.json")},
    )
    assert main(["action", "ImagePull", pull_req]) == 0
    _, err = capsys.readouterr()
    assert err == (
        f"warning: {tmp_path / 'pull.json'}: pulling {registry.address}/team/cli by tag '1.0' "
        f'is not reproducible; pin it with: digest = "{digest}"\n'
    )
    base = read_oci_layout(tmp_path / "layout", Selector("base/cli:1.0"))
    assert [b.digest for b in base.layers] == [b.digest for b in img.layers]
    pulled = json.loads((tmp_path / "pi.json").read_text())
    assert pulled["digest"] == digest and pulled["config_digest"] == img.config_digest

    # Pinned: no warning.
    pinned = request(
        tmp_path / "pinned.json",
        registry=registry.address,
        repository="team/cli",
        digest=digest,
        blob_store=str(tmp_path / "blobs"),
        outputs={"oci_layout": str(tmp_path / "layout2")},
    )
    assert main(["action", "ImagePull", pinned]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.realtool
def test_pull_digest_platform_errors(
    tmp_path: Path, registry: RegistryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    need("docker-registry")
    from strata.oci.oci_layout import write_oci_layout

    (tmp_path / "amd").mkdir()
    (tmp_path / "arm").mkdir()
    write_oci_layout(
        tmp_path / "multi", [image(tmp_path / "amd"), image(tmp_path / "arm", "arm64")]
    )
    push_req = request(
        tmp_path / "push.json",
        image=str(tmp_path / "multi"),
        registry=registry.address,
        repository="team/multi",
        tags=["2"],
    )
    assert main(["action", "ImagePush", push_req]) == 0
    digest = capsys.readouterr().out.strip().rpartition("@")[2]
    assert main(["pull-digest", f"{registry.address}/team/multi:2", "--arch", "arm64"]) == 0
    out = capsys.readouterr().out
    assert f'digest = "{digest}",' in out and 'architecture = "arm64",' in out
    assert main(["pull-digest", f"{registry.address}/team/multi:2", "--arch", "riscv64"]) == 1
    assert capsys.readouterr().err == (
        "error: strata pull-digest: platform linux/riscv64 is not in the image index "
        "(got: linux/amd64, linux/arm64); set os/architecture/variant to one of those\n"
    )


def test_pull_action_checks_names(tmp_path: Path) -> None:
    base = {"digest": "sha256:" + "0" * 64, "outputs": {"oci_layout": str(tmp_path / "l")}}
    for extra, message in (
        ({"registry": "r", "repository": "a\nb"}, "invalid repository (got 'a\\nb')"),
        ({"registry": "r", "repository": "a", "tag": "$(x)"}, "invalid tag (got '$(x)')"),
        ({"registry": "r;x", "repository": "a"}, "invalid registry address (got 'r;x')"),
    ):
        with pytest.raises(UserError, match=re.escape(message)):
            pull_run({"schema_version": 1, **base, **extra}, "req")
    assert not (tmp_path / "l").exists()
