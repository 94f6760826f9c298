"""nix_store_import: paths of a real Nix store (Debian's nix-bin) in images, under both engines.

The test makes a private store (NIX_STORE_DIR/NIX_STATE_DIR under a temporary
directory): `nix-build` of a derivation whose output `greet-1.0` references a
source path `greeting-1.0` (a real reference, found by Nix's scanner, plus a
symlink into it). A workspace imports `greet-1.0` with `nix_store_import`
and builds a layered image of it and a busybox store path; Bazel 4.2.3 and
`strata build` give the same bytes, the imported closure matches
`nix-store -q`, and the image runs in Docker.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from realtools import DockerEngine, need, run

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.realtool, pytest.mark.slow]

DRV = """let greeting = builtins.path { path = ./greeting-1.0; name = "greeting-1.0"; };
in derivation {
  name = "greet-1.0";
  system = "x86_64-linux";
  builder = "/bin/sh";
  args = [ "-c" ''
    /bin/mkdir -p $out/bin
    /usr/bin/printf '#!/bin/sh\\ncat %s/share/greeting.txt\\n' ${greeting} > $out/bin/greet
    /bin/chmod 0755 $out/bin/greet
    /bin/ln -s ${greeting}/share $out/share
  '' ];
}
"""

WORKSPACE = """local_repository(name = "strata", path = "{root}")

load("@strata//rules:repositories.bzl", "nix_store_import", "strata_dependencies")

strata_dependencies()

nix_store_import(
    name = "nixstuff",
    paths = ["{greet}"],
    store_dir = "{store_dir}",
    state_dir = "{state_dir}",
)
"""

BUILD = """load("@strata//rules:defs.bzl", "layered_image", "store_path")

genrule(name = "busybox_bin", outs = ["busybox.bin"], cmd = "cp /bin/busybox $@")

store_path(
    name = "busybox",
    srcs = {{":busybox_bin": "bin/busybox"}},
    executables = ["bin/busybox"],
    symlinks = {{"bin/sh": "busybox", "bin/cat": "busybox"}},
    store_dir = "{store_dir}",
)

