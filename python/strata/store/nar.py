"""NAR, the Nix ARchive: the canonical serialisation store path hashes are over.

A NAR is a sequence of strings, each an 8-byte little-endian length, the
bytes, and zero padding to a multiple of 8. It starts with
"nix-archive-1" and describes one node:

    ( type regular [executable ""] contents <bytes> )
    ( type symlink target <target> )
    ( type directory entry ( name <n> node <node> ) ... )

Directory entries are sorted by name as bytes. Only the executable bit, the
file contents and symlink targets are recorded: no owners, times or other
mode bits, which is what makes NAR hashes reproducible. Spec: Eelco Dolstra's
thesis, figure 5.2 (https://edolstra.github.io/pubs/phd-thesis.pdf) and
`src/libutil/archive.cc` in Nix.

We stream the archive as chunks so a large store path is hashed (and scanned
for references) in one pass without holding it in memory.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from strata.errors import UserError
from strata.oci.tree import BYTES, DIR, FILE, SYMLINK, Entry

MAGIC = "nix-archive-1"
READ_CHUNK = 1 << 20


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 8)


def nar_string(s: bytes | str) -> bytes:
    data = s.encode() if isinstance(s, str) else s
    return len(data).to_bytes(8, "little") + data + _pad(len(data))


def _tokens(*items: str) -> bytes:
    return b"".join(nar_string(i) for i in items)


def _check_entry_name(name: bytes, where: str) -> None:
    if name in (b"", b".", b"..") or b"/" in name or b"\0" in name:
        raise UserError(
            f"file name cannot be stored in a NAR (got {name!r}); rename it", where=where
        )


def dump(path: str | os.PathLike[str]) -> Iterator[bytes]:
    """The NAR of `path` (file, symlink or directory), as a stream of chunks."""
    root = os.fsencode(path)
    yield nar_string(MAGIC)
    yield from _dump_node(root)


def _dump_node(path: bytes) -> Iterator[bytes]:
    where = os.fsdecode(path)
    try:
        st = os.lstat(path)
    except OSError as e:
        raise UserError(f"cannot read ({e.strerror}); check the path exists", where=where) from None
    mode = st.st_mode
    if stat.S_ISREG(mode):
        yield _tokens("(", "type", "regular")
        if mode & stat.S_IXUSR:
            yield _tokens("executable", "")
        yield _tokens("contents")
        yield from _dump_contents(path, st.st_size, where)
        yield _tokens(")")
    elif stat.S_ISLNK(mode):
        yield _tokens("(", "type", "symlink", "target")
        yield nar_string(os.readlink(path))
        yield _tokens(")")
    elif stat.S_ISDIR(mode):
        yield _tokens("(", "type", "directory")
        for name in sorted(os.listdir(path)):
            _check_entry_name(name, where)
            yield _tokens("entry", "(", "name")
            yield nar_string(name)
            yield _tokens("node")
            yield from _dump_node(path + b"/" + name)
            yield _tokens(")")
        yield _tokens(")")
    else:
        raise UserError(
            f"unsupported file type in a store path (got mode {oct(mode)}); "
            "store paths hold only regular files, symlinks and directories",
            where=where,
        )


def _dump_contents(path: bytes, size: int, where: str) -> Iterator[bytes]:
    yield size.to_bytes(8, "little")
    yield from _read_file(path, size, where)
    yield _pad(size)


def _read_file(path: bytes | str, size: int, where: str) -> Iterator[bytes]:
    """A file's bytes in chunks; it must be `size` bytes (UserError if it changed)."""
    seen = 0
    with open(path, "rb") as f:
        while chunk := f.read(READ_CHUNK):
            seen += len(chunk)
            if seen > size:
                break
            yield chunk
    if seen != size:
        raise UserError(
            f"file changed size while being read (got {seen}{'+' if seen > size else ''} "
            f"bytes, expected {size}); do not modify inputs during a build",
            where=where,
        )


