"""Atomic writes and shared bytes (strata.fsutil)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from strata.fsutil import link_or_copy, real_path, share_output


def _ino(p: Path) -> int:
    return os.stat(p).st_ino


def test_share_output_links_build_outputs_and_copies_anything_else(tmp_path: Path) -> None:
    out = tmp_path / "execroot" / "bazel-out" / "k8-fastbuild" / "bin" / "layer.tar"
    out.parent.mkdir(parents=True)
    out.write_bytes(b"layer")
    staged = tmp_path / "sandbox" / "layer.tar"  # how both engines stage an input
    staged.parent.mkdir()
    staged.symlink_to(out)
    share_output(staged, tmp_path / "linked")
    assert _ino(tmp_path / "linked") == _ino(out)

    source = tmp_path / "workspace" / "base.tar"  # a user's file: never linked (modes change)
    source.parent.mkdir()
    source.write_bytes(b"base")
    share_output(source, tmp_path / "copied")
    assert _ino(tmp_path / "copied") != _ino(source)
    assert (tmp_path / "copied").read_bytes() == b"base"


def test_link_or_copy_copies_across_filesystems(tmp_path: Path) -> None:
    src = tmp_path / "blob"
    src.write_bytes(b"x" * 1000)
    shm = Path("/dev/shm")
    other = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() else None
    if other is None or os.stat(other).st_dev == os.stat(tmp_path).st_dev:
        # no second filesystem here: a link is what must happen
        link_or_copy(src, tmp_path / "same")
        assert _ino(tmp_path / "same") == _ino(src)
        return
    try:
        link_or_copy(src, other / "blob")
        assert (other / "blob").read_bytes() == src.read_bytes()
        assert os.stat(other / "blob").st_nlink == 1
    finally:
        for p in other.iterdir():
            p.unlink()
        other.rmdir()


def test_real_path_is_realpath(tmp_path: Path) -> None:
    """The kernel's answer and os.path.realpath's agree: links in the middle, chains, relative
    and absolute targets, `..`; a missing or dangling path falls back to realpath itself."""
    (tmp_path / "ws" / "store" / "p").mkdir(parents=True)
    (tmp_path / "ws" / "store" / "p" / "f").write_text("x")
    (tmp_path / "execroot").mkdir()
    os.symlink(tmp_path / "ws" / "store", tmp_path / "execroot" / "store")
    (tmp_path / "sandbox").mkdir()
    os.symlink(tmp_path / "execroot" / "store" / "p" / "f", tmp_path / "sandbox" / "f")
    os.symlink("../sandbox/f", tmp_path / "execroot" / "rel")
    os.symlink("rel", tmp_path / "execroot" / "chain")
    os.symlink("missing", tmp_path / "execroot" / "dangling")
    for p in [
        "sandbox/f",
        "execroot/rel",
        "execroot/chain",
        "execroot/store/p/../p/f",
        "execroot/store",
        "execroot/dangling",
        "execroot/absent/x",
    ]:
        assert real_path(str(tmp_path / p)) == os.path.realpath(tmp_path / p), p
    assert real_path(str(tmp_path / "sandbox/f")) == str(tmp_path / "ws/store/p/f")
