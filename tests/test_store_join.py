"""strata.store.join against the real lndir (Debian's xutils-dev), as symlinkJoin runs it.

Every case lays store paths out at real absolute paths, runs `lndir -silent
<path> <out>` once per path in order (what nixpkgs' symlinkJoin does), and
joins the same paths with strata from their layers' listings: the two trees
must agree entry for entry (kind, link target, directory mode). strata joins
twice, on disk and in memory (strata.oci.memroot), and both must agree.
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
from strata.oci.tree import DIR as DIR_ENTRY
from strata.oci.tree import SYMLINK
from strata.store.join import link_join
from strata.store.layer import write_store_layer
from strata.store.listing import read_members


def tree(root: Path) -> dict[str, str]:
    """Each entry under root: 'dir <mode>', 'link <target>' or 'file'."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = f"link {os.readlink(p)}"
            elif p.is_dir():
                out[rel] = f"dir {oct(p.stat().st_mode & 0o777)}"
            else:
                out[rel] = "file"
    return out


def memory_tree(fs: MemoryRoot) -> dict[str, str]:
    """`tree` of a join made in memory."""
    out = {}
    for e in fs.entries():
        if e.kind == SYMLINK:
            out[e.name] = f"link {e.target}"
        elif e.kind == DIR_ENTRY:
            out[e.name] = f"dir {oct(e.mode & 0o777)}"
        else:
            out[e.name] = "file"
    return out


def joined(spec: SetSpec, tmp: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(real lndir's tree, strata's tree) for the set's paths, joined in order."""
    lndir = need("lndir")
    store = tmp / "store"
    paths = storegen.write_store(spec, store)
    real, ours = tmp / "real", tmp / "ours"
    real.mkdir()
    ours.mkdir()
    memory = MemoryRoot("test")
    old = os.umask(0o022)  # Nix builders' umask
    try:
        for p in paths:
            subprocess.run([lndir, "-silent", p, str(real)], check=True, capture_output=True)
            layer = tmp / f"{Path(p).name}.tar"
            write_store_layer(layer, p, p, str(store))
            link_join(ours, p, read_members(str(layer), p, "test"))
            link_join(memory, p, read_members(str(layer), p, "test"))
    finally:
        os.umask(old)
    assert memory_tree(memory) == tree(ours)
    return tree(real), tree(ours)


def _set(*paths: dict[str, Entry]) -> SetSpec:
    return SetSpec("t", tuple(PathSpec(f"p{i}", e) for i, e in enumerate(paths)))


F = Entry(FILE, b"f\n")
CASES = {
    "file vs file: the first path's link stays": _set({"bin/sh": F}, {"bin/sh": F}),
    "dir vs link to dir: the link stays, the dir is not joined": _set(
        {"lib/x": F, "lib64": Entry(LINK, target="lib")}, {"lib64/y": F}
    ),
    "link vs dir: the dir stays, merged with later dirs": _set(
        {"lib64/y": F}, {"lib/x": F, "lib64": Entry(LINK, target="lib")}, {"lib64/z": F}
    ),
    "dir vs file: whichever came first stays": _set({"a": F, "b/x": F}, {"a/y": F, "b": F}),
    "dir vs link to a file": _set({"t": F, "c": Entry(LINK, target="t")}, {"c/d": F}),
    "empty dirs are mirrored and merged": _set(
        {"var/empty": Entry(DIR), "var/lib": Entry(DIR)}, {"var/lib/x": F, "opt": Entry(DIR)}
    ),
    "dangling links are copied, and keep their name": _set(
        {"d": Entry(LINK, target="/nowhere"), "e": Entry(LINK, target="../missing")},
        {"d/x": F, "e": F},
    ),
    "links are copied as written: relative, chains, to ancestors": _set(
        {
            "lib/sub/x": F,
            "share/doc": Entry(LINK, target="../lib/sub"),
            "chain": Entry(LINK, target="lib64"),
            "lib64": Entry(LINK, target="lib"),
            "lib/up": Entry(LINK, target=".."),
        }
    ),
    "absolute links into another path are copied": _set(
        {"bin/bash": F}, {"bin/sh": Entry(STORE_LINK, target="bin/bash")}
    ),
    "~ names and revision-control dirs are skipped, a .git file is not": _set(
        {"x~": F, "d~/x": F, "CVS/x": F, ".git": F, "sub/.svn/y": F, "sub/RCS": F}
    ),
    "non-ASCII, 200-character names": _set({"é-ü名/" + "l" * 200: F}, {"é-ü名/x": F}),
}


@pytest.mark.realtool
@pytest.mark.parametrize("case", list(CASES))
def test_join_matches_real_lndir(case: str, tmp_path: Path) -> None:
    spec = CASES[case]
    if case.startswith("absolute"):
        spec = SetSpec("t", (spec.paths[0], PathSpec("p1", spec.paths[1].entries, spec.paths[0])))
    real, ours = joined(spec, tmp_path)
    assert ours == real
    assert real, "lndir joined nothing"


def test_join_rules_by_example(tmp_path: Path) -> None:
    """The rules in strata.store.join, spelled out on the issue's shape (no lndir needed)."""
    real, ours = joined_without_lndir(storegen.issue_set(), tmp_path)
    first = ours["lib/libx.so"].split(" ", 1)[1]
    assert first.endswith("-issue0/lib/libx.so")
    assert ours["lib64"] == "link lib"  # copied as written, not linked to the path's lib64
    assert ours["share/doc"] == "link ../lib/sub"
    assert ours["bin/current"] == "link tool0"
    assert ours["lib"] == ours["share"] == "dir 0o755"
    assert sorted(k for k in ours if k.startswith("bin/")) == [
        "bin/current",
        *[f"bin/tool{i}" for i in range(5)],
    ]
    assert real == {}


def joined_without_lndir(spec: SetSpec, tmp: Path) -> tuple[dict[str, str], dict[str, str]]:
    store = tmp / "store"
    ours = tmp / "ours"
    ours.mkdir()
    memory = MemoryRoot("test")
    for p in storegen.write_store(spec, store):
        layer = tmp / f"{Path(p).name}.tar"
        write_store_layer(layer, p, p, str(store))
        link_join(ours, p, read_members(str(layer), p, "test"))
        link_join(memory, p, read_members(str(layer), p, "test"))
    assert memory_tree(memory) == tree(ours)
    return {}, tree(ours)


@pytest.mark.realtool
def test_join_matches_real_lndir_on_random_sets(tmp_path: Path) -> None:
    need("lndir")
    sets = storegen.generate(11, 150, dangling=True, big=0)
    for spec in sets:
        real, ours = joined(spec, tmp_path / spec.name)
        assert ours == real, spec.name


def test_a_layer_without_the_path_is_a_user_error(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (p,) = storegen.write_store(_set({"x": F}), store)
    layer = tmp_path / "l.tar"
    write_store_layer(layer, p, p, str(store))
    other = p.replace("-p0", "-other")
    with pytest.raises(UserError) as err:
        read_members(str(layer), other, "contents[0]")
    assert f"the layer does not hold the store path (got {other} not in {layer})" in str(err.value)
