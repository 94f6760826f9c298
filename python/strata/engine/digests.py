"""File digests through a persistent stat cache.

A no-op build must not read every source file. We remember, per path, the
`(size, mtime_ns, inode)` we last saw with the file's xxh3-128 and sha256.
When the stat is unchanged the sha256 is reused outright; when only the stat
changed (a `touch`, a checkout that rewrote identical bytes) we pay one cheap
xxh3 pass and keep the sha256 if the xxh3 still matches; only changed content
costs a sha256 pass. sha256 is the digest the cache protocol (and Bazel) uses.

A stat is only proof while the file cannot change again within the same
timestamp tick: a source hashed less than `RACY_NS` after its last change is
remembered as "racy" and gets the cheap xxh3 pass next time (git's "racily
clean" entries). Outputs strata wrote itself are not racy: nothing else
writes them.

The cache is a file in the output base: the paths, and one fixed-size
binary record per path (size, mtime, inode, xxh3, sha256), decoded only when
a path is looked up. A no-op build of a closure loads ~60,000 entries: as
JSON, or as one tuple of five objects each, they cost several times more
time and memory. It is loaded at the start of a command and written back
atomically at the end; the output-base lock makes one command its only
writer.
"""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
import stat
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import xxhash

from strata.canonical import json_bytes
from strata.fsutil import kind_of, write_bytes_atomic

_CHUNK = 1 << 20
_BUFFERS = threading.local()
_FORMAT = 3
_RECORD = struct.Struct("<qqQ16s32s")
"""size, mtime_ns (or `_RACY`), inode, xxh3-128, sha256."""
_STAT = struct.Struct("<qqQ")
RACY_NS = 2_000_000_000
"""A file or directory changed this recently may change again with the same mtime.
Two seconds covers every timestamp granularity in use (FAT's is 2 s)."""
_RACY = -1
"""The mtime remembered for a racy entry: no stat matches it, so it is re-checked."""


def is_racy(st: os.stat_result, now_ns: int | None = None) -> bool:
    """Whether `st` (taken just now) may not show a change made later in the same tick."""
    now = time.time_ns() if now_ns is None else now_ns
    return max(st.st_mtime_ns, st.st_ctime_ns) >= now - RACY_NS


@dataclass(frozen=True)
class FileDigest:
    sha256: str
    size: int
    executable: bool


_Entry = tuple[int, int, int, str, str]
"""(size, mtime_ns, inode, xxh3, sha256) of a file as last seen."""


class NotAFile(OSError):
    """A path the engine would read is a FIFO, socket or device, not a regular file.

    Reading one would block forever (a FIFO with no writer) or never end
    (`/dev/zero`), so only regular files are read; directories and symlinks
    are handled by the callers. An OSError, so code that treats an unreadable
    file as absent keeps doing so.
    """

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(f"{path} is {kind}, not a regular file")
        self.path = path
        self.kind = kind


