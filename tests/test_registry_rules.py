"""pull_image and image_push under real Bazel 4.2.3, against a real registry, run in Docker.

A workspace in a temporary directory pulls a busybox base by digest with
`pull_image`, builds `docker_image(from_image = "@bb")` on it and pushes it
with `bazel run //:push` (twice: the second uploads nothing; `push_sbom = False`, the
image alone), and `//:push_sbom` with its SBOMs, the default. skopeo pulls the
result back into a docker-archive that the Docker engine runs.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from image_helpers import busybox_layer, make_layer
from realtools import DockerEngine, need, run
from registry_server import RegistryServer
from strata.actions import lookup
from strata.oci.image import assemble
from strata.oci.oci_layout import write_oci_layout
from strata.oci.platform import parse_platform
from strata.registry.client import RegistryClient
from strata.registry.endpoint import Options, Registry
from strata.registry.push import push

pytestmark = [pytest.mark.realtool, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent

WORKSPACE = """workspace(name = "regtest")

local_repository(name = "strata", path = "{root}")

load("@strata//rules:repositories.bzl", "strata_dependencies")

strata_dependencies()

load("@strata//rules/private:registry.bzl", "pull_image")

pull_image(
    name = "bb",
    registry = "{registry}",
    repository = "base/bb",
    digest = "{digest}",
)
"""

BUILD = """load("@strata//rules:defs.bzl", "docker_image")
load("@strata//rules/private:registry.bzl", "image_push")

genrule(
    name = "msg",
    outs = ["msg.txt"],
    cmd = "echo built by bazel on a pulled base > $@",
)

docker_image(
    name = "app",
    from_image = "@bb",
    files = {{":msg": "/msg.txt"}},
    config = {{"Cmd": ["/bin/sh", "-c", "cat /msg.txt"]}},
    tag = "v1",
)

image_push(
    name = "push",
    image = ":app",
    registry = "{registry}",
    repository = "{repository}",
    tags = ["v1"],
    push_sbom = False,
)

image_push(
    name = "push_sbom",
    image = ":app",
    registry = "{registry}",
    repository = "{repository}-sbom",
    tags = ["v1"],
)
"""


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryServer]:
    root = Path(tempfile.mkdtemp(prefix="strata-registry-rules-", dir="/tmp"))
    server = RegistryServer(root, "plain").start()
    try:
        yield server
    finally:
        server.stop()


def _workspace(
    tmp_path: Path, registry: RegistryServer, repository: str, base_sbom: bool = False
) -> Path:
    """A busybox base pushed to the registry (with its SBOMs as referrers, for
    `base_sbom`), and a workspace that pulls it and pushes to `repository`."""
    need("skopeo")
    if not Path("/bin/busybox").is_file():
        need("busybox")
    blob = make_layer(tmp_path / "bb", busybox_layer("/bin/busybox"), "gzip")[0]
    base = assemble(
        layers=[blob], fields={"Cmd": ["/bin/sh"]}, platform=parse_platform("x86_64"), name="b/b"
    ).image
    write_oci_layout(tmp_path / "base", [base])
    client = RegistryClient(Registry.parse(registry.address), Options(env={}))
    digest = push(client, "base/bb", tmp_path / "base", ["1"], where="t").digest
    if base_sbom:
        out = {k: str(tmp_path / f"base.{k}") for k in ("cyclonedx", "referrers", "spdx")}
        req = {"image": str(tmp_path / "base"), "name": "base/bb", "outputs": out}
        lookup("Sbom")(req | {"schema_version": 1}, "base.sbom.json")
        push_req = {"image": out["referrers"], "registry": registry.address}
        lookup("ImagePush")(push_req | {"repository": "base/bb", "schema_version": 1}, "t")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "WORKSPACE").write_text(
        WORKSPACE.format(root=ROOT, registry=registry.address, digest=digest)
    )
    build = BUILD.format(registry=registry.address, repository=repository)
    (ws / "BUILD").write_text(build)
    return ws


def test_pull_image_build_and_image_push_under_bazel(
    tmp_path: Path, registry: RegistryServer, docker_engine: DockerEngine
) -> None:
    bazel = need("bazel")
    ws = _workspace(tmp_path, registry, "team/app")
    common = [bazel, "--batch", f"--output_user_root={tmp_path / 'bazel-root'}"]
    flags = ["--spawn_strategy=processwrapper-sandbox", "--symlink_prefix=/"]
    run(*common, "build", *flags, "//:app", "//:push", cwd=ws)
    first = run(*common, "run", *flags, "//:push", cwd=ws)
    assert f"{registry.address}/team/app@sha256:" in first.stdout
    # The base is shallow (the default): its layer is mounted from base/bb, never downloaded.
    assert "uploaded 2 blobs" in first.stderr and "mounted 1" in first.stderr
    second = run(*common, "run", *flags, "//:push", cwd=ws)
    assert "uploaded 0 blobs (0 bytes), skipped 3 already present" in second.stderr
    assert second.stdout == first.stdout

    out = docker_engine.run_from_registry(
        f"{registry.host}/team/app:v1", "pushed/app:v1", tmp_path / "app.tar"
    )
    assert out == "built by bazel on a pulled base\n"


def test_pull_image_build_and_image_push_under_strata(
    tmp_path: Path, registry: RegistryServer, docker_engine: DockerEngine
) -> None:
    """The same workspace through the embedded engine: `strata run //:push` pushes what it built."""
    ws = _workspace(tmp_path, registry, "team/app-strata")
    strata = [str(ROOT / "tools" / "strata")]
    base_flag = f"--output_base={tmp_path / 'ob'}"
    run(*strata, "build", base_flag, "//:app", "//:push", cwd=ws)
    first = run(*strata, "run", base_flag, "//:push", cwd=ws)
    pushed = first.stdout.strip().rsplit("@", 1)
    assert pushed[0] == f"{registry.address}/team/app-strata", first.stdout
    info = json.loads((ws / "strata-bin" / "app.image.json").read_text())
    assert pushed[1] in (info["manifest_digest"], info["docker_manifest_digest"])
    # image_push pushes the OCI layout: no docker-archive was written for it
    assert not (ws / "strata-bin" / "app.tar").exists()
    # The base is shallow (the default): its layer is mounted from base/bb, never downloaded.
    assert "uploaded 2 blobs" in first.stderr and "mounted 1" in first.stderr
    second = run(*strata, "run", base_flag, "//:push", cwd=ws)
    assert "uploaded 0 blobs (0 bytes)" in second.stderr
    assert second.stdout == first.stdout

    out = docker_engine.run_from_registry(
        f"{registry.host}/team/app-strata:v1", "pushed/s:v1", tmp_path / "app.tar"
    )
    assert out == "built by bazel on a pulled base\n"


def _referrers(registry: RegistryServer, repository: str, digest: str) -> dict[str, str]:
    """artifactType -> the document's bytes' sha256, from the tag schema's index."""
    raw = run(
        "skopeo", "inspect", "--raw", "--tls-verify=false",
        f"docker://{registry.host}/{repository}:sha256-{digest[7:]}",
    ).stdout  # fmt: skip
    out = {}
    for entry in json.loads(raw)["manifests"]:
        manifest = json.loads(
            run(
                "skopeo", "inspect", "--raw", "--tls-verify=false",
                f"docker://{registry.host}/{repository}@{entry['digest']}",
            ).stdout
        )  # fmt: skip
        assert manifest["subject"]["digest"] == digest
        out[entry["artifactType"]] = manifest["layers"][0]["digest"]
    return out


