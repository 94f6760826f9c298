"""Layer compressors whose output depends only on their input.

- gzip: ISA-L (python-isal), multi-threaded. Its output differs with how the
  input is chunked into `write` calls, so `_Rechunker` feeds it exact
  `GZIP_BLOCK`-sized pieces; then the bytes are the same for any thread count
  and any writer upstream (checked in tests). Header: mtime 0, no file name
  (RFC 1952, https://www.rfc-editor.org/rfc/rfc1952).
- zstd: zstandard with `threads >= 1` (zstd's multi-threaded format is the
  same for any worker count; 0 workers gives different bytes, so never 0).

Levels are fixed: changing one changes every blob digest, so it is a format
change, not a tuning knob.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, cast

import zstandard
from isal import igzip_threaded
from isal.igzip_lib import IsalError

from strata.errors import UserError
from strata.oci.tarwriter import Sink

COMPRESSORS = ("none", "gzip", "zstd")
GZIP_LEVEL = 2  # ISA-L levels are 0-3; 2 is its default trade-off
GZIP_BLOCK = 1 << 20
ZSTD_LEVEL = 3
_CHUNK = 1 << 20

_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def check_compressor(name: str, where: str) -> str:
    if name not in COMPRESSORS:
        raise UserError(
            f"unknown compressor (got {name!r}); use one of: {', '.join(COMPRESSORS)}",
            where=where,
        )
    return name


def _threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def layer_media_type(compressor: str, docker: bool = False) -> str:
    """The layer media type for a manifest (OCI, or Docker v2 schema 2)."""
    if docker:
        if compressor == "zstd":
            # Docker's schema has no zstd type; Docker and containerd accept the OCI one.
            return _OCI_LAYER + "+zstd"
        return _DOCKER_LAYER + (".gzip" if compressor == "gzip" else "")
    return _OCI_LAYER + {"none": "", "gzip": "+gzip", "zstd": "+zstd"}[compressor]


def media_type_compressor(media_type: str) -> str | None:
    """The compressor a layer media type names (OCI or Docker), or None for another type.

    Only for blobs whose bytes are not here (a shallow base): otherwise the bytes' own
    magic decides, as labels are not always honest."""
    for compressor in COMPRESSORS:
        if media_type in (layer_media_type(compressor), layer_media_type(compressor, True)):
            return compressor
    return None


def detect_compressor(head: bytes) -> str:
    """Guess from magic bytes (base image blobs are not always labelled honestly)."""
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    return "none"


class _Rechunker:
    """Forwards writes to `sink` in exact `size`-byte pieces (the last may be short)."""

    def __init__(self, sink: BinaryIO, size: int) -> None:
        self._sink = sink
        self._size = size
        self._buf = bytearray()

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        n = len(data)
        if not self._buf and n == self._size:
            self._sink.write(data)
            return n
        self._buf += data
        if len(self._buf) >= self._size:
            view = memoryview(self._buf)
            end = len(self._buf) - len(self._buf) % self._size
            for start in range(0, end, self._size):
                self._sink.write(view[start : start + self._size])
            view.release()
            del self._buf[:end]
        return n

    def close(self) -> None:
        if self._buf:
            self._sink.write(self._buf)
            self._buf = bytearray()


class _SinkFile(io.RawIOBase):
    """Adapts any object with `write` to the file object the compressors expect."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview, /) -> int:  # type: ignore[override]
        self._sink.write(data)
        return len(data)


@contextlib.contextmanager
def compressing(compressor: str, sink: Sink) -> Iterator[Sink]:
    """A writer that compresses into `sink`; everything is flushed when the block ends."""
    if compressor == "none":
        yield sink
        return
    raw = _SinkFile(sink)
    if compressor == "gzip":
        gz = igzip_threaded.open(  # type: ignore[no-untyped-call]
            raw, "wb", compresslevel=GZIP_LEVEL, threads=_threads(), block_size=GZIP_BLOCK
        )
        chunker = _Rechunker(gz, GZIP_BLOCK)
        try:
            yield chunker
            chunker.close()
        finally:
            gz.close()
        return
    if compressor == "zstd":
        cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=_threads())
        with cctx.stream_writer(cast(BinaryIO, raw), closefd=False) as zw:
            yield zw
        return
    raise ValueError(f"unknown compressor {compressor!r}")


