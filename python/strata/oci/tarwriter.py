"""A tar writer that sets every header field itself.

Layer digests are only reproducible if every byte of every header is chosen
by us: `tarfile` picks formats, padding, PAX names and encodings by its own
rules, and those rules have changed between Python releases before (which once
changed every digest rules_docker produced). So this writer lays out POSIX
ustar headers field by field (POSIX.1-2001, "pax Interchange Format":
https://pubs.opengroup.org/onlinepubs/9699919799/utilities/pax.html#tag_20_92_13_06)
and adds a PAX extended header only when a value does not fit in ustar: a name
or link target longer than 100 bytes or not ASCII, a size of 8 GiB or more, an
id over 2097151, an owner name that is not short ASCII.

Entries are written in the order the caller gives; `strata.oci.tree` sorts
them. Small writes are gathered into one buffer, so the sink sees few large
writes (the sink is usually a hashing and compressing pipeline).
"""

from __future__ import annotations

import os
import struct
from typing import Protocol

from strata.errors import UserError

BLOCK = 512
_BUFFER_LIMIT = 1 << 20
_CHUNK = 1 << 20
_MAX_OCTAL_11 = 0o77777777777  # 8 GiB - 1: the largest size/mtime in 11 octal digits
_MAX_OCTAL_7 = 0o7777777
MAX_ID = (1 << 32) - 1
"""uid_t and gid_t are 32 bits: GNU tar refuses a larger id in a PAX header."""
_PAX_NAME = b"././@PaxHeader"  # a fixed name: GNU tar puts its pid here, which is not reproducible

REGULAR = b"0"
SYMLINK = b"2"
DIRECTORY = b"5"
PAX = b"x"


class Sink(Protocol):
    def write(self, data: bytes | bytearray | memoryview, /) -> int | None: ...


def _octal(value: int, width: int) -> bytes:
    """`width` bytes: zero-padded octal digits and a NUL terminator."""
    return b"%0*o\0" % (width - 1, value)


def check_id(value: int, where: str) -> int:
    """`value` if it is a uid or gid a tar reader and a kernel accept; else a UserError."""
    if not 0 <= value <= MAX_ID:
        raise UserError(
            f"owner id out of range (got {value}); uid and gid are 32-bit: use 0 to {MAX_ID}",
            where=where,
        )
    return value


def _pax_record(key: str, value: bytes) -> bytes:
    """One `"%d %s=%s\\n"` record; the length counts its own digits."""
    body = b" " + key.encode() + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length).encode()) + len(body) != length:
        length += 1
    return str(length).encode() + body


def _fits_ustar_text(value: bytes, width: int) -> bool:
    return len(value) <= width and value.isascii()


