"""A store path's layer written in the same pass that hashes its NAR: one read of each file.

A store path is named after the hash of its NAR, and its layer's member
names hold that name, so the layer cannot be finished before the last byte
is hashed. Reading every source twice (once to hash, once to layer) costs
an open and a read per file, and lets a file that changes between the two
passes put other bytes in the layer than were hashed. Instead, the layer is
written while the NAR is read, under a placeholder name of the same length
(`<store_dir>/000...0-<name>`): every header that names the path is then
rewritten in place once the name is known. The names have the same length
and are ASCII where they differ, so every header keeps its size (the same
PAX records, the same blocks) and file data never moves. The finished tar
is read back once for its digest (and compressed then, if asked), which
reads one file sequentially instead of every source again.

The NAR (a directory's entries sorted by name, each followed by its own)
and the layer (`sort_key` order, parents first) list a tree in the same
order, so the layer's entries are written up to each file as the NAR asks
for its bytes (`contents`), and each byte read goes to both.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from strata import written
from strata.fsutil import temp_prefix
from strata.oci.compress import layer_media_type
from strata.oci.digest import DigestingWriter
from strata.oci.layer import LayerDescriptor, Ownership, write_layer_from_tar
from strata.oci.tarwriter import DIRECTORY, REGULAR, SYMLINK, TarWriter
from strata.oci.tree import BYTES, DIR, FILE, Entry
from strata.oci.tree import SYMLINK as SYMLINK_ENTRY
from strata.store.layer import planned_store_entries
from strata.store.listing import Member
from strata.store.nar import read_source
from strata.store.path import DEFAULT_STORE_DIR, HASH_CHARS, parse

_CHUNK = 1 << 20

PLACEHOLDER = "0" * HASH_CHARS
"""The hash part the layer is written with until the path's name is known."""


