"""strata.store.root_copy against the real rsync, as buildImage runs it for copyToRoot.

Every case lays store paths out at real absolute paths (so absolute links
between them resolve for rsync as they do in Nix's build sandbox), runs
`rsync -ak` (or `-aK`, keepContentsDirlinks) `--chown=0:0 <path>/ <layer>/`
once per path in order, and copies the same paths with strata from their
layers: the trees must agree (kind, link target, file content; modes are
the store's plus owner-write), or both must fail. strata copies twice, on
disk and in memory (strata.oci.memroot), and both must agree, errors too.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import storegen
from realtools import need
from storegen import DIR, FILE, LINK, STORE_LINK, Entry, PathSpec, SetSpec
from strata.errors import UserError
from strata.oci.memroot import MemoryRoot
from strata.oci.tree import BYTES, SYMLINK
from strata.oci.tree import DIR as DIR_ENTRY
from strata.store.layer import write_store_layer
from strata.store.listing import StoreView
from strata.store.root_copy import RootCopy

pytestmark = pytest.mark.realtool


def tree(root: Path, *, owner_write: bool = False) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = f"link {os.readlink(p)}"
                continue
            mode = oct(p.stat().st_mode & 0o7777 | (0o200 if owner_write else 0))
            out[rel] = f"dir {mode}" if p.is_dir() else f"file {mode} {p.read_bytes()!r:.40}"
    return out


def memory_tree(fs: MemoryRoot) -> dict[str, str]:
    """`tree` of a copy made in memory."""
    out = {}
    for e in fs.entries():
        if e.kind == SYMLINK:
            out[e.name] = f"link {e.target}"
            continue
        mode = oct(e.mode & 0o7777)
        if e.kind == DIR_ENTRY:
            out[e.name] = f"dir {mode}"
            continue
        data = e.data
        if e.kind != BYTES:
            with open(e.source, "rb") as f:
                f.seek(e.offset)
                data = f.read(e.size)
        out[e.name] = f"file {mode} {data!r:.40}"
    return out


def _copy(
    root: Path | MemoryRoot, view: StoreView, keep_dirlinks: bool, paths: list[str]
) -> dict[str, str] | str:
    copier = RootCopy(root, view, keep_dirlinks)
    try:
        for p in paths:
            copier.copy(p, "test")
    except UserError as e:
        return f"fails: {e}"
    return tree(root) if isinstance(root, Path) else memory_tree(root)


def copied(spec: SetSpec, keep_dirlinks: bool, tmp: Path) -> tuple[object, object]:
    """(rsync's tree or "fails", strata's tree or "fails") for the set copied in order."""
    rsync = need("rsync")
    store = tmp / "store"
    paths = storegen.write_store(spec, store)
    real, ours = tmp / "real", tmp / "ours"
    real.mkdir()
    ours.mkdir()
    flags = "-aK" if keep_dirlinks else "-ak"
    real_result: object = None
    for p in paths:
        try:
            proc = subprocess.run(
                [rsync, flags, "--chown=0:0", f"{p}/", f"{real}/"], capture_output=True, timeout=5
            )
        except subprocess.TimeoutExpired:
            real_result = "fails"  # rsync -k following a link to an ancestor never ends
            break
        if proc.returncode != 0:
            real_result = "fails"
            break
    layers = {}
    for p in (str(q) for q in store.iterdir()):  # the closure: also paths only linked into
        layers[p] = str(tmp / f"{Path(p).name}.tar")
        write_store_layer(layers[p], p, p, str(store))
    view = StoreView(layers, "test")
    on_disk = _copy(ours, view, keep_dirlinks, paths)
    assert _copy(MemoryRoot("test"), view, keep_dirlinks, paths) == on_disk
    if isinstance(on_disk, str):
        return real_result or tree(real, owner_write=True), "fails"
    return real_result or tree(real, owner_write=True), on_disk


F = Entry(FILE, b"f\n")
BASH = PathSpec("p0", {"share/man/x": F, "bin/bash": F})
CASES = {
    "a link to a directory is copied as the directory (-k)": SetSpec(
        "t",
        (
            PathSpec(
                "p0",
                {
                    "lib/sub/x": F,
                    "lib64": Entry(LINK, target="lib"),
                    "share/doc": Entry(LINK, target="../lib/sub"),
                    "chain": Entry(LINK, target="lib64"),
                    "bin/tool": Entry(FILE, b"t\n", executable=True),
                    "bin/current": Entry(LINK, target="tool"),
                    "dangling": Entry(LINK, target="missing"),
                    "empty": Entry(DIR),
                },
            ),
        ),
    ),
    "absolute links into another store path are followed (-k)": SetSpec(
        "t",
        (
            BASH,
            PathSpec(
                "p1",
                {
                    "share": Entry(STORE_LINK, target="share"),
                    "sh": Entry(STORE_LINK, target="bin/bash"),
                },
                BASH,
            ),
        ),
    ),
    "a link into a path that is not copied, only in the closure (-k)": SetSpec(
        "t",
        (PathSpec("p1", {"share": Entry(STORE_LINK, target="share/man")}, BASH),),
    ),
    "a later directory replaces a link, merges into a directory": SetSpec(
        "t",
        (
            PathSpec("p0", {"usr/lib/a": F, "lib": Entry(LINK, target="usr/lib"), "d/x": F}),
            PathSpec("p1", {"lib/b": F, "d/y": F, "f": F}),
            PathSpec("p2", {"f/z": F, "dang": Entry(LINK, target="nowhere")}),
            PathSpec("p3", {"dang/w": F}),
        ),
    ),
    "files and links replace files, links and empty directories": SetSpec(
        "t",
        (
            PathSpec("p0", {"a": F, "b": Entry(LINK, target="a"), "e": Entry(DIR)}),
            PathSpec("p1", {"a": Entry(LINK, target="b"), "b": Entry(FILE, b"2\n"), "e": F}),
        ),
    ),
    "a file onto a directory with content fails": SetSpec(
        "t", (PathSpec("p0", {"d/x": F}), PathSpec("p1", {"d": F}))
    ),
    "a link onto a directory with content fails": SetSpec(
        "t",
        (
            PathSpec("p0", {"d/e": Entry(DIR)}),
            PathSpec("p1", {"x": F, "d": Entry(LINK, target="x")}),
        ),
    ),
    "a link to an ancestor cannot be copied (-k)": SetSpec(
        "t", (PathSpec("p0", {"d/x": F, "d/up": Entry(LINK, target="..")}),)
    ),
}


@pytest.mark.parametrize("keep_dirlinks", [False, True], ids=["-ak", "-aK"])
@pytest.mark.parametrize("case", list(CASES))
def test_copy_matches_real_rsync(case: str, keep_dirlinks: bool, tmp_path: Path) -> None:
    real, ours = copied(CASES[case], keep_dirlinks, tmp_path)
    assert ours == real


def test_keep_dirlinks_merges_through_the_link_and_refuses_the_store(tmp_path: Path) -> None:
    spec = SetSpec(
        "t",
        (
            PathSpec("p0", {"usr/lib/a": F, "lib": Entry(LINK, target="usr/lib")}),
            PathSpec("p1", {"lib/b": F}),
        ),
    )
    real, ours = copied(spec, True, tmp_path / "merge")
    assert ours == real
    assert isinstance(ours, dict) and ours["lib"] == "link usr/lib" and "usr/lib/b" in ours
    share = PathSpec("p0", {"share/a": F})
    into_store = SetSpec(
        "t",
        (
            share,
            PathSpec("p1", {"share": Entry(STORE_LINK, target="share")}, share),
            PathSpec("p2", {"share/b": F}),
        ),
    )
    real, ours = copied(into_store, True, tmp_path / "store")
    assert ours == real == "fails"


@pytest.mark.parametrize("keep_dirlinks", [False, True], ids=["-ak", "-aK"])
def test_copy_matches_real_rsync_on_random_sets(keep_dirlinks: bool, tmp_path: Path) -> None:
    need("rsync")
    outcomes = {"same": 0, "both fail": 0}
    for spec in storegen.generate(12, 120, dangling=True, big=0):
        real, ours = copied(spec, keep_dirlinks, tmp_path / spec.name)
        assert ours == real, spec.name
        outcomes["both fail" if ours == "fails" else "same"] += 1
    assert outcomes["same"] > outcomes["both fail"], outcomes
