"""Every example built by real Bazel 4.2.3 with the rules; images run in a real Docker engine.

One `bazel build --output_groups=+tarball,+sbom //examples/...` per session, shared
with the other tests of the examples (tests/examples_build.py; Bazel is heavy); the
tests then look at its outputs: docker-archives load and run, OCI
layouts pass umoci unpack and oci-image-tool validate, layering follows
max_layers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from examples_build import OUTPUT_GROUPS, strata_bin
from realtools import DockerEngine, need, run

ROOT = Path(__file__).resolve().parent.parent
RUNNABLE = {
    # example: (image target, expected stdout)
    "hello": ("hello", "Hello from a strata image!\n"),
    "layered": ("layered", "Hello from a strata image!\narg: layered\n"),
    "layered-on-top": (
        "layered-on-top",
        "1777 0\n/shared\nok\nHello from a strata image!\narg: on-top\n",
    ),
}
# Every OCI layout an example builds: (package, layout dir, ref to unpack).
OCI_LAYOUTS = [
    ("hello", "hello.oci", "latest"),
    ("layered", "layered.oci", "latest"),
    ("layered-on-top", "layered-on-top.oci", "latest"),
    ("env-merge", "base.oci", "latest"),
    ("env-merge", "env-merge.oci", "latest"),
    ("multiarch", "app-amd64.oci", "amd64"),
    ("multiarch", "app-arm64.oci", "arm64"),
    ("multiarch", "multiarch.oci", "latest-amd64"),
    ("multiarch", "multiarch.oci", "latest-arm64"),
]

# Every image's docker-archive and SBOM too (a plain build writes only the OCI layouts), so
# the archives and SBOM documents are compared between engines and loaded into Docker.
TARBALL = OUTPUT_GROUPS

pytestmark = pytest.mark.realtool


@pytest.fixture(scope="session")
def bazel_bin(examples_bazel_bin: Path) -> Path:
    """The session's one Bazel build of the examples (tests/examples_build.py)."""
    return examples_bazel_bin


def examples() -> list[str]:
    return sorted(p.parent.name for p in (ROOT / "examples").glob("*/BUILD"))


def test_every_example_has_a_readme() -> None:
    for name in examples():
        assert (ROOT / "examples" / name / "README.md").is_file(), name


@pytest.mark.parametrize("example", sorted(RUNNABLE))
def test_example_runs_in_docker(example: str, bazel_bin: Path, docker_engine: DockerEngine) -> None:
    target, expected = RUNNABLE[example]
    archive = bazel_bin / "examples" / example / f"{target}.tar"
    info = json.loads((bazel_bin / "examples" / example / f"{target}.image.json").read_text())
    ref = f"examples/{example}/{target}:latest"
    loaded = docker_engine.docker("load", "-i", str(archive))
    assert loaded.returncode == 0, loaded.stderr
    assert ref in loaded.stdout
    proc = docker_engine.docker("run", "--rm", "--network=none", ref)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected
    image_id = docker_engine.docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.strip()
    assert image_id == info["config_digest"]


def layer_names(archive: tarfile.TarFile, member: str) -> list[str]:
    with tarfile.open(fileobj=archive.extractfile(member)) as layer:
        return layer.getnames()


def test_layered_respects_max_layers_and_shares_store_path_layers(bazel_bin: Path) -> None:
    pkg = bazel_bin / "examples" / "layered"
    with tarfile.open(pkg / "layered.tar") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        layers = manifest[0]["Layers"]
        assert len(layers) == 8  # max_layers: 6 popular paths, 1 group of 7, 1 customisation
        members = [layer_names(tar, name) for name in layers]
    store_dirs = [
        sorted({n.split("/")[2] for n in names if n.count("/") >= 2 and n.startswith("nix/store/")})
        for names in members
    ]
    assert [len(d) for d in store_dirs] == [1, 1, 1, 1, 1, 1, 7, 0]
    # app-1.0 is referenced by nothing and references everything: least popular, first.
    assert store_dirs[0][0].endswith("-app-1.0")
    assert "bin/hello" in members[-1] and "share/manifest.txt" in members[-1]
    # A layer of its own is the store path's cached layer, byte for byte (uncompressed).
    infos = {
        json.loads((pkg / f"data-{i}.storepath.json").read_text())["path"]: i for i in range(12)
    }
    own = [d[0] for d in store_dirs[1:6]]
    for path in own:
        i = infos["/nix/store/" + path]
        cached = (pkg / f"data-{i}.layer.json").read_text()
        assert (
            json.loads(cached)["diff_id"]
            in json.loads((pkg / "layered.image.json").read_text())["diff_ids"]
        )