class StoreLayerWriter:
    """Writes the layer of a store path planned as `planned` (names relative to the path).

    Use as a context manager: pass `contents` to `nar.dump_entries` (or
    `nar.dump_planned`), hash the NAR, then call `finish` with the path's
    name. Leaving the block without `finish` leaves no file behind.
    """

    def __init__(
        self,
        out_path: str | os.PathLike[str],
        planned: list[Entry],
        name: str,
        store_dir: str = DEFAULT_STORE_DIR,
        compressor: str = "none",
        owner: Ownership | None = None,
    ) -> None:
        self._out = Path(out_path)
        self._placeholder = f"{store_dir.rstrip('/')}/{PLACEHOLDER}-{name}"
        self._planned = planned
        self._store_dir = store_dir
        self._entries = planned_store_entries(planned, self._placeholder, store_dir)
        self._top = self._placeholder.lstrip("/")
        self._next = 0
        self._named: list[tuple[int, int, Entry]] = []
        """(offset, length, entry) of every header that names the store path."""
        self._compressor = compressor
        self._owner = owner or Ownership()
        self._tmp: Path | None = None
        self._file: io.BufferedRandom | None = None
        self._tar: TarWriter | None = None
        self.span = (0, 0)
        """After `finish`: the byte range of the layer holding the path's own entries."""

    def __enter__(self) -> StoreLayerWriter:
        self._out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=temp_prefix(self._out), suffix=".tmp", dir=self._out.parent
        )
        self._tmp = Path(tmp)
        self._file = os.fdopen(fd, "w+b")
        o = self._owner
        self._tar = TarWriter(
            self._file, mtime=o.mtime, uid=o.uid, gid=o.gid, uname=o.uname, gname=o.gname
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self._file.close()
        if self._tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                self._tmp.unlink()

    # -- while the NAR is read -------------------------------------------------------------------

    def contents(self, e: Entry) -> Iterator[bytes]:
        """A planned FILE's bytes for the NAR, written into the layer as they are read."""
        tar = self._writer()
        name = f"{self._top}/{e.name}" if e.name else self._top
        self._write_until(name)
        entry = self._entries[self._next]
        if entry.kind != FILE:
            raise ValueError(f"the NAR asked for {name!r}, planned as {entry.kind}")
        self._next += 1
        at = tar.position
        tar.begin_file(entry.name, entry.size, entry.mode)
        self._named.append((at, tar.position - at, entry))
        for chunk in read_source(e):
            tar.write_data(chunk)
            yield chunk
        tar.end_file(entry.size)

    def _write_until(self, name: str | None) -> None:
        """Write the entries before `name` (None: all that are left); files were written."""
        tar = self._writer()
        while self._next < len(self._entries):
            e = self._entries[self._next]
            if e.name == name:
                return
            if e.kind == FILE:
                raise ValueError(f"the NAR did not ask for {e.name!r} in layer order")
            at = tar.position
            if e.kind == DIR:
                tar.add_dir(e.name, e.mode)
            elif e.kind == SYMLINK_ENTRY:
                tar.add_symlink(e.name, e.target)
            elif e.kind == BYTES:
                tar.begin_file(e.name, e.size, e.mode)
            else:  # pragma: no cover - planned_store_entries gives only these kinds
                raise ValueError(f"unknown entry kind {e.kind!r}")
            if e.name == self._top or e.name.startswith(self._top + "/"):
                self._named.append((at, tar.position - at, e))
            if e.kind == BYTES:
                tar.write_data(e.data)
                tar.end_file(e.size)
            self._next += 1
        if name is not None:
            raise ValueError(f"the NAR asked for {name!r}, which is not planned")

    def _writer(self) -> TarWriter:
        if self._tar is None:
            raise ValueError("StoreLayerWriter used outside its with block")
        return self._tar

    # -- once the name is known ------------------------------------------------------------------

    def finish(self, store_path: str) -> LayerDescriptor:
        """Name the layer's entries `store_path`, digest (and compress) it, put it in place."""
        parse(store_path, self._store_dir, "store_path")
        if len(store_path) != len(self._placeholder):
            raise ValueError(f"{store_path!r} is not named like {self._placeholder!r}")
        tar = self._writer()
        self._write_until(None)
        self.span = (self._named[0][0] if self._named else 0, tar.position)
        tar.close()
        assert self._file is not None and self._tmp is not None
        self._file.flush()
        top = store_path.lstrip("/")
        fd = self._file.fileno()
        for offset, length, e in self._named:
            new = _header(tar, e, top + e.name[len(self._top) :])
            if len(new) != length:  # pragma: no cover - same length, same ASCII-ness
                raise ValueError(f"renaming {e.name!r} changed its header's size")
            os.pwrite(fd, new, offset)
        self._file.seek(0)
        if self._compressor != "none":
            return write_layer_from_tar(self._out, self._compressor, self._file)
        digest = DigestingWriter(xxh3=True)
        while chunk := self._file.read(_CHUNK):
            digest.write(chunk)
        size = self._file.tell()
        os.chmod(self._tmp, 0o644)
        os.replace(self._tmp, self._out)
        written.note(self._out, digest.xxh3_hexdigest, digest.hexdigest)
        sha = digest.digest
        return LayerDescriptor(
            digest=sha,
            size=size,
            diff_id=sha,
            uncompressed_size=size,
            compressor="none",
            media_type=layer_media_type("none"),
        )

    def members(self) -> list[Member]:
        """After `finish`: the path's entries as `strata.store.listing.read_members` reads
        them back from the layer (names relative to the path, "" for the path itself)."""
        out = []
        for offset, length, e in self._named:
            rel = e.name[len(self._top) + 1 :].rstrip("/")
            if e.kind == DIR:
                out.append(Member(rel, DIR, e.mode & 0o7777))
            elif e.kind == SYMLINK_ENTRY:
                out.append(Member(rel, SYMLINK_ENTRY, 0o777, target=e.target))
            else:
                out.append(Member(rel, FILE, e.mode & 0o7777, size=e.size, offset=offset + length))
        return out


def _header(tar: TarWriter, e: Entry, name: str) -> bytes:
    """The header blocks `tar` wrote (or would write) for `e` under `name`."""
    if e.kind == DIR:
        return tar.header_bytes(name.rstrip("/") + "/", DIRECTORY, e.mode, 0, b"", {})
    if e.kind == SYMLINK_ENTRY:
        return tar.header_bytes(name, SYMLINK, 0o777, 0, e.target.encode("utf-8"), {})
    return tar.header_bytes(name, REGULAR, e.mode, e.size, b"", {})
