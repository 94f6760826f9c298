"""What loading and analysis read from the file system, so their result can be reused.

Analysis is a function of the files it reads (WORKSPACE, BUILD and .bzl
files, templates, repository markers), of the file-system questions it asks
(does `pkg/BUILD` exist? is `x` a directory?) and of the directory listings
`glob()` and `//...` consult. Every such read goes through one `Reads`, which
returns the answer and records an `Observation` of it. `changed()` later asks
the same questions again: if every answer is the same, analysis would compute
the same result, so a cached one can be used (see analysis_cache.py).

File contents are compared by sha256 through the stat cache, so checking an
unchanged file costs one `stat`. A directory listing is stored with the
directory's stamp (mtime, ctime, inode, device, taken before listing): adding,
removing or renaming an entry changes the directory's mtime and ctime, so an
equal stamp proves an equal listing with one `stat`, and proves too that no
entry changed kind (a file cannot become a directory in place). Only
symlinks can change what they point at without touching their directory, so
a directory holding any is listed again, and the kinds of paths in it are
asked again. A closure's 58,000 files thus cost ~3,000 directory stats, not
58,000 file stats. A stamp taken less than `RACY_NS` after the directory
changed proves nothing (a change in the same clock tick keeps the mtime): it
is not stored, and a later check that finds the same listing stores it then.

This module must stay cheap to import: it is on the no-op path, which never
imports starlark.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import xxhash

from strata.engine.digests import StatCache, is_racy
from strata.errors import UserError

MISSING = "missing"


@dataclass(frozen=True)
class Observation:
    """One answer analysis depended on: `what` of `path` was `value`."""

    what: str
    """`file` (sha256 of the content), `kind` (file/dir/missing/other), `entry` (what a
    listing of its directory says of it: d/l/f, or missing), `dir` (listing) or `env` (a
    client environment variable a repository rule declared; path is its name)."""
    path: str
    value: str


Stamp = tuple[int, int, int, int]
"""(mtime_ns, ctime_ns, inode, device) of a directory."""


def dir_stamp(path: str, now_ns: int) -> Stamp | None:
    """`path`'s stamp, or None if it is no directory or changed too recently to prove much."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or is_racy(st, now_ns):
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def path_kind(path: str) -> str:
    """`file`, `dir`, `missing` or `other`; symlinks are followed, as `Path.is_file` does."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return MISSING
    except OSError:
        return "other"
    if stat.S_ISREG(mode):
        return "file"
    return "dir" if stat.S_ISDIR(mode) else "other"


def scan_dir(path: str) -> tuple[list[tuple[str, str]], bool]:
    """`list_dir(path)`, and whether any entry is a symlink (to anything)."""
    out = []
    links = False
    try:
        with os.scandir(path) as it:
            for e in it:
                link = e.is_symlink()
                links = links or link
                if e.is_dir(follow_symlinks=True):
                    out.append((e.name, "l" if link else "d"))
                else:
                    out.append((e.name, "f"))
    except (FileNotFoundError, NotADirectoryError):
        return [], False
    out.sort()
    return out, links


def list_dir(path: str) -> list[tuple[str, str]]:
    """Sorted (name, kind) of a directory's entries: `d` directory, `l` symlink to a
    directory (listed, not entered, as `os.walk` does), `f` anything else."""
    return scan_dir(path)[0]


def entry_kind(path: str) -> str:
    """What `list_dir` of `path`'s directory says of it (`d`, `l`, `f`), or `missing`."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return MISSING
    if stat.S_ISLNK(mode):
        return "l" if path_kind(path) == "dir" else "f"
    return "d" if stat.S_ISDIR(mode) else "f"


def _listing_digest(entries: list[tuple[str, str]]) -> str:
    return hashlib.sha256("".join(f"{k}{n}\0" for n, k in entries).encode()).hexdigest()


@dataclass
class Recorded:
    """What one analysis read, compactly: the form stored with its result."""

    values: list[tuple[str, str, str]] = field(default_factory=list)
    """(what, path, value) of every `file`, `entry` and `env` observation."""
    dirs: list[tuple[str, str, Stamp | None, bool]] = field(default_factory=list)
    """(path, listing digest, stamp, whether the listing has symlinks) per listed directory."""
    kinds: dict[str, str] = field(default_factory=dict)
    """Every `kind` observation, by directory: `name\0kind\0name\0kind...` (one string a
    directory, unpacked only when that directory's stamp does not vouch for them)."""
    refreshed: bool = False
    """Set when a check stored a stamp it could not store before (save the entry again)."""