def test_store_path_names_match_nix_store_add(bazel_bin: Path, tmp_path: Path) -> None:
    nix_store = need("nix-store")
    pkg = bazel_bin / "examples" / "hello"
    info = json.loads((pkg / "hello-2.12.storepath.json").read_text())
    content = tmp_path / "hello-2.12"
    shutil.copytree(pkg / "hello-2.12.store" / "hello-2.12", content, symlinks=True)
    env = {
        "NIX_CONFIG": "build-users-group =\nsandbox = false\nsubstituters =\n",
        "NIX_STORE_DIR": "/nix/store",
        "NIX_STATE_DIR": str(tmp_path / "state"),
        "NIX_LOG_DIR": str(tmp_path / "log"),
        "PATH": "/usr/bin:/bin",
    }
    store_root = tmp_path / "root"
    added = run(nix_store, "--store", str(store_root), "--add", str(content), env=env)
    assert added.stdout.strip() == info["path"]


@pytest.mark.parametrize(("example", "layout", "ref"), OCI_LAYOUTS)
def test_oci_layout_unpacks_and_validates(
    example: str, layout: str, ref: str, bazel_bin: Path, tmp_path: Path
) -> None:
    umoci = need("umoci")
    validator = need("oci-image-tool")
    copy = tmp_path / "layout"
    shutil.copytree(bazel_bin / "examples" / example / layout, copy)
    out = run(validator, "validate", "--type", "image", str(copy)).stdout
    assert "imageLayout" in out and "Validation succeeded" in out
    run(umoci, "unpack", "--rootless", "--image", f"{copy}:{ref}", str(tmp_path / "bundle"))
    rootfs = tmp_path / "bundle" / "rootfs"
    if example == "multiarch":
        arch = ref.rsplit("-", 1)[-1]
        link = rootfs / "share" / "platform.txt"
        assert (rootfs / link.readlink().as_posix().lstrip("/")).read_text() == f"linux/{arch}\n"
        assert (rootfs / "bin" / "hello").is_symlink() == (arch == "amd64")
        return
    program = rootfs / "bin" / ("sh" if example == "env-merge" else "hello")
    if program.is_symlink():
        target = program.readlink().as_posix()
        if target.startswith("/"):  # layered_image links contents into the store
            assert target.startswith("/nix/store/")
            program = rootfs / target.lstrip("/")
        else:  # docker_image copies a path's own links (bin/sh -> busybox) as they are
            program = program.parent / target
    assert program.is_file() and program.stat().st_size > 100_000


def test_layered_on_top_reuses_the_base_layers(bazel_bin: Path) -> None:
    base = json.loads((bazel_bin / "examples/layered/layered.image.json").read_text())
    top = json.loads((bazel_bin / "examples/layered-on-top/layered-on-top.image.json").read_text())
    # the base's 8 layers verbatim, then busybox's own store path layer, then the top layer
    assert top["diff_ids"][:8] == base["diff_ids"] and len(top["diff_ids"]) == 10
    busybox = json.loads((bazel_bin / "examples/hello/busybox.layer.json").read_text())
    assert top["diff_ids"][8] == busybox["diff_id"]
    with tarfile.open(bazel_bin / "examples/layered-on-top/layered-on-top.custom.tar") as tar:
        shared = tar.getmember("shared")
        assert shared.isdir() and shared.mode == 0o1777
        assert tar.getmember("bin/sh").issym()


def test_env_merge_last_wins_in_docker(bazel_bin: Path, docker_engine: DockerEngine) -> None:
    pkg = bazel_bin / "examples" / "env-merge"
    ref = "examples/env-merge/env-merge:latest"
    assert ref in docker_engine.docker("load", "-i", str(pkg / "env-merge.tar")).stdout
    env = docker_engine.docker("image", "inspect", "-f", "{{json .Config.Env}}", ref).stdout.strip()
    assert json.loads(env) == ["PATH=/bin", "GREETING=from the base", "MODE=top", "NEW=second"]
    out = docker_engine.docker("run", "--rm", "--network=none", ref).stdout.splitlines()
    assert {"PATH=/bin", "GREETING=from the base", "MODE=top", "NEW=second"} <= set(out)
    assert "MODE=base" not in out and "NEW=first" not in out


