"""`pull_image(shallow = True)` through the rules, under strata and Bazel 4.2.3.

One workspace pulls the same base (a 4 MiB layer gzip cannot shrink, and
busybox) twice from Debian's registry 2.8, shallow and full, and builds the
same images on each: `docker_image`, `export_image`, `run_as_root` and
`merge_images`. Bytes the registry sent are counted from its access log: the
shallow pull and build stay under 100 KB; the tarball and the outputs that
hold layer bytes download the base layers once (BaseBlobs); the push of the
image on the shallow base to the base's registry downloads none (the base
layers are mounted). Every output on the shallow base is the full base's
(the OCI layout but for the base layers and `remote-blobs.json`), under both
engines, byte for byte.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from realtools import DockerEngine, need, run
from registry_server import RegistryServer
from strata.registry.push import push
from test_shallow_base import BIG, GOAL, _client, _pushed_base

pytestmark = [pytest.mark.realtool, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent

WORKSPACE = """workspace(name = "shallowtest")

local_repository(name = "strata", path = "{root}")

load("@strata//rules:repositories.bzl", "pull_image", "strata_dependencies")

strata_dependencies()

pull_image(
    name = "base_shallow",
    registry = "{registry}",
    repository = "base/big",
    digest = "{digest}",
    shallow = True,
)

pull_image(
    name = "base_full",
    registry = "{registry}",
    repository = "base/big",
    digest = "{digest}",
    shallow = False,
)
"""

BUILD = """load(
    "@strata//rules:defs.bzl",
    "docker_image",
    "export_image",
    "image_push",
    "merge_images",
    "run_as_root",
)

genrule(
    name = "msg",
    outs = ["msg.txt"],
    cmd = "echo built on a shallow base > $@",
)

[docker_image(
    name = "app_" + kind,
    from_image = "@base_" + kind,
    files = {{":msg": "/msg.txt"}},
    config = {{"Cmd": ["/bin/cat", "/msg.txt"]}},
    image_name = "team/app",
    tag = "v1",
) for kind in ("shallow", "full")]

[export_image(
    name = "rootfs_" + kind,
    image = ":app_" + kind,
) for kind in ("shallow", "full")]

[run_as_root(
    name = "rar_" + kind,
    from_image = ":app_" + kind,
    script = "echo ran as root > /rar.txt",
    image_name = "team/rar",
) for kind in ("shallow", "full")]

[merge_images(
    name = "merged_" + kind,
    images = [":app_" + kind, ":rar_" + kind],
) for kind in ("shallow", "full")]

