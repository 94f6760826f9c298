"""Reading the two whole-image formats from outside: docker-archive and OCI image layout.

Both come from outside the build (a `docker save`, a pulled or copied
layout), so nothing in them names a file until it is checked. This module is
where either format is opened; strata.oci.base (base images, export, merge,
run_as_root), strata.registry.push and the ImageIndex action all read
through it.

docker-archive (https://github.com/moby/moby/blob/master/image/spec/v1.2.md):
a tar, listed once with strata.oci.tarscan (a bad checksum, a number that is
not one, data running past the end of the file is an error, never a short
listing). Every member name and link target must stay inside the archive;
a member is read through links (the legacy `<id>/layer.tar` is often one)
and only when it is a regular file. A gzip, zstd, bzip2 or xz compressed
archive is decompressed into an anonymous temporary file first.

OCI image layout (https://github.com/opencontainers/image-spec/blob/main/image-layout.md):
blobs are named only by `sha256:<64 hex digits>`, so a digest such as
`sha256:./../../etc/passwd` can never name a host file.
"""

from __future__ import annotations

import bz2
import contextlib
import hashlib
import io
import lzma
import os
import posixpath
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import zstandard

from strata import canonical
from strata.errors import UserError
from strata.oci.compress import detect_compressor, open_decompressed
from strata.oci.digest import split_digest
from strata.oci.tarscan import (
    REGULAR_TYPES,
    SYMLINK,
    Header,
    TarFormatError,
    TarTruncatedError,
    scan,
)

_HARDLINK = b"1"
_BZIP2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_CORRUPT = (EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError, OSError)
"""What decompressing a damaged archive raises (an OSError with an errno is the disk's)."""


def safe_member(name: str, archive: str) -> str:
    """`name`, normalised, if it stays inside the archive; else one error naming it."""
    norm = posixpath.normpath(name) if name else name
    if (
        not name
        or name.startswith("/")
        or norm == ".."
        or norm.startswith("../")
        or ".." in name.split("/")
    ):
        raise UserError(
            f"archive member escapes the archive (got {name!r}); "
            "rebuild the base archive with relative member names",
            where=archive,
        )
    return norm


def _not_a_tar(where: str, reason: str) -> UserError:
    return UserError(
        f"base image is not a tar archive ({reason}); give a docker-archive "
        "(docker save) or an OCI layout directory",
        where=where,
    )


def _corrupt(where: str, what: str, reason: str) -> UserError:
    return UserError(
        f"base image archive is truncated or corrupt while reading {what} (got "
        f"{reason}); save or download the base image again",
        where=where,
    )


class _Member(io.RawIOBase):
    """The data of one member: a byte range of the archive, read with pread."""

    def __init__(self, fd: int, offset: int, size: int) -> None:
        self._fd = fd
        self._pos = offset
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any, /) -> int:
        n = min(len(buffer), self._left)
        if n == 0:
            return 0
        data = os.pread(self._fd, n, self._pos)
        if not data:
            raise EOFError("unexpected end of data")
        buffer[: len(data)] = data
        self._pos += len(data)
        self._left -= len(data)
        return len(data)