def test_merged_archive_loads_as_both_images(bazel_bin: Path, docker_engine: DockerEngine) -> None:
    archive = bazel_bin / "examples" / "merged" / "merged.tar"
    for ref in ("examples/hello/hello:latest", "examples/layered/layered:latest"):
        docker_engine.docker("rmi", "-f", ref)
    loaded = docker_engine.docker("load", "-i", str(archive)).stdout
    assert "examples/hello/hello:latest" in loaded and "examples/layered/layered:latest" in loaded
    for example in ("hello", "layered"):
        target, expected = RUNNABLE[example]
        ref = f"examples/{example}/{target}:latest"
        assert docker_engine.docker("run", "--rm", "--network=none", ref).stdout == expected
        info = json.loads((bazel_bin / "examples" / example / f"{target}.image.json").read_text())
        got = docker_engine.docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.strip()
        assert got == info["config_digest"]


def test_exported_rootfs(bazel_bin: Path) -> None:
    with tarfile.open(bazel_bin / "examples" / "exported" / "exported.tar") as tar:
        members = {m.name.rstrip("/"): m for m in tar.getmembers()}
    assert members["shared"].isdir() and members["shared"].mode == 0o1777
    hello = members["bin/hello"]
    assert hello.issym() and hello.linkname.endswith("-app-1.0/bin/hello")
    assert members[hello.linkname.lstrip("/")].isfile()
    # lndir makes a store path's own link again as written (bin/sh -> busybox), and links
    # its files into the store: bin/busybox -> /nix/store/<hash>-busybox/bin/busybox
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
    busybox = members["bin/busybox"]
    assert busybox.issym() and busybox.linkname.endswith("-busybox/bin/busybox")
    assert members[busybox.linkname.lstrip("/")].isfile()
    stores = {n.split("/")[2] for n in members if n.startswith("nix/store/") and n.count("/") >= 2}
    assert len(stores) == 14  # app-1.0, 12 data paths, busybox
    assert not any(n.split("/")[-1].startswith(".wh.") for n in members)


