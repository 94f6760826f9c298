"""The rules' own actions in the namespace sandbox: fake_root_commands build there, and
the worker binds the real directories of its runfiles.
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest

from realtools import need, need_namespace_sandbox
from strata.cli import main


@pytest.fixture
def namespace() -> None:
    need_namespace_sandbox()


# -- the rules' own actions in the namespace sandbox -------------------------------

ROOT = Path(__file__).resolve().parent.parent

IMAGES_WORKSPACE = """local_repository(name = "strata", path = "{root}")

load("@strata//rules:repositories.bzl", "strata_dependencies")

strata_dependencies()
"""

IMAGES_BUILD = """load("@strata//rules:defs.bzl", "layered_image", "store_path")

genrule(name = "busybox_bin", outs = ["busybox.bin"], cmd = "cp /bin/busybox $@")

store_path(
    name = "busybox",
    srcs = {":busybox_bin": "bin/busybox"},
    executables = ["bin/busybox"],
    symlinks = {"bin/sh": "busybox"},
)

layered_image(
    name = "owned",
    contents = [":busybox"],
    fake_root_commands = "mkdir data && chown 1000:1000 data && chmod 0700 data",
    tag = "latest",
)
"""


def _image_members(archive: Path) -> dict[str, tarfile.TarInfo]:
    members: dict[str, tarfile.TarInfo] = {}
    with tarfile.open(archive) as outer:
        manifest = outer.extractfile("manifest.json")
        assert manifest is not None
        for name in json.load(manifest)[0]["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(name), mode="r:*") as layer:
                members.update({m.name.rstrip("/"): m for m in layer.getmembers()})
    return members


@pytest.mark.realtool  # bwrap, through the namespace fixture
@pytest.mark.slow
def test_fake_root_commands_build_in_the_namespace(
    tmp_path: Path, namespace: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CustomizationLayer keeps what it needs as root: chown, then setpriv to nobody."""
    need("fakeroot")
    need("busybox")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "WORKSPACE").write_text(IMAGES_WORKSPACE.format(root=ROOT))
    (ws / "BUILD").write_text(IMAGES_BUILD)
    monkeypatch.chdir(ws)
    ob = f"--output_base={tmp_path / 'ob'}"
    assert main(["build", ob, "--sandbox=namespace", "--output_groups=+tarball", "//:owned"]) == 0
    owned = _image_members(ws / "strata-bin" / "owned.tar")
    assert (owned["data"].uid, owned["data"].gid, owned["data"].mode) == (1000, 1000, 0o700)


def test_the_worker_binds_the_real_directories_of_its_runfiles(tmp_path: Path) -> None:
    """What `realpath` of each runfiles file gives, read from the links' targets."""
    from strata.engine.execution.sandbox import _runfiles_dirs

    real = tmp_path / "real"
    (real / "a" / "b").mkdir(parents=True)
    (real / "a" / "b" / "m.py").write_text("")
    (real / "c").mkdir()
    (real / "c" / "n.py").write_text("")
    os.symlink(real / "c" / "n.py", real / "a" / "via.py")  # a link to a link
    (tmp_path / "alias").symlink_to(real / "a")  # a linked directory on the way
    tree = tmp_path / "tool.runfiles" / "ws" / "pkg"
    tree.mkdir(parents=True)
    os.symlink(tmp_path / "alias" / "b" / "m.py", tree / "m.py")
    os.symlink("../../../alias/via.py", tree / "rel.py")  # relative, through the alias
    (tree / "plain.txt").write_text("a file, not a link")
    os.symlink(tmp_path / "missing" / "x.py", tree / "dangling.py")
    runfiles = tmp_path / "tool.runfiles"
    expected = {
        Path(os.path.realpath(os.path.join(d, f))).parent
        for d, _, files in os.walk(runfiles)
        for f in files
    }
    assert _runfiles_dirs(runfiles) == expected
    assert {real / "a" / "b", real / "c", tree, tmp_path / "missing"} == expected