class Archive:
    """A docker-archive's members, listed and checked; use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        self._file = self._open_uncompressed(path)
        self.members: dict[str, Header] = {}
        try:
            self._list()
        except BaseException:
            self._file.close()
            raise

    def _open_uncompressed(self, path: Path) -> IO[bytes]:
        f = open(path, "rb")  # noqa: SIM115 - closed by close()
        head = f.read(6)
        f.seek(0)
        if detect_compressor(head[:4]) == "none" and not head.startswith((_BZIP2_MAGIC, _XZ_MAGIC)):
            return f
        f.close()
        plain = tempfile.TemporaryFile()  # noqa: SIM115 - returned, closed by close()
        try:
            with self._decompressed(path, head) as src:
                shutil.copyfileobj(src, plain, 1 << 20)
        except _CORRUPT as e:
            plain.close()
            if isinstance(e, OSError) and e.errno:
                raise  # the disk, not the archive
            raise _corrupt(self.where, "its compressed data", _reason(e)) from None
        plain.seek(0)
        return plain

    @staticmethod
    def _decompressed(path: Path, head: bytes) -> IO[bytes]:
        if head.startswith(_BZIP2_MAGIC):
            return bz2.open(path, "rb")
        if head.startswith(_XZ_MAGIC):
            return lzma.open(path, "rb")
        return open_decompressed(path)

    def _list(self) -> None:
        listed = False
        if os.fstat(self._file.fileno()).st_size == 0:
            raise _not_a_tar(self.where, "empty file")
        try:
            for h in scan(self._file.fileno()):
                listed = True
                self._add(h)
        except TarTruncatedError:
            if not listed:
                raise _not_a_tar(self.where, "the file ends inside its first header") from None
            raise _corrupt(self.where, "its table of members", "unexpected end of data") from None
        except TarFormatError as e:
            if not listed:
                raise _not_a_tar(self.where, str(e)) from None
            raise _corrupt(self.where, "its table of members", str(e)) from None

    def _add(self, h: Header) -> None:
        name = safe_member(h.name, self.where)
        if h.kind == SYMLINK:
            target = h.linkname
            if not target.startswith("/"):
                target = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
            safe_member(target, self.where)
        elif h.kind == _HARDLINK:
            safe_member(h.linkname, self.where)
        self.members[name] = h

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    @contextlib.contextmanager
    def reading(self, what: str) -> Iterator[None]:
        """A member cut short (the file changed under us) as one user error."""
        try:
            yield
        except EOFError as e:
            raise _corrupt(self.where, what, _reason(e)) from None

    def _header(self, name: str) -> Header:
        norm = safe_member(name, self.where)
        h = self.members.get(norm)
        seen = 0
        while h is not None and h.kind in (SYMLINK, _HARDLINK) and seen < 10:
            base = posixpath.dirname(norm) if h.kind == SYMLINK else ""
            norm = safe_member(posixpath.normpath(posixpath.join(base, h.linkname)), self.where)
            h = self.members.get(norm)
            seen += 1
        if h is None or h.kind not in REGULAR_TYPES:
            raise UserError(
                f"archive member is missing (got {name!r}); the archive is incomplete: "
                "save the base image again",
                where=self.where,
            )
        return h

    def open(self, name: str) -> IO[bytes]:
        """The data of the regular file `name` (through links), as a stream."""
        h = self._header(name)
        return io.BufferedReader(_Member(self._file.fileno(), h.data, h.size), 1 << 20)

    def read(self, name: str) -> bytes:
        with self.reading(repr(name)), self.open(name) as f:
            return f.read()


def _reason(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def blob_path(layout: Path, digest: object) -> Path | None:
    """The file of an OCI layout that `digest` names, or None unless it is
    `sha256:<64 lowercase hex digits>` (whether the file exists is not checked)."""
    try:
        hexpart = split_digest(str(digest))[1]
    except ValueError:
        return None
    return layout / "blobs" / "sha256" / hexpart


def layout_blob(layout: Path, digest: object, where: str) -> Path:
    """The existing blob file `digest` names in an OCI layout; else one error."""
    path = blob_path(layout, digest)
    if path is None:
        raise UserError(
            f"unsupported or malformed digest (got {str(digest)[:80]!r}); only sha256 is read",
            where=where,
        )
    if not path.is_file():
        raise UserError(
            f"blob is missing (got blobs/sha256/{path.name}); the layout is incomplete: "
            "copy or pull it again",
            where=where,
        )
    return path


def digest_mismatch(what: str, expected: str, actual: str, where: str) -> UserError:
    return UserError(
        f"{what} digest mismatch (got {actual}, expected {expected}); "
        "the base image is corrupt or was modified: fetch it again",
        where=where,
    )


def check_diff_id(where: str, index: int, name: str, expected: str, got: str) -> None:
    """The uncompressed layer must be what rootfs.diff_ids says, whatever the format."""
    if got != expected:
        raise UserError(
            f"layer {index} ({name}) does not match rootfs.diff_ids[{index}] of the config "
            f"(got {got}, expected {expected}); the base image is corrupt or was modified: "
            "pull it again, or pin the digest of an intact image",
            where=where,
        )


def parse_json(data: bytes, what: str, where: str) -> Any:
    """The JSON value of an image's metadata `data`; a one-line UserError if it is not JSON."""
    return canonical.parse_json(
        data, what, "the image is damaged: copy, pull or build it again", where
    )


def json_object(value: Any, what: str, where: str) -> dict[str, Any]:
    """`value` if it is a JSON object; else the layout is not what the spec describes."""
    if not isinstance(value, dict):
        raise UserError(
            f"{what} is not a JSON object (got {type(value).__name__}); the layout is "
            "malformed: write or pull it again",
            where=where,
        )
    return value


def read_blob(layout: Path, desc: Any, where: str) -> bytes:
    """The bytes of the blob descriptor `desc` names in an OCI layout, checked against its
    digest."""
    desc = json_object(desc, "descriptor", where)
    path = layout_blob(layout, desc.get("digest"), where)
    data = path.read_bytes()
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if actual != desc["digest"]:
        raise digest_mismatch(f"blob {path.name}", str(desc["digest"]), actual, where)
    return data


def read_index(layout: Path, where: str) -> dict[str, Any]:
    """An OCI layout's `index.json`, which must be a JSON object."""
    if not (layout / "index.json").is_file():
        raise UserError(
            "OCI image layout has no index.json (got an oci-layout file without it); the "
            "layout is incomplete: copy or pull it again",
            where=where,
        )
    data = (layout / "index.json").read_bytes()
    return json_object(parse_json(data, "index.json", where), "index.json", where)