class TarWriter:
    """Writes one tar stream to `sink`. Call `close()` to add the end-of-archive blocks."""

    def __init__(
        self,
        sink: Sink,
        *,
        mtime: int = 1,
        uid: int = 0,
        gid: int = 0,
        uname: str = "",
        gname: str = "",
    ) -> None:
        self._sink = sink
        self._buf = bytearray()
        self._sent = 0
        self._file_left: int | None = None
        self.mtime = mtime
        self.uid = uid
        self.gid = gid
        self.uname = uname
        self.gname = gname
        self._closed = False

    # -- entries -------------------------------------------------------------------------------

    def add_dir(self, name: str, mode: int = 0o755, **owner: int | str) -> None:
        self._header(name.rstrip("/") + "/", DIRECTORY, mode, 0, b"", owner)
        self._maybe_flush()

    def add_symlink(self, name: str, target: str, **owner: int | str) -> None:
        self._header(name, SYMLINK, 0o777, 0, target.encode("utf-8"), owner)
        self._maybe_flush()

    def add_bytes(self, name: str, data: bytes, mode: int = 0o644, **owner: int | str) -> None:
        self._header(name, REGULAR, mode, len(data), b"", owner)
        self._buf += data
        self._pad(len(data))
        self._maybe_flush()

    def add_file(
        self,
        name: str,
        src: str | os.PathLike[str],
        size: int,
        mode: int = 0o644,
        *,
        offset: int = 0,
        **owner: int | str,
    ) -> None:
        """Add a regular file whose content is read from `src`; it must still be `size` bytes.

        With an `offset`, the content is the `size` bytes of `src` from there (a
        member of a layer file), and only a short read is an error.
        """
        self._header(name, REGULAR, mode, size, b"", owner)
        with open(src, "rb", buffering=0) as f:
            if offset:
                f.seek(offset)
            whole = not offset
            if size <= _CHUNK:
                data = f.read(size + 1 if whole else size)
                if len(data) != size:
                    raise _changed(src, size)
                self._buf += data
            else:
                self._flush()
                remaining = size
                while remaining:
                    chunk = f.read(min(_CHUNK, remaining))
                    if not chunk:
                        raise _changed(src, size)
                    self._sink.write(chunk)
                    self._sent += len(chunk)
                    remaining -= len(chunk)
                if whole and f.read(1):
                    raise _changed(src, size)
        self._pad(size)
        self._maybe_flush()

    def begin_file(self, name: str, size: int, mode: int = 0o644, **owner: int | str) -> None:
        """Start a regular file of `size` bytes whose content follows in `write_data` calls."""
        self._header(name, REGULAR, mode, size, b"", owner)
        self._file_left = size

    def write_data(self, data: bytes) -> None:
        if self._file_left is None or len(data) > self._file_left:
            raise ValueError("write_data: more data than begin_file announced")
        self._file_left -= len(data)
        self._append(data)

    def end_file(self, size: int) -> None:
        """End the file `begin_file` started (`size`: what it announced)."""
        if self._file_left != 0:
            raise ValueError(f"end_file: {self._file_left} bytes of the file were not written")
        self._file_left = None
        self._pad(size)
        self._maybe_flush()

    @property
    def position(self) -> int:
        """Bytes of the stream so far (written to the sink or still buffered)."""
        return self._sent + len(self._buf)

    def add_raw(self, data: bytes | memoryview) -> None:
        """Append already-formatted tar blocks (used when concatenating cached layers)."""
        if len(data) % BLOCK:
            raise ValueError("raw tar data must be whole 512-byte blocks")
        self._append(data)

    def close(self) -> None:
        if self._closed:
            return
        self._buf += bytes(2 * BLOCK)
        self._flush()
        self._closed = True

    # -- header layout -------------------------------------------------------------------------

    def _header(
        self,
        name: str,
        typeflag: bytes,
        mode: int,
        size: int,
        linkname: bytes,
        owner: dict[str, int | str],
    ) -> None:
        if self._closed:
            raise ValueError("tar stream already closed")
        self._buf += self.header_bytes(name, typeflag, mode, size, linkname, owner)

    def header_bytes(
        self,
        name: str,
        typeflag: bytes,
        mode: int,
        size: int,
        linkname: bytes,
        owner: dict[str, int | str],
    ) -> bytes:
        """The header blocks (a PAX header first when needed) this writer gives an entry."""
        uid = check_id(int(owner.get("uid", self.uid)), name)
        gid = check_id(int(owner.get("gid", self.gid)), name)
        uname = str(owner.get("uname", self.uname)).encode("utf-8")
        gname = str(owner.get("gname", self.gname)).encode("utf-8")
        mtime = int(owner.get("mtime", self.mtime))
        path = name.encode("utf-8")

        pax: list[tuple[str, bytes]] = []
        if not _fits_ustar_text(path, 100):
            pax.append(("path", path))
            path = _ascii_stub(path, 100)
        if not _fits_ustar_text(linkname, 100):
            pax.append(("linkpath", linkname))
            linkname = _ascii_stub(linkname, 100)
        if size > _MAX_OCTAL_11:
            pax.append(("size", str(size).encode()))
        if uid > _MAX_OCTAL_7:
            pax.append(("uid", str(uid).encode()))
        if gid > _MAX_OCTAL_7:
            pax.append(("gid", str(gid).encode()))
        if not _fits_ustar_text(uname, 32):
            pax.append(("uname", uname))
            uname = b""
        if not _fits_ustar_text(gname, 32):
            pax.append(("gname", gname))
            gname = b""
        if not 0 <= mtime <= _MAX_OCTAL_11:
            raise ValueError(f"mtime out of range: {mtime}")

        out = bytearray()
        if pax:
            records = b"".join(_pax_record(k, v) for k, v in sorted(pax))
            out += _ustar(_PAX_NAME, PAX, 0o644, len(records), b"", 0, 0, b"", b"", mtime)
            out += records
            out += bytes(-len(records) % BLOCK)

        out += _ustar(
            path,
            typeflag,
            mode,
            size if size <= _MAX_OCTAL_11 else 0,
            linkname,
            min(uid, _MAX_OCTAL_7),
            min(gid, _MAX_OCTAL_7),
            uname,
            gname,
            mtime,
        )
        return bytes(out)

    def _pad(self, size: int) -> None:
        rest = size % BLOCK
        if rest:
            self._buf += bytes(BLOCK - rest)

    def _append(self, data: bytes | memoryview) -> None:
        """Add `data` to the stream: a large piece is written through, not copied to the buffer."""
        if len(data) >= _BUFFER_LIMIT:
            self._flush()
            self._sink.write(data)
            self._sent += len(data)
        else:
            self._buf += data
            self._maybe_flush()

    def _maybe_flush(self) -> None:
        if len(self._buf) >= _BUFFER_LIMIT:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            self._sink.write(self._buf)
            self._sent += len(self._buf)
            self._buf = bytearray()


