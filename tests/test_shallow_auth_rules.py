"""A shallow base (the default) in a registry that needs a login, under strata and Bazel.

The layers of a shallow base are fetched by a build action (BaseBlobs) when
an output holds their bytes. A build action's environment is `PATH` alone,
so the pull hands it where the user's `docker login` lives (DOCKER_CONFIG
here); the action runs unsandboxed (`no-sandbox`), as a repository rule's
download does, so it reads that file wherever it is. Each engine fetches
through its own blob store, so each really logs in; both tarballs are the
same bytes.
"""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from image_helpers import app_layer, make_layer
from realtools import need, run
from registry_server import PASSWORD, USER, RegistryServer
from strata.oci.image import assemble
from strata.oci.oci_layout import write_oci_layout
from strata.oci.platform import parse_platform
from strata.registry.auth import Credentials
from strata.registry.client import RegistryClient
from strata.registry.endpoint import Options, Registry
from strata.registry.push import push
from test_shallow_base import BIG, GOAL, _big_layer

pytestmark = [pytest.mark.realtool, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent

WORKSPACE = """workspace(name = "authtest")

local_repository(name = "strata", path = "{root}")

load("@strata//rules:repositories.bzl", "pull_image", "strata_dependencies")

strata_dependencies()

pull_image(name = "base", registry = "{registry}", repository = "private/base", digest = "{digest}")
"""

BUILD = """load("@strata//rules:defs.bzl", "docker_image")

genrule(name = "msg", outs = ["msg.txt"], cmd = "echo private base > $@")

docker_image(name = "app", from_image = "@base", files = {":msg": "/msg.txt"})
"""


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryServer]:
    root = Path(tempfile.mkdtemp(prefix="strata-shallow-auth-", dir="/tmp"))
    server = RegistryServer(root, "htpasswd", access_log=True).start()
    try:
        yield server
    finally:
        server.stop()


def _pushed_base(tmp: Path, server: RegistryServer) -> str:
    big = make_layer(tmp / "big-layer", _big_layer, "gzip")[0]
    small = make_layer(tmp / "small-layer", app_layer, "none")[0]
    base = assemble(
        layers=[big, small], fields={}, platform=parse_platform("x86_64"), name="private/base"
    ).image
    write_oci_layout(tmp / "base", [base])
    login = Options(env={}, credentials=Credentials(USER, PASSWORD))
    client = RegistryClient(Registry.parse(server.address), login)
    return push(client, "private/base", tmp / "base", ["1"], where="t").digest


def test_shallow_base_layers_are_fetched_with_the_pulls_login(
    tmp_path: Path, registry: RegistryServer, tools_cache: str
) -> None:
    digest = _pushed_base(tmp_path, registry)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "WORKSPACE").write_text(
        WORKSPACE.format(root=ROOT, registry=registry.address, digest=digest)
    )
    (ws / "BUILD").write_text(BUILD)
    docker = tmp_path / "docker"
    docker.mkdir()
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (docker / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DOCKER_CONFIG": str(docker),
        "STRATA_TOOLS_CACHE": tools_cache,
        "STRATA_BLOB_STORE": str(tmp_path / "strata-blobs"),
    }

    # strata: the image alone needs no layer; its tarball fetches them, logged in.
    before = registry.bytes_sent(path_part="/v2/")
    proc = subprocess.run(
        [str(ROOT / "tools" / "strata"), "build", f"--output_base={tmp_path / 'ob'}", "//:app"],
        cwd=ws, capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert registry.bytes_sent(path_part="/v2/") - before <= GOAL
    before = registry.bytes_sent()
    proc = subprocess.run(
        [str(ROOT / "tools" / "strata"), "build", f"--output_base={tmp_path / 'ob'}",
         "--output_groups=+tarball", "//:app"],
        cwd=ws, capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert BIG < registry.bytes_sent() - before < 2 * BIG
    tarball = (ws / "strata-bin" / "app.tar").read_bytes()

    # Bazel 4.2.3, with a blob store of its own: its BaseBlobs action logs in too.
    bazel = need("bazel")
    env["STRATA_BLOB_STORE"] = str(tmp_path / "bazel-blobs")
    common = [bazel, "--batch", f"--output_user_root={tmp_path / 'bazel-root'}"]
    flags = ["--symlink_prefix=/", "--output_groups=+tarball"]
    before = registry.bytes_sent()
    run(*common, "build", *flags, "//:app", cwd=ws, env=env)
    assert BIG < registry.bytes_sent() - before < 2 * BIG
    out = Path(run(*common, "info", *flags, "bazel-bin", cwd=ws, env=env).stdout.strip())
    assert (out / "app.tar").read_bytes() == tarball
