"""tools/benchmarks/e2e_gen.py: a deterministic closure of the right shape, which builds."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

from strata.store import nar
from strata.store.path import source_path

ROOT = Path(__file__).resolve().parents[1]
SCALE = 0.002
# sha256 over (path, mode, content digest) of every file of store/ at SCALE: the bytes
# must be the same on every machine and Python version.
GOLDEN = "1f78f7b724e9ee33f00ccb92d5a68768ecb987c309490061200e6d3bc90fb06d"
LABEL_SAFE = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]*")


def load_gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "e2e_gen", ROOT / "tools" / "benchmarks" / "e2e_gen.py"
    )
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    sys.modules["e2e_gen"] = gen  # dataclasses and the process pool look it up by name
    spec.loader.exec_module(gen)
    return gen


gen = load_gen()


def tree_digest(root: Path) -> tuple[str, dict[str, tuple[int, str]]]:
    """(digest of the whole tree, {relative path: (mode, sha256 or link target)})."""
    entries: dict[str, tuple[int, str]] = {}
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            p = Path(dirpath) / name
            st = p.lstat()
            entries[str(p.relative_to(root))] = (
                stat.S_IMODE(st.st_mode),
                hashlib.sha256(p.read_bytes()).hexdigest(),
            )
    h = hashlib.sha256(json.dumps(sorted(entries.items())).encode()).hexdigest()
    return h, entries


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("e2e") / "ws"
    gen.generate(ws, SCALE, strata=Path("/path/to/strata"))
    return ws


def test_generation_is_deterministic(workspace: Path, tmp_path: Path) -> None:
    again = tmp_path / "ws"
    gen.generate(again, SCALE, strata=Path("/path/to/strata"))
    first, entries = tree_digest(workspace)
    second, _ = tree_digest(again)
    assert first == second
    assert len(entries) > 250


def test_golden_digest(workspace: Path) -> None:
    digest, _ = tree_digest(workspace / "store")
    assert digest == GOLDEN


def test_shape_at_small_scale(workspace: Path) -> None:
    summary = json.loads((workspace / "e2e.json").read_text())
    total, n, max_layers = gen.scaled(SCALE)
    names = [p["name"] for p in summary["paths"]]
    assert len(names) == n == 13 and summary["max_layers"] == max_layers == 4
    assert sorted(os.listdir(workspace / "store")) == names
    index = {name: i for i, name in enumerate(names)}
    for i, p in enumerate(summary["paths"]):
        assert len(p["deps"]) <= 6
        assert all(index[d] < i for d in p["deps"]), p
        assert LABEL_SAFE.fullmatch(p["name"])
    # the leaf is referenced by no path, and its edit file exists
    assert not any(summary["leaf"] in p["deps"] for p in summary["paths"])
    assert (workspace / summary["edit"]).is_file()
    # bytes and files as planned; every name is safe in a Bazel label
    files = [p for p in (workspace / "store").rglob("*") if p.is_file()]
    assert len(files) == summary["files"]
    assert sum(f.stat().st_size for f in files) == summary["bytes"]
    assert abs(summary["bytes"] - total) < total // 100
    for f in files:
        rel = f.relative_to(workspace / "store")
        assert all(LABEL_SAFE.fullmatch(part) for part in rel.parts), rel
        executable = bool(f.stat().st_mode & 0o111)
        assert executable == (
            rel.parts[1] == "bin" or (rel.parts[1] == "lib" and f.suffix == ".so")
        )
    # the BUILD file: one store_path a path, lib64 links on a third, both images
    build = (workspace / "BUILD").read_text()
    assert build.count("store_path(\n") == n
    lib64 = [p["name"] for p in summary["paths"] if p["lib64"]]
    assert build.count('symlinks = {"lib64": "lib"}') == len(lib64) == n // 3
    for name in lib64:  # the link points at a directory that exists
        assert (workspace / "store" / name / "lib").is_dir()
    assert 'name = "big_raw",\n    contents = ALL,\n    compressor = "none",' in build
    assert 'name = "big",\n    contents = ALL,\n    max_layers = 4,' in build
    stream = 'stream_layered_image(\n    name = "big_stream",\n    contents = ALL,\n'
    assert stream + '    compressor = "none",\n    max_layers = 4,' in build
    workspace_file = (workspace / "WORKSPACE").read_text()
    assert 'local_repository(name = "strata", path = "/path/to/strata")' in workspace_file
    assert "strata_dependencies()" in workspace_file


def test_paths_mention_their_references_under_the_names_nix_gives(
    workspace: Path, tmp_path: Path
) -> None:
    """SUPPORT lists each path's references by store path, and the generator names paths
    as strata (and Nix) do: the NAR of the tree the BUILD file describes, `lib64` included."""
    summary = json.loads((workspace / "e2e.json").read_text())
    by_name = {p["name"]: p for p in summary["paths"]}
    with_refs = 0
    for p in summary["paths"]:
        root = workspace / "store" / p["name"]
        refs = sorted(by_name[d]["store_path"] for d in p["deps"])
        support = root / gen.SUPPORT
        if refs:
            with_refs += 1
            assert support.read_text() == " ".join(refs) + "\n"
        else:
            assert not support.exists()
        laid_out = tmp_path / p["name"]
        shutil.copytree(root, laid_out, symlinks=True)
        if p["lib64"]:
            (laid_out / "lib64").symlink_to("lib")
        named = source_path(nar.digest(laid_out).sha256, p["name"], refs)
        assert p["store_path"] == str(named), p["name"]
    assert with_refs > len(summary["paths"]) // 2


def test_content_compresses_like_real_closures() -> None:
    """Every 100th file of the default scale (about 18 MB): gzip shrinks it 2-3x."""
    closure = gen.plan(1.0)
    text = memoryview(gen.corpus())
    data = b"".join(
        bytes(chunk)
        for p in closure.paths
        for n in range(p.index % 100, len(p.files), 100)
        for chunk in gen.content(p.index, n, p.files[n].size, p.files[n].kind, text)
    )
    assert 10 << 20 < len(data) < 40 << 20
    assert 2.0 < len(data) / len(gzip.compress(data, 6)) < 3.0


def test_shape_at_default_scale() -> None:
    closure = gen.plan(1.0)
    sizes = sorted((p.size for p in closure.paths), reverse=True)
    files = [f for p in closure.paths for f in p.files]
    assert len(closure.paths) == 300 and closure.max_layers == 100
    assert sum(sizes) >= 1.5 * 2**30 and len(files) >= 50_000
    assert sizes[0] > 100 * sizes[-1] and sizes[0] > 20 * sizes[150]  # Zipf: few big paths
    assert (
        max(f.size for f in files) > 4 << 20
        and sorted(f.size for f in files)[len(files) // 2] < 8192
    )
    assert sum(p.lib64 for p in closure.paths) == 100
    assert max(len(p.deps) for p in closure.paths) == 6
    assert all(d < p.index for p in closure.paths for d in p.deps)


def test_cli_rejects_a_bad_scale_and_a_used_directory(tmp_path: Path) -> None:
    script = ROOT / "tools" / "benchmarks" / "e2e_gen.py"
    bad = subprocess.run(
        [sys.executable, script, tmp_path / "a", "--scale", "0"], capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert bad.stderr == "error: --scale: must be in (0, 16] (got 0.0); use e.g. 0.01 or 1\n"
    assert not (tmp_path / "a").exists()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "mine").write_text("keep me")
    used = subprocess.run([sys.executable, script, tmp_path / "b"], capture_output=True, text=True)
    assert used.returncode == 1
    assert used.stderr.startswith(f"error: {tmp_path / 'b'}: not empty (got ['mine']);")
    assert os.listdir(tmp_path / "b") == ["mine"]


@pytest.mark.slow
def test_strata_builds_big_raw(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    gen.generate(ws, SCALE)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    argv = [sys.executable, "-m", "strata", "build", f"--output_base={tmp_path / 'ob'}"]
    argv.append("--output_groups=+tarball")
    proc = subprocess.run([*argv, "//:big_raw"], cwd=ws, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # every declared reference is mentioned, under the name the generator gave it
    assert "warning:" not in proc.stderr + proc.stdout
    summary = json.loads((ws / "e2e.json").read_text())
    for p in summary["paths"]:
        info = json.loads((ws / "strata-bin" / f"{p['name']}.storepath.json").read_text())
        assert info["path"] == p["store_path"]
    with tarfile.open(ws / "strata-bin" / "big_raw.tar") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert len(manifest[0]["Layers"]) == 4  # max_layers: 3 store path layers + the top one
    # big_stream streams the same layers, its group read from a recipe
    run = [sys.executable, "-m", "strata", "run", f"--output_base={tmp_path / 'ob'}"]
    with open(tmp_path / "stream.tar", "wb") as out:
        proc = subprocess.run(
            [*run, "//:big_stream"], cwd=ws, env=env, stdout=out, stderr=subprocess.PIPE
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    groups = json.loads((ws / "strata-bin" / "big_stream.layers" / "layers.json").read_text())
    assert any(g.get("join") for g in groups["layers"])
    with tarfile.open(tmp_path / "stream.tar") as tar:
        streamed = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        for name in streamed[0]["Layers"]:  # the archive is read whole: sizes are checked
            assert tar.extractfile(name).read()  # type: ignore[union-attr]
    assert streamed[0]["Layers"] == manifest[0]["Layers"]