@dataclass(frozen=True)
class StreamDigests:
    """What one pass over a (possibly compressed) layer stream learnt."""

    digest: str
    """sha256 of the bytes as stored (the blob digest)."""
    size: int
    diff_id: str
    """sha256 of the uncompressed tar (the config's rootfs.diff_ids entry)."""
    compressor: str


# What a damaged gzip (isal) or zstd stream raises while it is read.
_CORRUPT: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    zstandard.ZstdError,
    cast("type[BaseException]", IsalError),
)


_LAYER_ERRORS: tuple[type[BaseException], ...] = (tarfile.TarError, *_CORRUPT)


@contextlib.contextmanager
def reading_layer(where: str) -> Iterator[None]:
    """Turn what a damaged layer raises while its tar is read into one `UserError`.

    A cut or corrupt tar, gzip or zstd stream raises tarfile, zlib/isal,
    zstandard or EOF errors from deep inside the readers; an `OSError` with an
    errno is the file system's, not the layer's, and is left alone.
    """
    try:
        yield
    except _LAYER_ERRORS as e:
        if isinstance(e, OSError) and e.errno is not None:
            raise
        reason = " ".join(str(e).split())[:120] or type(e).__name__
        raise UserError(
            f"layer is not a readable tar ({reason}); the image or layer is corrupt or cut "
            "short: rebuild or pull it again",
            where=where,
        ) from None


class _Hashing(io.RawIOBase):
    """Reads `src`, hashing (and copying to `copy_to`) every byte once as it passes."""

    def __init__(self, src: IO[bytes], copy_to: IO[bytes] | None) -> None:
        self._src = src
        self._copy_to = copy_to
        self.sha = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any, /) -> int:
        data = self._src.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if n:
            self.sha.update(data)
            self.size += n
            if self._copy_to is not None:
                self._copy_to.write(data)
        return n


def digest_stream(src: IO[bytes], where: str, copy_to: IO[bytes] | None = None) -> StreamDigests:
    """Blob digest, size and diff_id of a layer in one read, decompressing as it streams.

    A base image's layer must be checked against its config's diff_id whatever
    its compression (a layout whose gzip blob decompresses to other bytes is
    rejected by `docker load` and umoci only after the build); reading the
    blob once, for its digest, its copy and its diff_id, keeps that cheap.
    Memory stays bounded: output is read in `_CHUNK` pieces, never whole.
    """
    raw = _Hashing(src, copy_to)
    stored = io.BufferedReader(raw, _CHUNK)
    compressor = detect_compressor(stored.peek(4)[:4])
    diff = hashlib.sha256()
    if compressor != "none":
        try:
            with _decompressing(compressor, stored) as plain:
                while chunk := plain.read(_CHUNK):
                    diff.update(chunk)
        except _CORRUPT as e:
            raise UserError(
                f"layer is not valid {compressor} ({e}); the base image is corrupt: "
                "pull or save it again",
                where=where,
            ) from None
    while stored.read(_CHUNK):  # bytes after the compressed stream belong to the blob too
        pass
    digest = "sha256:" + raw.sha.hexdigest()
    diff_id = digest if compressor == "none" else "sha256:" + diff.hexdigest()
    return StreamDigests(digest, raw.size, diff_id, compressor)


def _decompressing(compressor: str, stored: io.BufferedReader[_Hashing]) -> IO[bytes]:
    if compressor == "gzip":
        from isal import igzip

        return cast(IO[bytes], igzip.IGzipFile(fileobj=stored, mode="rb"))  # type: ignore[no-untyped-call]
    reader = zstandard.ZstdDecompressor().stream_reader(
        stored, read_across_frames=True, closefd=False
    )
    return cast(IO[bytes], reader)


def open_decompressed(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a (possibly compressed) blob for reading its uncompressed bytes."""
    f = open(path, "rb")  # noqa: SIM115 - returned to the caller
    kind = detect_compressor(f.peek(4)[:4]) if hasattr(f, "peek") else "none"
    if kind == "gzip":
        from isal import igzip

        return cast(BinaryIO, _Closing(igzip.IGzipFile(fileobj=f, mode="rb"), f))  # type: ignore[no-untyped-call]
    if kind == "zstd":
        return cast(BinaryIO, zstandard.ZstdDecompressor().stream_reader(f, closefd=True))
    return f


class _Closing(io.BufferedReader):
    """A reader that also closes the file under it (IGzipFile leaves its fileobj open)."""

    def __init__(self, reader: Any, under: BinaryIO) -> None:
        super().__init__(reader)
        self._under = under

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._under.close()
