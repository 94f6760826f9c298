"""File digests through a persistent stat cache.

A no-op build must not read every source file. We remember, per path, the
`(size, mtime_ns, inode)` we last saw with the file's xxh3-128 and sha256.
When the stat is unchanged the sha256 is reused outright; when only the stat
changed (a `touch`, a checkout that rewrote identical bytes) we pay one cheap
xxh3 pass and keep the sha256 if the xxh3 still matches; only changed content
costs a sha256 pass. sha256 is the digest the cache protocol (and Bazel) uses.

The cache is a plain JSON file in the output base, loaded at the start of a
command and written back atomically at the end; the output-base lock makes
one command its only writer.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import xxhash

from strata.canonical import json_bytes
from strata.fsutil import write_bytes_atomic

_CHUNK = 1 << 20
_FORMAT = 1


@dataclass(frozen=True)
class FileDigest:
    sha256: str
    size: int
    executable: bool


@dataclass(frozen=True)
class _Entry:
    size: int
    mtime_ns: int
    inode: int
    xxh3: str
    sha256: str


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


def kind_of(mode: int) -> str:
    """What a file of `mode` is, as an error message names it."""
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symlink"
    return "a regular file" if stat.S_ISREG(mode) else f"a file of mode {oct(mode)}"


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


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open_regular(path) as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def xxh3_file(path: str | os.PathLike[str]) -> str:
    h = xxhash.xxh3_128()
    with open_regular(path) as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def xxh3_and_sha256_file(path: str | os.PathLike[str]) -> tuple[str, str]:
    x, h = xxhash.xxh3_128(), hashlib.sha256()
    with open_regular(path) as f:
        while chunk := f.read(_CHUNK):
            x.update(chunk)
            h.update(chunk)
    return x.hexdigest(), h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class StatCache:
    """Maps absolute file paths to digests, re-reading files only when they changed.

    `digest` may be called from several threads at once (strata.engine.source_digests).
    """

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._entries: dict[str, _Entry] = {}
        self._dirty = False
        self.hashed = 0
        """How many files needed a sha256 pass in this command (for tests and --explain)."""
        self._lock = threading.Lock()
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            raw = json.loads(path.read_bytes())
        except (FileNotFoundError, ValueError):
            return
        if not isinstance(raw, dict) or raw.get("format") != _FORMAT:
            return
        for name, e in raw.get("entries", {}).items():
            self._entries[name] = _Entry(*e)

    def save(self) -> None:
        if self._path is None or not self._dirty:
            return
        entries = {
            k: [e.size, e.mtime_ns, e.inode, e.xxh3, e.sha256] for k, e in self._entries.items()
        }
        write_bytes_atomic(self._path, json_bytes({"format": _FORMAT, "entries": entries}))
        self._dirty = False

    def digest(self, path: str | os.PathLike[str]) -> FileDigest:
        """The digest of a regular file (symlinks followed); OSError if it is missing,
        NotAFile if it is a FIFO, socket or device."""
        key = os.fspath(path)
        st = os.stat(key)
        check_regular(key, st)
        executable = bool(st.st_mode & 0o100)
        old = self._entries.get(key)
        if old and (old.size, old.mtime_ns, old.inode) == (st.st_size, st.st_mtime_ns, st.st_ino):
            return FileDigest(old.sha256, st.st_size, executable)
        if old and old.size == st.st_size and old.xxh3 == (xxh3 := xxh3_file(key)):
            sha = old.sha256
        else:
            xxh3, sha = xxh3_and_sha256_file(key)  # one read for both
            with self._lock:
                self.hashed += 1
        self.remember(key, st, xxh3, sha)
        return FileDigest(sha, st.st_size, executable)

    def recorded(self, path: str | os.PathLike[str], st: os.stat_result) -> tuple[str, str] | None:
        """(xxh3, sha256) remembered for `path`, if `st` is the stat they were taken at."""
        e = self._entries.get(os.fspath(path))
        if e and (e.size, e.mtime_ns, e.inode) == (st.st_size, st.st_mtime_ns, st.st_ino):
            return e.xxh3, e.sha256
        return None

    def remember(self, key: str, st: os.stat_result, xxh3: str, sha256: str) -> None:
        with self._lock:
            self._entries[key] = _Entry(st.st_size, st.st_mtime_ns, st.st_ino, xxh3, sha256)
            self._dirty = True

    def record_output(self, path: str | os.PathLike[str], sha256: str) -> None:
        """Note a file we just wrote with a known sha256, so the next command trusts it."""
        key = os.fspath(path)
        self.remember(key, os.stat(key), xxh3_file(key), sha256)

    def forget(self, path: str | os.PathLike[str]) -> None:
        if self._entries.pop(os.fspath(path), None) is not None:
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
