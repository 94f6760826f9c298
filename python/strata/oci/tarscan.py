"""Tar headers at header speed: the listing of an uncompressed tar without `tarfile`.

A store path's layer is listed (strata.store.listing) and grouped layers are
joined (strata.store.layer) from the headers alone. `tarfile` builds a
TarInfo object and seeks once per member, which at 50,000 members is
seconds; this reads each header block once, seeks past file data, and keeps
the raw blocks, so a caller can copy a member byte for byte.

Read as `tarfile` reads: ustar names with their prefix, pax extended headers
(`x`: path, linkpath, size; `g`: the same, for every later member), GNU long
names and link names (`L`, `K`), octal or base-256 numbers; data follows
regular files (`0`, NUL, `7`) and unknown types only. Stricter where a
hostile tar could otherwise pass: a bad checksum, a number that is not one,
a pax record of the wrong length, or data running past the end of the file
is an error (`TarFormatError`), never a silent end of the listing.
Format: https://pubs.opengroup.org/onlinepubs/9699919799/utilities/pax.html
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

BLOCK = 512
REGULAR_TYPES = (b"0", b"\0", b"7")
DIRECTORY = b"5"
SYMLINK = b"2"
_EXTENSIONS = (b"x", b"g", b"L", b"K")
_NO_DATA = (b"1", b"2", b"3", b"4", b"5", b"6")  # links, devices, dirs, fifos: size ignored
_MAX_EXTENSION = 1 << 20
_WINDOW = 1 << 14
"""Largest pax or GNU long-name block accepted: a name is at most PATH_MAX, not megabytes."""


class TarFormatError(ValueError):
    """The bytes are not a tar this reader accepts; the message says what and where."""


class TarTruncatedError(TarFormatError):
    """The file ends before the tar does (inside a header or a member's data)."""


@dataclass(frozen=True, slots=True)
class Header:
    """One member: where its blocks are, and what its (extended) header says."""

    start: int
    """Offset of its first block (its pax or GNU extension blocks included)."""
    data: int
    """Offset of its data (just after its header block)."""
    name: str
    """As written, but a directory's without its trailing "/" (as tarfile gives it)."""
    kind: bytes
    """The typeflag; a regular file written with a trailing "/" reads as a directory."""
    mode: int
    size: int
    """Bytes of data that follow (0 for every type but regular files and unknown ones)."""
    linkname: str

    @property
    def end(self) -> int:
        """Offset just past its data, padded to a whole block."""
        return self.data + self.size + (-self.size % BLOCK)


def _number(field: bytes, what: str, at: int) -> int:
    if field[:1] in (b"\x80", b"\xff"):  # base-256 (GNU), for sizes over 8 GiB
        value = int.from_bytes(field[1:], "big")
        return value - (1 << (8 * len(field) - 8)) if field[:1] == b"\xff" else value
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise TarFormatError(f"{what} of the header at byte {at} is not a number") from None


def _checksum_ok(block: bytes) -> bool:
    stored = _number(block[148:156], "the checksum", 0)
    # the field counts as 8 spaces; NULs add nothing, and dropping them first (in C) makes the
    # sum of a mostly empty header a third of the work
    unsigned = sum(block.translate(None, b"\0")) - sum(block[148:156]) + 256
    if stored == unsigned:
        return True
    high = sum(1 for b in block[:148] + block[156:] if b > 127)
    return stored == unsigned - 256 * high  # some writers summed signed chars


def _pax(records: bytes, at: int) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(records):
        if records[pos:].strip(b"\0") == b"":
            break
        space = records.find(b" ", pos)
        try:
            length = int(records[pos:space]) if space > pos else 0
        except ValueError:
            length = 0
        record = records[pos : pos + length]
        if length <= space - pos + 1 or len(record) != length or not record.endswith(b"\n"):
            raise TarFormatError(f"a pax record of the header at byte {at} is malformed")
        key, eq, value = record[space - pos + 1 : -1].partition(b"=")
        if not eq:
            raise TarFormatError(f"a pax record of the header at byte {at} has no '='")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


class _Blocks:
    """Blocks read through a window, so that nearby headers cost no further call.

    pread, not mmap: a file truncated under a mapping kills the reader with SIGBUS;
    a short read is an error message.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.size = os.fstat(fd).st_size
        self._start = 0
        self._buf = b""

    def read(self, offset: int, n: int) -> bytes:
        end = offset + n
        if not (self._start <= offset and end <= self._start + len(self._buf)):
            self._buf = os.pread(self.fd, max(n, _WINDOW), offset)
            self._start = offset
        at = offset - self._start
        return self._buf[at : at + n]


def scan(fd: int) -> Iterator[Header]:
    """Every member of the uncompressed tar open at `fd` (its position is not used)."""
    blocks = _Blocks(fd)
    offset = 0
    global_pax: dict[str, str] = {}
    while True:
        start = offset
        extended: dict[str, str] = {}
        while True:
            block = blocks.read(offset, BLOCK)
            if len(block) < BLOCK:
                if offset == start and block.strip(b"\0") == b"":
                    return  # no end blocks: as tarfile, the end of the file ends the tar
                raise TarTruncatedError(f"the tar ends inside the header at byte {offset}")
            if block == bytes(BLOCK):
                if offset != start:
                    raise TarFormatError(f"an extended header at byte {start} has no member")
                return
            if not _checksum_ok(block):
                raise TarFormatError(f"the header at byte {offset} has a bad checksum")
            kind = block[156:157]
            if kind not in _EXTENSIONS:
                break
            size = _number(block[124:136], "the size", offset)
            if not 0 <= size <= _MAX_EXTENSION:
                raise TarFormatError(f"the extended header at byte {offset} is too large")
            body = blocks.read(offset + BLOCK, size)
            if len(body) != size:
                raise TarTruncatedError(f"the tar ends inside the header at byte {offset}")
            if kind == b"L":
                extended["path"] = body.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            elif kind == b"K":
                extended["linkpath"] = body.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            elif kind == b"g":
                global_pax.update(_pax(body, offset))
            else:
                extended.update(_pax(body, offset))
            offset += BLOCK + size + (-size % BLOCK)
        fields = {**global_pax, **extended}
        name = block[:100].split(b"\0", 1)[0]
        if block[257:262] == b"ustar" and block[345:500].strip(b"\0"):
            name = block[345:500].split(b"\0", 1)[0] + b"/" + name
        text = fields.get("path", name.decode("utf-8", "surrogateescape"))
        if kind == b"\0" and text.endswith("/"):
            kind = DIRECTORY
        if kind == DIRECTORY:
            text = text.rstrip("/")
        size = _number(block[124:136], "the size", offset)
        if "size" in fields:
            try:
                size = int(fields["size"])
            except ValueError:
                raise TarFormatError(
                    f"the pax size of the header at byte {offset} is not a number"
                ) from None
        if size < 0:
            raise TarFormatError(f"the header at byte {offset} has a negative size")
        if kind in _NO_DATA:
            size = 0
        link = block[157:257].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        header = Header(
            start=start,
            data=offset + BLOCK,
            name=text,
            kind=kind,
            mode=_number(block[100:108], "the mode", offset),
            size=size,
            linkname=fields.get("linkpath", link),
        )
        if header.data + size > blocks.size:
            raise TarTruncatedError(f"the tar ends inside the data of {text!r}")
        yield header
        offset = header.end