image_push(
    name = "push",
    image = ":app_shallow",
    registry = "{registry}",
    repository = "team/app",
    tags = ["v1"],
    push_sbom = False,
)
"""


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryServer]:
    root = Path(tempfile.mkdtemp(prefix="strata-shallow-rules-", dir="/tmp"))
    server = RegistryServer(root, "plain", access_log=True).start()
    try:
        yield server
    finally:
        server.stop()


def _strata(ws: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "tools" / "strata"), args[0], f"--output_base={ws.parent / 'ob'}", *args[1:]],
        cwd=ws,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )


def _files(layout: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(layout)): p.read_bytes() for p in sorted(layout.rglob("*")) if p.is_file()
    }


def test_shallow_pull_image_under_both_engines(
    tmp_path: Path, registry: RegistryServer, tools_cache: str
) -> None:
    digest = _pushed_base(tmp_path, registry, shell=True)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "WORKSPACE").write_text(
        WORKSPACE.format(root=ROOT, registry=registry.address, digest=digest)
    )
    (ws / "BUILD").write_text(BUILD.format(registry=registry.address))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "STRATA_TOOLS_CACHE": tools_cache}
    env["STRATA_BLOB_STORE"] = str(tmp_path / "blobs")

    # strata: the image and its layout on the shallow base, built cold, download metadata only.
    before = registry.bytes_sent(path_part="/v2/")
    proc = _strata(ws, env, "build", "--output_groups=+oci", "//:app_shallow")
    assert proc.returncode == 0, proc.stderr[-3000:]
    built = registry.bytes_sent(path_part="/v2/") - before
    print(f"\nstrata build on the shallow base: {built} bytes downloaded")
    assert built <= GOAL

    # Its tarball and root filesystem need the base layers: fetched then, once.
    before = registry.bytes_sent()
    proc = _strata(
        ws, env, "build", "--output_groups=+tarball", "//:app_shallow", "//:rootfs_shallow"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    fetched = registry.bytes_sent() - before
    print(f"strata tarball + export on the shallow base: {fetched} blob bytes downloaded")
    assert BIG < fetched < BIG + (3 << 20)  # the big layer and busybox's, once

    full_targets = ["//:app_full", "//:rootfs_full", "//:rar_full", "//:merged_full"]
    proc = _strata(ws, env, "build", "--output_groups=+tarball,+sbom", *full_targets)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # run_as_root and merge_images on the shallow base: the layers fetched above serve.
    before = registry.bytes_sent()
    shallow_targets = ["//:app_shallow", "//:rar_shallow", "//:merged_shallow"]
    proc = _strata(ws, env, "build", "--output_groups=+tarball,+sbom", *shallow_targets)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert registry.bytes_sent() == before

    bin_dir = ws / "strata-bin"
    shallow, full = _files(bin_dir / "app_shallow.oci"), _files(bin_dir / "app_full.oci")
    info = (bin_dir / "app_shallow.image.json").read_bytes()
    assert info == (bin_dir / "app_full.image.json").read_bytes()
    assert shallow["index.json"] == full["index.json"]
    base_layers = json.loads(info)["layers"][:2]
    assert set(full) - set(shallow) == {f"blobs/sha256/{d[7:]}" for d in base_layers}
    assert set(shallow) - set(full) == {"remote-blobs.json"}
    assert {k: v for k, v in shallow.items() if k in full} == {
        k: v for k, v in full.items() if k in shallow
    }
    tarball = (bin_dir / "app_shallow.tar").read_bytes()
    assert tarball == (bin_dir / "app_full.tar").read_bytes()
    rootfs = (bin_dir / "rootfs_shallow.tar").read_bytes()
    assert rootfs == (bin_dir / "rootfs_full.tar").read_bytes()
    # The SBOM documents are the same too; the SBOM layout lists the same remote blobs.
    for out in ("rar_{}.image.json", "rar_{}.tar", "merged_{}.tar", "app_{}.spdx.json"):
        shallow_out = (bin_dir / out.format("shallow")).read_bytes()
        assert shallow_out == (bin_dir / out.format("full")).read_bytes(), out
    assert (bin_dir / "app_shallow.sbom.oci" / "remote-blobs.json").read_bytes() == shallow[
        "remote-blobs.json"
    ]

    # The push mounts the base layers: nothing downloaded, only the new layer and config sent.
    before, blobs_before = registry.bytes_sent(path_part="/v2/"), registry.bytes_sent()
    proc = _strata(ws, env, "run", "//:push")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert registry.bytes_sent() == blobs_before
    pushed = registry.bytes_sent(path_part="/v2/") - before
    print(f"strata run //:push: {pushed} bytes downloaded; {proc.stderr.strip()[-200:]}")
    assert pushed <= GOAL
    assert "uploaded 2 blobs" in proc.stderr and "mounted 2" in proc.stderr
    manifest = json.loads(shallow["index.json"])["manifests"][0]["digest"]
    assert proc.stdout == f"{registry.address}/team/app@{manifest}\n"
    # Pushed again by the library: every blob is there now.
    again = push(_client(registry), "team/app", bin_dir / "app_shallow.oci", [], where="t")
    assert again.counters.blobs_skipped == 4

    # Bazel 4.2.3 builds the same bytes on the shallow base, without the layers; its
    # tarball and export fetch them (here from the shared store the first fetch filled).
    bazel = need("bazel")
    common = [bazel, "--batch", f"--output_user_root={tmp_path / 'bazel-root'}"]
    flags = ["--spawn_strategy=processwrapper-sandbox", "--symlink_prefix=/"]
    before = registry.bytes_sent(path_part="/v2/")
    run(*common, "build", *flags, "--output_groups=+oci", "//:app_shallow", cwd=ws, env=env)
    assert registry.bytes_sent(path_part="/v2/") - before <= GOAL
    out = Path(run(*common, "info", *flags, "bazel-bin", cwd=ws, env=env).stdout.strip())
    assert _files(out / "app_shallow.oci") == shallow
    assert (out / "app_shallow.image.json").read_bytes() == info
    before = registry.bytes_sent()
    targets = ["//:app_shallow", "//:rootfs_shallow", "//:rar_shallow", "//:merged_shallow"]
    run(*common, "build", *flags, "--output_groups=+tarball", *targets, cwd=ws, env=env)
    assert registry.bytes_sent() == before  # every layer was in the shared store
    assert (out / "app_shallow.tar").read_bytes() == tarball
    assert (out / "rootfs_shallow.tar").read_bytes() == rootfs
    for name in ("rar_shallow.image.json", "rar_shallow.tar", "merged_shallow.tar"):
        assert (out / name).read_bytes() == (bin_dir / name).read_bytes(), name


PODMAN_BUILD = """load(
    "@strata//rules:defs.bzl",
    "docker_image",
    "image_index",
    "image_load",
    "image_test",
)

