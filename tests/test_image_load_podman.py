"""image_load of an OCI layout (an image_index) into a real podman, run by `strata run`.

podman names what it pulls from a layout after the layout's path
(`localhost/<output base>/.../load.runfiles/.../multi.oci:latest`) and refuses
a path that is no valid image name. The load must leave exactly the name the
target promises, from an output base whose path has capitals and a `+`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from realtools import run

pytestmark = [pytest.mark.realtool, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent

WORKSPACE = """local_repository(name = "strata", path = "{root}")

load("@strata//rules:repositories.bzl", "strata_dependencies")

strata_dependencies()
"""

BUILD = """load(
    "@strata//rules:defs.bzl",
    "image_index",
    "image_load",
    "layered_image",
    "store_path",
)

[
    genrule(
        name = "txt_%s" % arch,
        outs = ["%s.txt" % arch],
        cmd = "echo %s > $@" % arch,
    )
    for arch in ["amd64", "arm64"]
]

[
    store_path(
        name = "platform-%s" % arch,
        srcs = {":txt_%s" % arch: "share/platform.txt"},
    )
    for arch in ["amd64", "arm64"]
]

[
    layered_image(
        name = "img-%s" % arch,
        architecture = arch,
        contents = [":platform-%s" % arch],
        tag = arch,
    )
    for arch in ["amd64", "arm64"]
]

image_index(
    name = "multi",
    image_name = "team/multi",
    images = [":img-amd64", ":img-arm64"],
    tag = "1.0",
)

image_load(
    name = "load",
    image = ":multi",
    loader = "podman",
    ref = "1.0",
)
"""


def _tags(env: dict[str, str]) -> dict[str, list[str]]:
    """Every image in podman's store: id → its names."""
    ids = run("podman", "images", "-q", "--no-trunc", env=env).stdout.split()
    out = {}
    for image_id in sorted(set(ids)):
        fmt = "{{json .RepoTags}}"
        tags = run("podman", "image", "inspect", "--format", fmt, image_id, env=env).stdout
        out[image_id] = json.loads(tags) or []
    return out


def _workspace(tmp_path: Path, build: str) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "WORKSPACE").write_text(WORKSPACE.format(root=ROOT))
    (ws / "BUILD").write_text(build)
    return ws


def test_image_load_of_an_index_into_podman_leaves_one_name(
    tmp_path: Path, podman_env: dict[str, str]
) -> None:
    ws = _workspace(tmp_path, BUILD)
    argv = [ROOT / "tools" / "strata", "run", f"--output_base={tmp_path / 'Output+Base'}"]
    before = _tags(podman_env)
    links = set(Path("/tmp").glob("strata-load-*"))
    for _ in range(2):  # a second load finds the image there: still one name
        proc = subprocess.run(
            [*argv, "//:load"], cwd=ws, env=podman_env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.endswith("Loaded image: team/multi:1.0\n"), proc.stdout
    after = _tags(podman_env)
    new = {i: t for i, t in after.items() if t != before.get(i)}
    assert list(new.values()) == [["localhost/team/multi:1.0"]], after
    (image_id,) = new
    arch = run("podman", "image", "inspect", "-f", "{{.Architecture}}", image_id, env=podman_env)
    assert arch.stdout.strip() == "amd64"  # the host's platform, picked from the index
    assert set(Path("/tmp").glob("strata-load-*")) == links  # the link is gone


IMAGE_BUILD = """load("@strata//rules:defs.bzl", "docker_image", "image_load", "store_path")

genrule(name = "busybox_bin", outs = ["busybox.bin"], cmd = "cp /bin/busybox $@")

store_path(name = "busybox", srcs = {":busybox_bin": "bin/busybox"}, executables = ["bin/busybox"])

docker_image(
    name = "app",
    copy_to_root = [":busybox"],
    files = {"msg.txt": "/msg"},
    config = {"Cmd": ["/bin/busybox", "cat", "/msg"]},
    image_name = "incload/podman",
    tag = "1",
)

image_load(name = "load", image = ":app", loader = "podman")
"""


def test_image_load_of_an_image_into_podman_pulls_its_layout(
    tmp_path: Path, podman_env: dict[str, str]
) -> None:
    # podman pull oci:<layout> skips the blobs podman has; podman load would copy the archive
    ws = _workspace(tmp_path, IMAGE_BUILD)
    argv = [ROOT / "tools" / "strata", "run", f"--output_base={tmp_path / 'out'}", "//:load"]
    before = _tags(podman_env)
    for msg in ["one\n", "two\n"]:  # the second load changes the top layer only
        (ws / "msg.txt").write_text(msg)
        proc = run(*argv, cwd=ws, env=podman_env)
        # the pull path names the image itself (podman load would print localhost/...)
        assert proc.stdout.endswith("Loaded image: incload/podman:1\n"), proc.stdout
        out = run("podman", "run", "--rm", "incload/podman:1", env=podman_env)
        assert out.stdout == msg
    after = _tags(podman_env)
    named = [t for i, t in after.items() if t != before.get(i) and t]
    assert named == [["localhost/incload/podman:1"]], after