_USTAR = struct.Struct("100s8s8s8s12s12s8s1s100s8s32s32s8s8s167s")
"""A ustar header block; struct pads each text field with NULs (prefix and padding: 167)."""
_MAGIC = b"ustar\x0000"
_NO_DEVICE = _octal(0, 8)
_FIXED_SUM = sum(b" " * 8) + sum(_MAGIC) + 2 * sum(_NO_DEVICE)
"""What the checksum counts of the fields that are the same in every header (the checksum
field itself counts as eight spaces)."""


def _ustar(
    name: bytes,
    typeflag: bytes,
    mode: int,
    size: int,
    linkname: bytes,
    uid: int,
    gid: int,
    uname: bytes,
    gname: bytes,
    mtime: int,
) -> bytes:
    fields = (
        name,
        _octal(mode & 0o7777, 8),
        _octal(uid, 8),
        _octal(gid, 8),
        _octal(size, 12),
        _octal(mtime, 12),
    )
    # the checksum sums the header's bytes: NUL padding adds nothing, so only the fields'
    # own bytes are summed (a 512-byte sum per entry was a third of a 58,000-link layer)
    checksum = _FIXED_SUM + sum(b"".join((*fields, typeflag, linkname, uname, gname)))
    return _USTAR.pack(
        *fields,
        b"%06o\0 " % checksum,
        typeflag,
        linkname,
        _MAGIC,
        uname,
        gname,
        _NO_DEVICE,
        _NO_DEVICE,
        b"",
    )


def _ascii_stub(value: bytes, width: int) -> bytes:
    """What goes in a ustar field whose real value is in the PAX header.

    Readers that know PAX ignore it; others see a truncated ASCII name.
    """
    return value.decode("utf-8", "replace").encode("ascii", "replace")[:width]


def _changed(src: str | os.PathLike[str], size: int) -> UserError:
    return UserError(
        f"file changed size while it was being read (expected {size} bytes); "
        "do not modify inputs during a build",
        where=os.fspath(src),
    )
