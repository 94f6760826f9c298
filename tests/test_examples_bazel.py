"""Every example built by real Bazel 4.2.3 with the rules; images run in a real Docker engine.

One `bazel build //examples/...` per session (Bazel is heavy); the tests then
look at its outputs: docker-archives load and run, OCI layouts pass umoci
unpack and oci-image-tool validate, layering follows max_layers.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from realtools import DockerEngine, need, run

ROOT = Path(__file__).resolve().parent.parent
RUNNABLE = {
    # example: (image target, expected stdout)
    "hello": ("hello", "Hello from a strata image!\n"),
    "layered": ("layered", "Hello from a strata image!\narg: layered\n"),
}

pytestmark = pytest.mark.realtool


def bazel(root: Path, output_user_root: Path, *args: str) -> str:
    return run(
        need("bazel"),
        "--batch",
        f"--output_user_root={output_user_root}",
        *args,
        cwd=root,
    ).stdout


@pytest.fixture(scope="session")
def bazel_bin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    need("bazel")
    user_root = tmp_path_factory.mktemp("bazel-root")
    bazel(
        ROOT,
        user_root,
        "build",
        "--symlink_prefix=/",
        "--spawn_strategy=processwrapper-sandbox",
        "//examples/...",
    )
    out = bazel(ROOT, user_root, "info", "--symlink_prefix=/", "bazel-bin").strip()
    yield Path(out)


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


@pytest.mark.parametrize("example", sorted(RUNNABLE))
def test_oci_layout_unpacks_and_validates(example: str, bazel_bin: Path, tmp_path: Path) -> None:
    umoci = need("umoci")
    validator = need("oci-image-tool")
    target = RUNNABLE[example][0]
    layout = bazel_bin / "examples" / example / f"{target}.oci"
    copy = tmp_path / "layout"
    shutil.copytree(layout, copy)
    index = json.loads((copy / "index.json").read_text())
    ref = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
    out = run(validator, "validate", "--type", "image", str(copy)).stdout
    assert "imageLayout" in out
    run(umoci, "unpack", "--rootless", "--image", f"{copy}:{ref}", str(tmp_path / "bundle"))
    rootfs = tmp_path / "bundle" / "rootfs"
    hello = rootfs / "bin" / "hello"
    if hello.is_symlink():  # layered_image links contents into the store
        target = hello.readlink().as_posix()
        assert target.startswith("/nix/store/")
        hello = rootfs / target.lstrip("/")
    assert hello.is_file() and hello.stat().st_size > 100_000


@pytest.fixture(scope="session")
def strata_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same examples built by the embedded engine (`tools/strata build`)."""
    base = tmp_path_factory.mktemp("strata-base")
    run(
        ROOT / "tools" / "strata",
        "build",
        f"--output_base={base}",
        *[f"//examples/{name}" for name in sorted(RUNNABLE)],
        cwd=ROOT,
    )
    found = list(base.glob("execroot/*/bazel-out/k8-fastbuild/bin"))
    assert len(found) == 1, found
    return found[0]


def _tree_digests(root: Path) -> dict[str, str]:
    import hashlib

    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.mark.parametrize("example", sorted(RUNNABLE))
def test_both_engines_give_identical_bytes(example: str, bazel_bin: Path, strata_bin: Path) -> None:
    target = RUNNABLE[example][0]
    pkg_b = bazel_bin / "examples" / example
    pkg_s = strata_bin / "examples" / example
    for name in (f"{target}.tar", f"{target}.image.json", f"{target}.custom.tar"):
        assert (pkg_b / name).read_bytes() == (pkg_s / name).read_bytes(), name
    oci_b = _tree_digests(pkg_b / f"{target}.oci")
    assert oci_b and oci_b == _tree_digests(pkg_s / f"{target}.oci")
    # every store path's own layer too (the cached unit)
    layers = sorted(p.name for p in pkg_b.glob("*.layer.tar"))
    assert layers
    for name in layers:
        assert (pkg_b / name).read_bytes() == (pkg_s / name).read_bytes(), name