class Reads:
    """Reads files and directories for one analysis and remembers what it saw."""

    def __init__(self, stat_cache: StatCache | None = None) -> None:
        self.stat_cache = stat_cache if stat_cache is not None else StatCache()
        self._seen: dict[tuple[str, str], str] = {}
        self._kinds: dict[str, str] = {}
        self._listings: dict[str, list[tuple[str, str]]] = {}
        """One analysis sees one state of the file system: each path is asked once."""
        self._stamps: dict[str, Stamp | None] = {}
        """Each listed directory's stamp, taken just before it was listed."""
        self._linked: set[str] = set()
        """Listed directories holding a symlink: their stamps vouch for less (see above)."""

    def recorded(self) -> Recorded:
        rec = Recorded()
        kinds: dict[str, list[str]] = {}
        for (what, path), value in self._seen.items():
            if what == "dir":
                rec.dirs.append((path, value, self._stamps[path], path in self._linked))
            elif what == "kind":
                parent, name = os.path.split(path)
                kinds.setdefault(parent, []).extend((name, value))
            else:
                rec.values.append((what, path, value))
        rec.kinds = {parent: "\0".join(items) for parent, items in kinds.items()}
        return rec

    def _note(self, what: str, path: str, value: str) -> None:
        self._seen.setdefault((what, path), value)

    # ---- the questions analysis asks ------------------------------------------

    def read_bytes(self, path: Path) -> bytes:
        key = os.fspath(path)
        st = os.stat(key)
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        if len(data) == st.st_size:
            xxh3 = xxhash.xxh3_128_hexdigest(data)
            self.stat_cache.remember(key, st, xxh3, sha, racy=is_racy(st))
        self._note("file", key, sha)
        return data

    def read_text(self, path: Path, display: str | None = None) -> str:
        """The file's text; a UserError naming `display` (else the path) and the line
        of the first byte that is not UTF-8, as Starlark sources must be."""
        data = self.read_bytes(path)
        try:
            return data.decode()
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
            raise UserError(
                f"file is not valid UTF-8 (got byte 0x{data[e.start]:02x}); save it as UTF-8",
                where=f"{display or path}:{line}:{column}",
            ) from None

    def kind(self, path: Path) -> str:
        key = os.fspath(path)
        k = self._kinds.get(key)
        if k is None:
            k = self._kinds[key] = path_kind(key)
            self._note("kind", key, k)
        return k

    def is_file(self, path: Path) -> bool:
        return self.kind(path) == "file"

    def is_dir(self, path: Path) -> bool:
        return self.kind(path) == "dir"

    def exists(self, path: Path) -> bool:
        return self.kind(path) != MISSING

    def entry(self, path: Path) -> str:
        """`entry_kind(path)`: a question about one name, where a listing of its directory
        would make every new name there (a `strata-bin` link, say) a reason to re-analyse."""
        key = os.fspath(path)
        listed = self._listings.get(os.path.dirname(key))
        if listed is not None:
            return dict(listed).get(os.path.basename(key), MISSING)
        value = entry_kind(key)
        self._note("entry", key, value)
        return value

    def listdir(self, path: Path) -> list[tuple[str, str]]:
        key = os.fspath(path)
        entries = self._listings.get(key)
        if entries is None:
            self._stamps[key] = dir_stamp(key, time.time_ns())
            entries, links = scan_dir(key)
            self._listings[key] = entries
            if links:
                self._linked.add(key)
            self._note("dir", key, _listing_digest(entries))
        return entries

    def env(self, name: str, environ: Mapping[str, str]) -> str | None:
        """A client environment variable a repository rule declared (`environ = [...]`)."""
        value = environ.get(name)
        self._note("env", name, MISSING if value is None else "=" + value)
        return value

    def walk(self, top: Path) -> Iterator[tuple[Path, list[str], list[str]]]:
        """`os.walk(top)` (top-down, prune by editing dirnames) with every listing recorded."""
        stack = [top]
        while stack:
            here = stack.pop()
            entries = self.listdir(here)
            dirs = [n for n, k in entries if k != "f"]
            files = [n for n, k in entries if k == "f"]
            yield here, dirs, files
            real = {n for n, k in entries if k == "d"}
            stack.extend(here / d for d in reversed(dirs) if d in real)


def changed(rec: Recorded, stat_cache: StatCache) -> Observation | None:
    """The first observation in `rec` that no longer holds, or None if all still do.

    Stamps of directories whose listing is unchanged are stored into `rec` as
    they become old enough to prove something (`rec.refreshed`).
    """
    for what, path, value in rec.values:
        if what == "file":
            try:
                now = stat_cache.digest(path).sha256
            except OSError:
                now = MISSING
        elif what == "entry":
            now = entry_kind(path)
        else:
            env = os.environ.get(path)
            now = MISSING if env is None else "=" + env
        if now != value:
            return Observation(what, path, value)
    unchanged: set[str] = set()
    """Directories whose stamp proves the kind of every entry unchanged."""
    now_ns = time.time_ns()
    for i, (path, digest, stamp, links) in enumerate(rec.dirs):
        current = dir_stamp(path, now_ns)
        if stamp is not None and current == stamp and not links:
            unchanged.add(path)
            continue
        if _listing_digest(list_dir(path)) != digest:
            return Observation("dir", path, digest)
        if current != stamp:
            rec.dirs[i] = (path, digest, current, links)
            rec.refreshed = True
    for parent, packed in rec.kinds.items():
        if parent in unchanged:
            continue
        items = packed.split("\0")
        for name, kind in zip(items[::2], items[1::2], strict=True):
            path = os.path.join(parent, name)
            if path_kind(path) != kind:
                return Observation("kind", path, kind)
    return None