def test_image_push_sbom_referrers_under_bazel_and_strata(
    tmp_path: Path, registry: RegistryServer
) -> None:
    """push_sbom (the default): both engines push the image and its two SBOMs, found
    under the fallback tag (distribution 2.8 has no referrers API); the documents are
    the same bytes; a second push uploads nothing. The base was pushed with its SBOMs:
    pull_image keeps them, and the image's documents name them by digest."""
    bazel = need("bazel")
    ws = _workspace(tmp_path, registry, "team/ref", base_sbom=True)
    base_spdx = (tmp_path / "base.spdx").read_bytes()
    base_cdx = (tmp_path / "base.cyclonedx").read_bytes()
    common = [bazel, "--batch", f"--output_user_root={tmp_path / 'bazel-root'}"]
    flags = ["--spawn_strategy=processwrapper-sandbox", "--symlink_prefix=/"]
    strata = [str(ROOT / "tools" / "strata"), "run", f"--output_base={tmp_path / 'ob'}"]
    found = []
    for engine, repository in (([*common, "run", *flags], "team/ref-sbom"), (strata, "")):
        if not repository:
            # the same workspace, pushed by strata to a repository of its own
            (ws / "BUILD").write_text(
                (ws / "BUILD").read_text().replace("team/ref-sbom", "team/ref-strata-sbom")
            )
            repository = "team/ref-strata-sbom"
        first = run(*engine, "//:push_sbom", cwd=ws)
        digest = first.stdout.strip().rsplit("@", 1)[1]
        assert f"referrers of {digest}: 2 (tag sha256-{digest[7:]})" in first.stderr
        second = run(*engine, "//:push_sbom", cwd=ws)
        assert "uploaded 0 blobs (0 bytes)" in second.stderr
        assert f"(tag sha256-{digest[7:]} (unchanged))" in second.stderr
        refs = _referrers(registry, repository, digest)
        assert sorted(refs) == ["application/spdx+json", "application/vnd.cyclonedx+json"]
        spdx = json.loads(registry.blob_data(refs["application/spdx+json"]).read_bytes())
        (ext,) = spdx["externalDocumentRefs"]
        assert ext["checksum"]["checksumValue"] == hashlib.sha256(base_spdx).hexdigest()
        cdx = json.loads(registry.blob_data(refs["application/vnd.cyclonedx+json"]).read_bytes())
        (base,) = [c for c in cdx["components"] if c["type"] == "container"]
        assert sorted(r["hashes"][0]["content"] for r in base["externalReferences"]) == sorted(
            hashlib.sha256(d).hexdigest() for d in (base_spdx, base_cdx)
        )
        found.append((digest, refs))
    assert found[0] == found[1]