layered_image(
    name = "app",
    contents = ["@nixstuff//:greet-1.0", ":busybox"],
    config = {{"Cmd": ["/bin/greet"]}},
    tag = "latest",
)
"""


def nix_env(t: Path) -> dict[str, str]:
    return {
        "NIX_CONFIG": "build-users-group =\nsandbox = false\nsubstituters =\n",
        "NIX_STORE_DIR": str(t / "nix/store"),
        "NIX_STATE_DIR": str(t / "nix/var/nix"),
        "NIX_LOG_DIR": str(t / "nix/var/log/nix"),
        "HOME": str(t),
        "PATH": "/usr/bin:/bin",
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """(temp dir, greet-1.0's path, greeting-1.0's path) in a private Nix store."""
    nix_build = need("nix-build")
    t = tmp_path_factory.mktemp("nixstore")
    (t / "greeting-1.0/share").mkdir(parents=True)
    (t / "greeting-1.0/share/greeting.txt").write_text("Hello from a real Nix store\n")
    (t / "greet.nix").write_text(DRV)
    env = nix_env(t)
    greet = run(nix_build, str(t / "greet.nix"), "--no-out-link", env=env).stdout.strip()
    refs = run("nix-store", "-q", "--references", greet, env=env).stdout.split()
    assert len(refs) == 1 and refs[0].endswith("-greeting-1.0")
    return t, greet, refs[0]


def workspace(tmp: Path, store: tuple[Path, str, str]) -> Path:
    t, greet, _ = store
    ws = tmp / "ws"
    ws.mkdir()
    store_dir = str(t / "nix/store")
    (ws / "WORKSPACE").write_text(
        WORKSPACE.format(root=ROOT, greet=greet, store_dir=store_dir, state_dir=t / "nix/var/nix")
    )
    (ws / "BUILD").write_text(BUILD.format(store_dir=store_dir))
    return ws


def image_paths(archive: Path) -> dict[str, tarfile.TarInfo]:
    members: dict[str, tarfile.TarInfo] = {}
    with tarfile.open(archive) as outer:
        layers = json.load(outer.extractfile("manifest.json"))[0]["Layers"]  # type: ignore[arg-type]
        for name in layers:
            with tarfile.open(fileobj=outer.extractfile(name), mode="r:*") as layer:
                members.update({m.name.rstrip("/"): m for m in layer.getmembers()})
    return members


def test_imported_paths_in_an_image_under_bazel_and_strata(
    store: tuple[Path, str, str], tmp_path: Path, docker_engine: DockerEngine
) -> None:
    bazel = need("bazel")
    t, greet, greeting = store
    ws = workspace(tmp_path, store)
    env = {**nix_env(t), "PATH": "/usr/local/bin:/usr/bin:/bin"}
    common = [bazel, "--batch", f"--output_user_root={tmp_path / 'bazel-root'}"]
    flags = ["--symlink_prefix=/", "--spawn_strategy=processwrapper-sandbox"]
    tarball = "--output_groups=+tarball"  # the docker-archive, loaded below
    run(*common, "build", *flags, tarball, "//:app", "@nixstuff//:all", cwd=ws, env=env)
    bazel_bin = Path(run(*common, "info", *flags, "bazel-bin", cwd=ws, env=env).stdout.strip())
    base = tmp_path / "strata-base"
    strata = [ROOT / "tools" / "strata", "build", f"--output_base={base}", tarball]
    run(*strata, "//:app", cwd=ws, env=env)
    (strata_bin,) = base.glob("execroot/*/bazel-out/k8-fastbuild/bin")

    archive = bazel_bin / "app.tar"
    assert archive.read_bytes() == (strata_bin / "app.tar").read_bytes()

    # the imported closure is what nix-store records: paths, references, NAR hashes
    external = bazel_bin.parents[2] / "external" / "nixstuff" / "paths"
    for path in (greet, greeting):
        info = json.loads((external / f"{Path(path).name}.storepath.json").read_text())
        assert info["path"] == path
        nar_hash = run("nix-store", "-q", "--hash", path, env=nix_env(t)).stdout.strip()
        assert info["narHash"] == nar_hash
    greet_info = json.loads((external / f"{Path(greet).name}.storepath.json").read_text())
    assert greet_info["references"] == [greeting]
    assert sorted(p["path"] for p in greet_info["closure"]) == sorted([greet, greeting])

    # the image holds both paths at their store paths, the link into greeting kept
    members = image_paths(archive)
    rel = greet.lstrip("/")
    assert members[f"{rel}/bin/greet"].isfile() and members[f"{rel}/bin/greet"].mode & 0o111
    assert members[f"{rel}/share"].issym()
    assert members[f"{rel}/share"].linkname == f"{greeting}/share"
    assert members[f"{greeting.lstrip('/')}/share/greeting.txt"].isfile()
    assert members["bin/greet"].issym() and members["bin/greet"].linkname == f"{greet}/bin/greet"

    ref = "app:latest"
    loaded = docker_engine.docker("load", "-i", str(archive))
    assert loaded.returncode == 0, loaded.stderr
    proc = docker_engine.docker("run", "--rm", "--network=none", ref)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Hello from a real Nix store\n"


def test_a_path_outside_the_store_dir_names_the_repository(
    store: tuple[Path, str, str], tmp_path: Path
) -> None:
    t, greet, _ = store
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "WORKSPACE").write_text(
        WORKSPACE.format(
            root=ROOT, greet="/nix/store/not-here", store_dir=t / "nix/store", state_dir=t
        )
    )
    (ws / "BUILD").write_text("")
    proc = subprocess.run(
        [ROOT / "tools" / "strata", "build", f"--output_base={tmp_path / 'b'}", "@nixstuff//:all"],
        cwd=ws,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stderr
    assert "@nixstuff: attribute 'paths': not a path directly inside the store directory" in (
        proc.stderr
    )
    assert "Traceback" not in proc.stderr
