from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from strata.errors import UserError
from strata.oci.tree import DIR, FILE, SYMLINK, LayerTree, normalize_dest, sort_key


def _names(tree: LayerTree) -> list[str]:
    return [e.name for e in tree.entries()]


def test_parents_are_emitted_and_sorted_like_tar_sort_name(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("x")
    tree = LayerTree()
    tree.add_path(tmp_path / "x", "/usr/bin/x")
    tree.add_bytes("usr-local/y", b"y")
    tree.add_bytes("usr/a", b"a")
    assert _names(tree) == ["usr", "usr/a", "usr/bin", "usr/bin/x", "usr-local", "usr-local/y"]
    kinds = {e.name: e.kind for e in tree.entries()}
    assert kinds["usr"] == DIR and kinds["usr/bin/x"] == FILE


def test_directory_walk_keeps_modes_symlinks_and_flattens_hard_links(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_text("#!/bin/sh\n")
    os.chmod(root / "bin" / "tool", 0o755)
    os.link(root / "bin" / "tool", root / "bin" / "hard")
    (root / "bin" / "sh").symlink_to("tool")
    (root / "empty").mkdir()
    os.chmod(root / "empty", 0o700)
    tree = LayerTree()
    tree.add_path(root, "/")
    got = {e.name: (e.kind, oct(e.mode), e.target) for e in tree.entries()}
    assert got == {
        "bin": (DIR, oct(os.stat(root / "bin").st_mode & 0o7777), ""),
        "bin/hard": (FILE, "0o755", ""),
        "bin/sh": (SYMLINK, "0o777", "tool"),
        "bin/tool": (FILE, "0o755", ""),
        "empty": (DIR, "0o700", ""),
    }


@pytest.mark.parametrize("kind", ["fifo", "socket", "chardev"])
def test_special_files_are_refused_naming_the_path(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "special"
    if kind == "fifo":
        os.mkfifo(path)
        expected = "a FIFO"
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        s.close()
        expected = "a socket"
    else:
        path = Path("/dev/null")
        expected = "a character device"
    tree = LayerTree()
    with pytest.raises(UserError) as err:
        tree.add_path(path, "x")
    assert str(err.value) == (
        f"{path}: {expected} cannot be put in an image layer; remove it from the inputs "
        "or exclude it from the path mapping"
    )


def test_special_file_inside_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    os.mkfifo(tmp_path / "d" / "pipe")
    with pytest.raises(UserError, match=r"d/pipe: a FIFO cannot be put in an image layer"):
        LayerTree().add_path(tmp_path / "d", "app")


def test_later_sources_replace_earlier_and_directories_merge(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        (d / "etc").mkdir(parents=True)
    (a / "etc" / "one").write_text("a1")
    (a / "etc" / "two").write_text("a2")
    (b / "etc" / "two").write_text("b2")
    tree = LayerTree()
    tree.add_path(a, "")
    tree.add_path(b, "")
    sources = {e.name: e.source for e in tree.entries() if e.kind == FILE}
    assert sources == {"etc/one": str(a / "etc" / "one"), "etc/two": str(b / "etc" / "two")}


def test_keep_dirlinks(tmp_path: Path) -> None:
    base, extra = tmp_path / "base", tmp_path / "extra"
    (base / "usr" / "lib").mkdir(parents=True)
    (base / "lib").symlink_to("usr/lib")
    (extra / "lib").mkdir(parents=True)
    (extra / "lib" / "libx.so").write_text("x")
    kept = LayerTree(keep_dirlinks=True)
    kept.add_path(base, "")
    kept.add_path(extra, "")
    names = {e.name: e.kind for e in kept.entries()}
    assert names["lib"] == SYMLINK and names["usr/lib/libx.so"] == FILE
    assert "lib/libx.so" not in names
    replaced = LayerTree()
    replaced.add_path(base, "")
    replaced.add_path(extra, "")
    names = {e.name: e.kind for e in replaced.entries()}
    assert names["lib"] == DIR and names["lib/libx.so"] == FILE


def test_destinations_are_normalised_and_cannot_escape() -> None:
    assert normalize_dest("/usr//bin/./x/", "w") == "usr/bin/x"
    assert normalize_dest("/", "w") == ""
    with pytest.raises(
        UserError, match=r"destination must stay inside the image root \(got '../etc'\)"
    ):
        normalize_dest("../etc", "w")


def test_sort_key_is_componentwise() -> None:
    assert sorted(["a-b", "a/b", "a"], key=sort_key) == ["a", "a/b", "a-b"]


def test_sandbox_links_are_followed_and_real_links_kept(tmp_path: Path) -> None:
    real = tmp_path / "output_base" / "execroot" / "ws" / "bazel-out" / "bin" / "app"
    (real / "lib").mkdir(parents=True)
    (real / "lib" / "libx.so").write_bytes(b"ELF")
    (real / "top.txt").write_bytes(b"top")
    sandbox = tmp_path / "sandbox"
    tree_dir = sandbox / "bazel-out" / "bin" / "app"
    (tree_dir / "lib").mkdir(parents=True)
    # what a sandbox lays out: links to the real outputs, ending with the same path
    (tree_dir / "lib" / "libx.so").symlink_to(real / "lib" / "libx.so")
    # links that belong to the content itself
    (tree_dir / "lib" / "libx.so.1").symlink_to("libx.so")
    (tree_dir / "lib" / "store").symlink_to("/nix/store/aaaa-dep/lib/libdep.so")
    (tree_dir / "etc").symlink_to(real / "lib")  # absolute, but not a sandbox link
    (real / "lib" / "libx.so.2").symlink_to("libx.so")  # a link the tree artifact kept
    (tree_dir / "lib" / "libx.so.2").symlink_to(real / "lib" / "libx.so.2")
    (sandbox / "top.txt").symlink_to(real / "top.txt")  # mapped source: always read

    tree = LayerTree(execroot=sandbox)
    tree.add_path(tree_dir, "app")
    tree.add_path(sandbox / "top.txt", "top.txt")
    got = {e.name: (e.kind, e.target) for e in tree.entries()}
    assert got["app/lib/libx.so"] == (FILE, "")
    assert got["app/lib/libx.so.1"] == (SYMLINK, "libx.so")
    assert got["app/lib/libx.so.2"] == (SYMLINK, "libx.so")
    assert got["app/lib/store"] == (SYMLINK, "/nix/store/aaaa-dep/lib/libdep.so")
    assert got["app/etc"] == (SYMLINK, str(real / "lib"))
    assert got["top.txt"] == (FILE, "")
    # without an execroot nothing inside a directory is followed
    plain = LayerTree()
    plain.add_path(tree_dir, "app")
    assert {e.name: e.kind for e in plain.entries()}["app/lib/libx.so"] == SYMLINK
