"""What loading and analysis read from the file system, so their result can be reused.

Analysis is a function of the files it reads (WORKSPACE, BUILD and .bzl
files, templates, repository markers), of the file-system questions it asks
(does `pkg/BUILD` exist? is `x` a directory?) and of the directory listings
`glob()` and `//...` consult. Every such read goes through one `Reads`, which
returns the answer and records an `Observation` of it. `changed()` later asks
the same questions again: if every answer is the same, analysis would compute
the same result, so a cached one can be used (see analysis_cache.py).

File contents are compared by sha256 through the stat cache, so checking an
unchanged file costs one `stat`. This module must stay cheap to import: it is
on the no-op path, which never imports starlark.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import xxhash

from strata.engine.digests import StatCache
from strata.errors import UserError

MISSING = "missing"


@dataclass(frozen=True)
class Observation:
    """One answer analysis depended on: `what` of `path` was `value`."""

    what: str
    """`file` (sha256 of the content), `kind` (file/dir/missing/other), `dir` (listing)
    or `env` (a client environment variable a repository rule declared; path is its name)."""
    path: str
    value: str


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


def list_dir(path: str) -> list[tuple[str, str]]:
    """Sorted (name, kind) of a directory's entries: `d` directory, `l` symlink to a
    directory (listed, not entered, as `os.walk` does), `f` anything else."""
    out = []
    try:
        with os.scandir(path) as it:
            for e in it:
                if e.is_dir(follow_symlinks=True):
                    out.append((e.name, "l" if e.is_symlink() else "d"))
                else:
                    out.append((e.name, "f"))
    except (FileNotFoundError, NotADirectoryError):
        return []
    out.sort()
    return out


def _listing_digest(entries: list[tuple[str, str]]) -> str:
    return hashlib.sha256("".join(f"{k}{n}\0" for n, k in entries).encode()).hexdigest()


class Reads:
    """Reads files and directories for one analysis and remembers what it saw."""

    def __init__(self, stat_cache: StatCache | None = None) -> None:
        self.stat_cache = stat_cache if stat_cache is not None else StatCache()
        self._seen: dict[tuple[str, str], str] = {}
        self._kinds: dict[str, str] = {}
        self._listings: dict[str, list[tuple[str, str]]] = {}
        """One analysis sees one state of the file system: each path is asked once."""

    @property
    def observations(self) -> list[Observation]:
        return [Observation(what, path, value) for (what, path), value in self._seen.items()]

    def _note(self, what: str, path: str, value: str) -> None:
        self._seen.setdefault((what, path), value)

    # ---- the questions analysis asks ------------------------------------------

    def read_bytes(self, path: Path) -> bytes:
        key = os.fspath(path)
        st = os.stat(key)
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        if len(data) == st.st_size:
            self.stat_cache.remember(key, st, xxhash.xxh3_128_hexdigest(data), sha)
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

    def listdir(self, path: Path) -> list[tuple[str, str]]:
        key = os.fspath(path)
        entries = self._listings.get(key)
        if entries is None:
            entries = self._listings[key] = list_dir(key)
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


def changed(observations: list[Observation], stat_cache: StatCache) -> Observation | None:
    """The first observation that no longer holds, or None if all still do."""
    for obs in observations:
        if obs.what == "file":
            try:
                now = stat_cache.digest(obs.path).sha256
            except OSError:
                now = MISSING
        elif obs.what == "kind":
            now = path_kind(obs.path)
        elif obs.what == "env":
            value = os.environ.get(obs.path)
            now = MISSING if value is None else "=" + value
        else:
            now = _listing_digest(list_dir(obs.path))
        if now != obs.value:
            return obs
    return None
