"""Atomic writes, shared bytes and file kinds (strata.fsutil)."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

import pytest

from strata.fsutil import (
    atomic_dir,
    atomic_file,
    kind_of,
    link_or_copy,
    real_path,
    share_output,
)


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


def test_an_output_name_up_to_255_bytes_is_written(tmp_path: Path) -> None:
    # The temporary beside it adds `.`, `.XXXXXXXX.tmp`: it must be cut to fit, not fail.
    name = "\u00e9" * 127 + "x"  # 255 bytes in UTF-8
    with atomic_file(tmp_path / name) as f:
        f.write(b"ok")
    with atomic_dir(tmp_path / ("d" * 255)) as d:
        (d / "f").write_bytes(b"in")
    assert (tmp_path / name).read_bytes() == b"ok"
    assert (tmp_path / ("d" * 255) / "f").read_bytes() == b"in"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "d" * 255])


@pytest.mark.parametrize("writer", [atomic_file, atomic_dir])
def test_a_name_too_long_names_the_output_not_its_temporary(tmp_path: Path, writer: object) -> None:
    final = tmp_path / ("n" * 256)
    with pytest.raises(OSError) as caught, writer(final):  # type: ignore[operator]
        pass
    assert caught.value.errno == errno.ENAMETOOLONG
    assert caught.value.filename == str(final)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["", ".", ".."])
def test_a_path_naming_no_file_is_refused_and_nothing_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # atomic_dir("") used to rmtree "." (the action's working directory) before failing.
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "keep").write_text("x")
    monkeypatch.chdir(work)
    for writer in (atomic_file, atomic_dir):
        with pytest.raises(IsADirectoryError), writer(name):  # type: ignore[operator]
            pass
    assert sorted(os.listdir(work)) == ["keep", "sub"]
    assert sorted(os.listdir(tmp_path)) == ["work"]


def test_atomic_file_onto_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError) as caught, atomic_file(tmp_path / "d"):
        pass
    assert caught.value.filename == str(tmp_path / "d")
    assert sorted(os.listdir(tmp_path)) == ["d"]


def test_kind_of_names_each_file_type_and_the_caller_names_an_unknown_one(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert kind_of(os.lstat(fifo).st_mode) == "a FIFO"
    assert kind_of(os.lstat(tmp_path).st_mode) == "a directory"
    assert kind_of(stat.S_IFCHR | 0o666) == "a character device"
    assert kind_of(stat.S_IFREG | 0o644, unknown="a special file") == "a regular file"
    door = 0o150644  # Solaris' S_IFDOOR: no type Linux knows
    assert kind_of(door) == "a file of mode 0o150644"
    assert kind_of(door, unknown="a special file") == "a special file"