Contents = Callable[[Entry], Iterable[bytes]]
"""The bytes of a planned FILE entry, in chunks: by default read from its source."""


def read_source(e: Entry) -> Iterator[bytes]:
    """A planned FILE's bytes, read from `e.source` (which must still be `e.size` bytes)."""
    return _read_file(e.source, e.size, e.source)


def dump_entries(entries: Iterable[Entry], contents: Contents = read_source) -> Iterator[bytes]:
    """The NAR of a directory planned as layer entries (`strata.oci.tree`), not laid out.

    Names are relative to the directory; every parent has its own DIR entry
    (as `LayerTree` plans them). A FILE's bytes come from `contents` (read
    from its `source` by default), BYTES are inline; only the executable bit
    of a mode counts, as in `dump`. This is how a store path is hashed
    straight from its sources, without a copy. FILE entries are asked for in
    the order of the NAR, which is the layer's: a directory's entries sorted
    by name, each followed by its own.
    """
    children: dict[str, list[tuple[bytes, Entry]]] = {"": []}
    for e in entries:
        parent, _, base = e.name.rpartition("/")
        children.setdefault(parent, []).append((os.fsencode(base), e))
        if e.kind == DIR:
            children.setdefault(e.name, [])
    yield nar_string(MAGIC)
    yield from _dump_planned_dir("", children, contents)


def _dump_planned_dir(
    name: str, children: dict[str, list[tuple[bytes, Entry]]], contents: Contents
) -> Iterator[bytes]:
    yield _tokens("(", "type", "directory")
    for base, e in sorted(children.get(name, []), key=lambda c: c[0]):
        _check_entry_name(base, e.name)
        yield _tokens("entry", "(", "name")
        yield nar_string(base)
        yield _tokens("node")
        yield from dump_planned(e, children, contents)
        yield _tokens(")")
    yield _tokens(")")


def dump_planned(
    e: Entry,
    children: dict[str, list[tuple[bytes, Entry]]] | None = None,
    contents: Contents = read_source,
) -> Iterator[bytes]:
    """The NAR node of one planned entry (a directory's members come from `children`)."""
    if e.kind == DIR:
        yield from _dump_planned_dir(e.name, children or {}, contents)
    elif e.kind == SYMLINK:
        yield _tokens("(", "type", "symlink", "target")
        yield nar_string(os.fsencode(e.target))
        yield _tokens(")")
    elif e.kind in (FILE, BYTES):
        yield _tokens("(", "type", "regular")
        if e.mode & 0o111:
            yield _tokens("executable", "")
        yield _tokens("contents")
        if e.kind == BYTES:
            yield len(e.data).to_bytes(8, "little") + e.data + _pad(len(e.data))
        else:
            yield e.size.to_bytes(8, "little")
            yield from contents(e)
            yield _pad(e.size)
        yield _tokens(")")
    else:  # pragma: no cover - LayerTree plans only these kinds
        raise UserError(f"unsupported entry kind (got {e.kind})", where=e.name)


@dataclass(frozen=True)
class NarDigest:
    """sha256 of a NAR and its length: what Nix records as narHash and narSize."""

    sha256: bytes
    size: int

    @property
    def nix_hash(self) -> str:
        """The `sha256:<nix-base32>` form `nix-store -q --hash` prints."""
        from strata.store import base32

        return "sha256:" + base32.encode(self.sha256)


def digest(path: str | os.PathLike[str], sink: Callable[[bytes], None] | None = None) -> NarDigest:
    """Hash the NAR of `path`; `sink` (e.g. a reference scanner) sees every chunk too."""
    return digest_chunks(dump(path), sink)


def digest_chunks(
    chunks: Iterable[bytes], sink: Callable[[bytes], None] | None = None
) -> NarDigest:
    """Hash a NAR given as chunks (`dump`, `dump_entries`); `sink` sees every chunk too."""
    h = hashlib.sha256()
    size = 0
    for chunk in chunks:
        h.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink(chunk)
    return NarDigest(h.digest(), size)