genrule(name = "msg", outs = ["msg.txt"], cmd = "echo loaded from a shallow base > $@")

docker_image(
    name = "app",
    from_image = "@base_shallow",
    files = {":msg": "/msg.txt"},
    config = {"Cmd": ["/bin/busybox", "cat", "/msg.txt"]},
    image_name = "shallow/podman",
    tag = "1",
)

image_index(name = "multi", images = [":app"], image_name = "shallow/multi", tag = "2")

image_load(name = "load", image = ":app", loader = "podman")

image_load(name = "load_index", image = ":multi", loader = "podman", ref = "2")

image_test(name = "structure_test", image = ":app", configs = ["msg.yaml"], driver = "docker")
"""

MSG_YAML = """schemaVersion: 2.0.0
fileContentTests:
  - name: the message
    path: /msg.txt
    expectedContents: ["loaded from a shallow base"]
"""


def _podman_workspace(tmp_path: Path, registry: RegistryServer) -> Path:
    digest = _pushed_base(tmp_path, registry, shell=True)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "WORKSPACE").write_text(
        WORKSPACE.format(root=ROOT, registry=registry.address, digest=digest)
    )
    (ws / "BUILD").write_text(PODMAN_BUILD)
    (ws / "msg.yaml").write_text(MSG_YAML)
    return ws


def test_podman_loads_images_on_a_shallow_base(
    tmp_path: Path, registry: RegistryServer, tools_cache: str, podman_env: dict[str, str]
) -> None:
    """podman pulls an image's OCI layout (and an index's): on a shallow base the load
    makes it whole from the base's fetched layers, and the image runs."""
    ws = _podman_workspace(tmp_path, registry)
    env = {**podman_env, "STRATA_TOOLS_CACHE": tools_cache}
    env["STRATA_BLOB_STORE"] = str(tmp_path / "blobs")
    for target, name in (("//:load", "shallow/podman:1"), ("//:load_index", "shallow/multi:2")):
        proc = _strata(ws, env, "run", target)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.endswith(f"Loaded image: {name}\n"), proc.stdout
        out = run("podman", "run", "--rm", name, env=podman_env)
        assert out.stdout == "loaded from a shallow base\n"


def test_image_test_docker_driver_on_a_shallow_base(
    tmp_path: Path, registry: RegistryServer, tools_cache: str, docker_engine: DockerEngine
) -> None:
    """container-structure-test's docker driver loads the image's OCI layout: on a shallow
    base, a whole one of links to the base's fetched layers."""
    ws = _podman_workspace(tmp_path, registry)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "STRATA_TOOLS_CACHE": tools_cache}
    env["STRATA_BLOB_STORE"] = str(tmp_path / "blobs")
    host = docker_engine.env["DOCKER_HOST"]
    # The daemon's socket is under the host's /tmp, which the namespace sandbox hides.
    flags = ["--sandbox=directory", f"--test_env=DOCKER_HOST={host}", "//:structure_test"]
    proc = _strata(ws, env, "test", *flags)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert re.search(r"//:structure_test +PASSED", proc.stdout + proc.stderr), proc.stdout