def test_multiarch_index_lists_both_platforms(bazel_bin: Path, tmp_path: Path) -> None:
    skopeo = need("skopeo")
    layout = bazel_bin / "examples" / "multiarch" / "multiarch.oci"
    raw = json.loads(run(skopeo, "inspect", "--raw", f"oci:{layout}:latest").stdout)
    assert raw["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert sorted(m["platform"]["architecture"] for m in raw["manifests"]) == ["amd64", "arm64"]
    # each platform's manifest is the per-platform image's own, byte for byte
    for arch in ("amd64", "arm64"):
        own = json.loads(
            (bazel_bin / "examples/multiarch" / f"app-{arch}.oci/index.json").read_text()
        )
        (entry,) = [m for m in raw["manifests"] if m["platform"]["architecture"] == arch]
        assert entry["digest"] == own["manifests"][0]["digest"]
    inspected = json.loads(
        run(skopeo, "inspect", "--override-arch", "arm64", f"oci:{layout}:latest").stdout
    )
    assert inspected["Architecture"] == "arm64"


def _tree_digests(root: Path) -> dict[str, str]:
    import hashlib

    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if ".runfiles" in rel or ".store/" in rel or not p.is_file() or p.is_symlink():
            continue
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.mark.parametrize("example", examples())
def test_both_engines_and_rebuilds_give_identical_bytes(
    example: str, bazel_bin: Path, strata_bases: list[Path]
) -> None:
    bazel_built = _tree_digests(bazel_bin / "examples" / example)
    rebuilt = [_tree_digests(strata_bin(base) / "examples" / example) for base in strata_bases]
    assert bazel_built and rebuilt[0] == rebuilt[1]
    # Every output Bazel left is byte-identical in strata's builds (Bazel materialises the
    # symlinks of tree artifacts, so compare what it has; their layers are compared too).
    assert {n: rebuilt[0].get(n) for n in bazel_built} == bazel_built
    # every example's images and every store path's own layer are among them
    names = set(bazel_built)
    assert any(n.endswith((".tar", "/index.json")) for n in names)
    if example not in ("exported", "merged"):
        assert any(n.endswith(".spdx.json") for n in names) and any(
            n.endswith(".cdx.json") for n in names
        )
    if example in ("hello", "layered"):
        assert any(n.endswith(".layer.tar") for n in names)


def test_stream_writes_the_stored_archive(
    bazel_bin: Path, strata_bases: list[Path], tmp_path: Path
) -> None:
    stored = (bazel_bin / "examples/layered/layered.tar").read_bytes()
    with open(tmp_path / "s.tar", "wb") as out:
        proc = subprocess.run(
            [
                ROOT / "tools" / "strata",
                "run",
                f"--output_base={strata_bases[0]}",
                "//examples/layered:stream",
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.PIPE,
            text=False,
        )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "s.tar").read_bytes() == stored
    bazel_out = subprocess.run(
        [
            need("bazel"),
            "--batch",
            f"--output_user_root={bazel_bin.parents[5]}",
            "run",
            "--symlink_prefix=/",
            "--spawn_strategy=processwrapper-sandbox",
            "//examples/layered:stream",
        ],
        cwd=ROOT,
        capture_output=True,
    )
    assert bazel_out.returncode == 0, bazel_out.stderr[-2000:]
    assert bazel_out.stdout == stored
    # the stream target stores its layers, never the image
    assert not (bazel_bin / "examples/layered/stream.tar").exists()


def test_podman_loads_the_index_and_runs_the_host_platform(
    strata_bases: list[Path], podman_env: dict[str, str]
) -> None:
    # image_load of an OCI layout: docker cannot load one, podman picks amd64 from the index
    loaded = run(
        ROOT / "tools" / "strata",
        "run",
        f"--output_base={strata_bases[0]}",
        "//examples/multiarch:load",
        cwd=ROOT,
        env=podman_env,
    )
    assert "examples/multiarch/app:latest" in loaded.stdout
    ref = "examples/multiarch/app:latest"
    arch = run("podman", "image", "inspect", "-f", "{{.Architecture}}", ref, env=podman_env)
    assert arch.stdout.strip() == "amd64"
    out = run("podman", "run", "--rm", ref, env=podman_env).stdout
    assert out == "Hello from a strata image!\narg: multiarch\n"
    # The image has its name and no other (podman would name it after the layout's path).
    tags = run("podman", "image", "inspect", "--format", "{{json .RepoTags}}", ref, env=podman_env)
    assert json.loads(tags.stdout) == [f"localhost/{ref}"]


def test_keep_contents_dirlinks(bazel_bin: Path) -> None:
    # usr-lib-layout has lib -> usr/lib, lib-x has lib/x (keepContentsDirlinks)
    pkg = bazel_bin / "examples" / "hello"
    with tarfile.open(pkg / "dirlinks.custom.tar") as tar:
        kept = {m.name.rstrip("/"): m for m in tar.getmembers()}
    assert kept["lib"].issym() and kept["lib"].linkname == "usr/lib"
    assert kept["usr/lib/x"].isfile() and kept["usr/lib/base.txt"].isfile()
    assert not any(n.startswith("lib/") for n in kept)
    # copied from the path's own layer: data files are not executable
    assert kept["usr/lib/x"].mode == 0o644
    with tarfile.open(pkg / "no-dirlinks.custom.tar") as tar:
        replaced = {m.name.rstrip("/"): m for m in tar.getmembers()}
    # rsync -ak: the link is copied as the directory it points to, then lib-x merges in
    assert replaced["lib"].isdir() and replaced["lib/x"].isfile()
    assert replaced["lib/base.txt"].isfile()
    assert replaced["usr/lib/base.txt"].isfile() and "usr/lib/x" not in replaced


def test_image_load_through_strata_run(
    strata_bases: list[Path], docker_engine: DockerEngine, tmp_path: Path
) -> None:
    argv = [ROOT / "tools" / "strata", "run", f"--output_base={strata_bases[0]}"]
    docker_engine.docker("rmi", "-f", "examples/hello/hello:latest")
    loaded = run(*argv, "//examples/hello:load", cwd=ROOT, env=docker_engine.env)
    assert "examples/hello/hello:latest" in loaded.stdout
    out = docker_engine.docker("run", "--rm", "--network=none", "examples/hello/hello:latest")
    assert out.stdout == RUNNABLE["hello"][1]
    # no daemon: one line naming the target, before any loading
    gone = f"unix://{tmp_path}/no-docker.sock"
    proc = subprocess.run(
        [*argv, "//examples/hello:load"],
        cwd=ROOT,
        env={**os.environ, "DOCKER_HOST": gone},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert (
        f"error: //examples/hello:load: no docker daemon answers (got DOCKER_HOST={gone}); "
        "start it, set DOCKER_HOST, or STRATA_LOADER=podman"
    ) in proc.stderr
    # no loader program on PATH: the script itself says so (run directly, PATH empty)
    script = strata_bin(strata_bases[0]) / "examples" / "hello" / "load"
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run(
        [script],
        env={"PATH": str(empty), "STRATA_LOADER": "podman"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        f"error: //examples/hello:load: no podman program on PATH (got PATH={empty}); "
    )
