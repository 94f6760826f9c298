"""strata.oci.memroot against strata.oci.rootfs: the same operations, the same results.

MemoryRoot stands in for a directory on disk when nothing has to run in a
layer root, so every operation must give what Rootfs and the kernel give:
random sequences of operations (names through links to `/`, `..`, files in
the way of parents, set-group-ID directories) are applied to both, and each
result (a stat, a link target, a listing, an error message) and the final
trees are compared.
"""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path
from typing import Any

import pytest

from strata.errors import UserError
from strata.oci.memroot import MemoryRoot
from strata.oci.rootfs import Rootfs, RootTree
from strata.oci.tree import BYTES, DIR, FILE, SYMLINK, FileSlice

PARTS = ["a", "b", "c", "l", "..", "."]
TARGETS = ["a", "b/c", "/", "/a", "/a/b", "..", "../..", "../a", "missing", "l", "c/../a"]
DIR_MODES = [None, 0o755, 0o700, 0o775, 0o2755, 0o1777, 0o3777]
FILE_MODES = [0o644, 0o444, 0o755, 0o4755, 0o2755, 0o600]


def _name(rng: random.Random) -> str:
    name = "/".join(rng.choice(PARTS) for _ in range(rng.randint(1, 4)))
    return ("/" + name) if rng.random() < 0.2 else name


def _stat(st: os.stat_result | None) -> tuple[int, int] | None:
    """What callers read of a stat: the type, the mode, the size of a regular file."""
    if st is None:
        return None
    size = st.st_size if stat.S_ISREG(st.st_mode) else 0
    return st.st_mode & ~0o777 if stat.S_ISLNK(st.st_mode) else st.st_mode, size


def _apply(fs: RootTree, op: tuple[Any, ...], data: FileSlice) -> object:
    kind, *args = op
    try:
        if kind == "mkdir":
            fs.mkdir(args[0], args[1])
        elif kind == "write":
            fs.write(args[0], data if args[2] else args[1], args[3])
        elif kind == "symlink":
            fs.symlink(args[0], args[1])
        elif kind == "chmod":
            fs.chmod(args[0], args[1])
        elif kind == "chmod_root":
            fs.chmod_root(args[0])
        elif kind == "lstat":
            return _stat(fs.lstat(args[0], follow_last=args[1]))
        elif kind == "readlink":
            return fs.readlink(args[0])
        elif kind == "listdir":
            return sorted(fs.listdir(args[0]))
        elif kind == "resolve":
            return fs.resolve(args[0], follow_last=args[1])
    except UserError as e:
        return f"UserError: {e}"
    return None


def _ops(rng: random.Random, n: int) -> list[tuple[Any, ...]]:
    ops: list[tuple[Any, ...]] = []
    for _ in range(n):
        kind = rng.choice(
            ["mkdir"] * 4
            + ["write"] * 3
            + ["symlink"] * 3
            + ["chmod", "chmod_root"]
            + ["lstat", "readlink", "listdir", "resolve"]
        )
        name = _name(rng)
        if kind == "mkdir":
            ops.append((kind, name, rng.choice(DIR_MODES)))
        elif kind == "write":
            content = rng.choice([b"", b"x", b"hello\n"])
            ops.append((kind, name, content, rng.random() < 0.3, rng.choice(FILE_MODES)))
        elif kind == "symlink":
            ops.append((kind, name, rng.choice(TARGETS)))
        elif kind == "chmod":
            ops.append((kind, name, rng.choice([m for m in DIR_MODES if m] + FILE_MODES)))
        elif kind == "chmod_root":
            ops.append((kind, rng.choice([0o755, 0o2755])))
        else:
            ops.append((kind, name, rng.random() < 0.5))
    return ops


def _disk_tree(root: Path) -> dict[str, tuple[str, int, object]]:
    out: dict[str, tuple[str, int, object]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = p.relative_to(root).as_posix()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = (SYMLINK, 0o777, os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = (DIR, stat.S_IMODE(st.st_mode), None)
            else:
                out[rel] = (FILE, stat.S_IMODE(st.st_mode), p.read_bytes())
    return out


def memory_tree(fs: MemoryRoot) -> dict[str, tuple[str, int, object]]:
    out: dict[str, tuple[str, int, object]] = {}
    for e in fs.entries():
        if e.kind == SYMLINK:
            out[e.name] = (SYMLINK, 0o777, e.target)
        elif e.kind == DIR:
            out[e.name] = (DIR, e.mode, None)
        elif e.kind == BYTES:
            out[e.name] = (FILE, e.mode, e.data)
        else:
            with open(e.source, "rb") as f:
                f.seek(e.offset)
                out[e.name] = (FILE, e.mode, f.read(e.size))
    return out


@pytest.mark.parametrize("seed", range(40))
def test_memory_root_does_what_rootfs_does(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    src = tmp_path / "src"
    src.write_bytes(b"....slice bytes....")
    data = FileSlice(str(src), 4, 11)
    root = tmp_path / "root"
    root.mkdir(mode=0o755)
    old = os.umask(0o022)
    try:
        disk: RootTree = Rootfs(root, "t")
        memory = MemoryRoot("t")
        for i, op in enumerate(_ops(rng, 60)):
            assert _apply(memory, op, data) == _apply(disk, op, data), (i, op)
    finally:
        os.umask(old)
    assert memory_tree(memory) == _disk_tree(root)
    assert memory.entries(), "the operations made nothing"


def test_entries_are_in_layer_order_and_name_content_without_reading_it(tmp_path: Path) -> None:
    fs = MemoryRoot("t")
    fs.mkdir("b", 0o755)
    fs.write("b/x", FileSlice(str(tmp_path / "absent"), 512, 7), 0o444)
    fs.mkdir("a.d", 0o700)
    fs.symlink("a", "b")
    fs.write("a/y", b"through the link\n", 0o644)  # lands in b/
    assert [(e.name, e.kind) for e in fs.entries()] == [
        ("a", SYMLINK),
        ("a.d", DIR),
        ("b", DIR),
        ("b/x", FILE),
        ("b/y", BYTES),
    ]
    x = fs.entries()[3]
    assert (x.source, x.offset, x.size, x.mode) == (str(tmp_path / "absent"), 512, 7, 0o444)


def test_a_file_in_the_way_of_a_parent_is_the_rootfs_error() -> None:
    fs = MemoryRoot("contents[1]")
    fs.write("etc", b"", 0o644)
    with pytest.raises(UserError) as err:
        fs.write("etc/motd", b"hi\n", 0o644)
    assert str(err.value) == (
        "contents[1]: etc is not a directory, so the layer entry cannot go below it "
        "(got 'etc/motd'); the image is malformed: rebuild it"
    )