def check_regular(path: str | os.PathLike[str], st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise NotAFile(os.fspath(path), kind_of(st.st_mode))


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a regular file for reading (symlinks followed); NotAFile for anything else.

    Checked before opening (a socket cannot be opened, and opening a FIFO
    blocks) and again on the open descriptor, opened non-blocking, so a file
    swapped for a FIFO in between cannot hang the read either.
    """
    check_regular(path, os.stat(path))
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        check_regular(path, os.fstat(fd))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _chunks(path: str | os.PathLike[str]) -> Iterator[memoryview]:
    """The bytes of the regular file at `path`, read into this thread's own buffer: a new
    bytes object a chunk cost a third of hashing a closure's sources. A sparse file's holes
    are not read: they are zeros, given from memory (reading them fills the page cache
    with zeros, and a 9 GiB disk image that is mostly holes took seconds a GiB)."""
    buf: memoryview | None = getattr(_BUFFERS, "buf", None)
    if buf is None:
        buf = _BUFFERS.buf = memoryview(bytearray(_CHUNK))
    check_regular(path, os.stat(path))  # as open_regular, without a file object
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # (no effect on a file)
    try:
        st = os.fstat(fd)
        check_regular(path, st)
        offset = 0
        if st.st_blocks * 512 < st.st_size:  # fewer blocks than bytes: it may have holes
            for start, end in _data_runs(fd, st.st_size):
                yield from _zeros(start - offset)
                offset = start
                while offset < end and (n := os.preadv(fd, [buf[: end - offset]], offset)):
                    yield buf[:n]
                    offset += n
                if offset < end:  # shorter than its stat said: the rest is read as it is
                    break
        while n := os.preadv(fd, [buf], offset):
            yield buf[:n]
            offset += n
    finally:
        os.close(fd)


_ZEROS = memoryview(bytes(_CHUNK))


def _zeros(count: int) -> Iterator[memoryview]:
    while count > 0:
        yield _ZEROS[: min(count, _CHUNK)]
        count -= _CHUNK


def _data_runs(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each run of data in the file's first `size` bytes, by SEEK_DATA and
    SEEK_HOLE; where the file system cannot tell, the rest is one run."""
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:  # only a hole from here to the end
                yield size, size
                return
            yield offset, size
            return
        if start >= size:
            yield size, size
            return
        try:
            end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        except OSError:
            end = size
        yield start, end
        offset = end


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    for chunk in _chunks(path):
        h.update(chunk)
    return h.hexdigest()


def xxh3_file(path: str | os.PathLike[str]) -> str:
    h = xxhash.xxh3_128()
    for chunk in _chunks(path):
        h.update(chunk)
    return h.hexdigest()


def xxh3_and_sha256_file(path: str | os.PathLike[str]) -> tuple[str, str]:
    x, h = xxhash.xxh3_128(), hashlib.sha256()
    for chunk in _chunks(path):  # one read for both
        x.update(chunk)
        h.update(chunk)
    return x.hexdigest(), h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class StatCache:
    """Maps absolute file paths to digests, re-reading files only when they changed.

    `digest` may be called from several threads at once (strata.engine.execution.source_digests).
    """

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._index: dict[str, int] = {}
        """Path -> its record in `_blob`, as loaded."""
        self._blob = b""
        self._changed: dict[str, bytes] = {}
        """Records made (or remade) by this command; they win over `_index`."""
        self._dirty = False
        self.hashed = 0
        """How many files needed a sha256 pass in this command (for tests and --explain)."""
        self._lock = threading.Lock()
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            raw = pickle.loads(path.read_bytes())
        except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError):
            return  # missing, damaged or from another strata: start empty
        except (AttributeError, ImportError, IndexError, KeyError):
            return
        if not (isinstance(raw, tuple) and len(raw) == 3 and raw[0] == _FORMAT):
            return
        keys, blob = raw[1], raw[2]
        ok = isinstance(keys, list) and isinstance(blob, bytes)
        if ok and len(blob) == len(keys) * _RECORD.size:
            self._index = {k: i for i, k in enumerate(keys)}
            self._blob = blob

    def _get(self, key: str) -> _Entry | None:
        record = self._changed.get(key)
        if record is not None:
            size, mtime, ino, xxh3, sha = _RECORD.unpack(record)
        else:
            i = self._index.get(key)
            if i is None:
                return None
            size, mtime, ino, xxh3, sha = _RECORD.unpack_from(self._blob, i * _RECORD.size)
        return (size, mtime, ino, xxh3.hex(), sha.hex())

    def save(self) -> None:
        if self._path is None or not self._dirty:
            return
        keys = [k for k in self._index if k not in self._changed]
        size = _RECORD.size
        parts = [self._blob[self._index[k] * size : (self._index[k] + 1) * size] for k in keys]
        keys.extend(self._changed)
        parts.extend(self._changed.values())
        data = pickle.dumps((_FORMAT, keys, b"".join(parts)), protocol=5)
        write_bytes_atomic(self._path, data, durable=False)
        self._dirty = False

    def digest(self, path: str | os.PathLike[str], st: os.stat_result | None = None) -> FileDigest:
        """The digest of a regular file (symlinks followed); OSError if it is missing,
        NotAFile if it is a FIFO, socket or device.

        `st`, if given, is `os.stat(path)` taken just now by the caller.
        """
        key = os.fspath(path)
        if st is None:
            st = os.stat(key)
        check_regular(key, st)
        executable = bool(st.st_mode & 0o100)
        old = self._get(key)
        if old and old[:3] == (st.st_size, st.st_mtime_ns, st.st_ino):
            return FileDigest(old[4], st.st_size, executable)
        if old and old[0] == st.st_size and old[3] == (xxh3 := xxh3_file(key)):
            sha = old[4]
        else:
            xxh3, sha = xxh3_and_sha256_file(key)  # one read for both
            with self._lock:
                self.hashed += 1
        self.remember(key, st, xxh3, sha, racy=is_racy(st))
        return FileDigest(sha, st.st_size, executable)

    def sha256(self, path: str, st: os.stat_result) -> str:
        """`digest(path, st).sha256`, decoding only the sha256 when the stat is unchanged."""
        known = self.unchanged_sha256(path, st)
        return known if known is not None else self.digest(path, st).sha256

    def unchanged_sha256(self, path: str, st: os.stat_result) -> str | None:
        """The sha256 loaded for regular file `path` if `st` is the stat it was taken at."""
        if path not in self._changed and stat.S_ISREG(st.st_mode):
            i = self._index.get(path)
            if i is not None:
                at = i * _RECORD.size
                if _STAT.unpack_from(self._blob, at) == (st.st_size, st.st_mtime_ns, st.st_ino):
                    return self._blob[at + 40 : at + 72].hex()
        return None

    def recorded(self, path: str | os.PathLike[str], st: os.stat_result) -> tuple[str, str] | None:
        """(xxh3, sha256) remembered for `path`, if `st` is the stat they were taken at."""
        e = self._get(os.fspath(path))
        if e and e[:3] == (st.st_size, st.st_mtime_ns, st.st_ino):
            return e[3], e[4]
        return None

    def remember(
        self, key: str, st: os.stat_result, xxh3: str, sha256: str, *, racy: bool = False
    ) -> None:
        """Note `key`'s digests for stat `st`; a `racy` entry is re-checked by xxh3 next time."""
        mtime = _RACY if racy else st.st_mtime_ns
        x, sha = bytes.fromhex(xxh3), bytes.fromhex(sha256)
        record = _RECORD.pack(st.st_size, mtime, st.st_ino, x, sha)
        with self._lock:
            self._changed[key] = record
            self._dirty = True

    def record_output(self, path: str | os.PathLike[str], sha256: str) -> None:
        """Note a file we just wrote with a known sha256, so the next command trusts it."""
        key = os.fspath(path)
        self.remember(key, os.stat(key), xxh3_file(key), sha256)

    def forget(self, path: str | os.PathLike[str]) -> None:
        key = os.fspath(path)
        made, loaded = self._changed.pop(key, None), self._index.pop(key, None)
        if made is not None or loaded is not None:
            self._dirty = True


def tree_listing(root: Path, stat_cache: StatCache) -> list[tuple[str, str, int, bool]]:
    """(relative path, sha256, size, executable) of every file under a tree artifact, sorted.

    A symlink inside the tree is listed by its target (`symlink:<target>`, size
    0), not by what it points to: the link itself is the content.
    """
    out: list[tuple[str, str, int, bool]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for name in dirnames + filenames:
            full = here / name
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                out.append((rel, "symlink:" + os.readlink(full), 0, False))
            elif name in filenames:
                d = stat_cache.digest(full)
                out.append((rel, d.sha256, d.size, d.executable))
        dirnames[:] = sorted(d for d in dirnames if not (here / d).is_symlink())
    out.sort()
    return out


def tree_digest(listing: list[tuple[str, str, int, bool]]) -> str:
    """One digest standing for a whole tree artifact: sha256 of its canonical listing."""
    return sha256_bytes(json_bytes([list(e) for e in listing]))
