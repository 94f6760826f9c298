"""Digests of source inputs for action keys, taken ahead of the scheduler on threads.

An action's key needs the sha256 of every source it reads. Taken when the
scheduler reaches the action, on its one thread, a 1.7 GB closure was read
file after file while the actions that could run waited. Instead the build
hands this pool the sources of each action, in the order the scheduler will
reach them (small actions batched into one task), as soon as it knows the
order: the threads read and hash (hashlib and file reads release the GIL)
while earlier actions run, and the scheduler takes each action's digests
when it gets there, usually already done.

One thread walks the sources and stats them; only the files the stat cache
does not vouch for go on to the hashing threads. On a no-op each source costs
one `stat` on that one thread: two threads each running a short Python loop
around a short syscall spent more time handing the GIL to each other (30,000
futex calls for a 58,000-file closure) than stating.

Each source is digested once a build, in the task of the first action that
lists it; the stat cache (strata.engine.digests) still decides whether a
file must be read at all.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from strata.engine.action import Action
from strata.engine.digests import NotAFile, StatCache, tree_digest, tree_listing
from strata.errors import UserError, shorten


def source_digest(real: str | Path, stat_cache: StatCache) -> str:
    """sha256 of a source file, or the tree digest of a source directory; OSError if missing.

    An unchanged file costs one `stat` (a no-op's main cost: one per source).
    """
    key = os.fspath(real)
    st = os.stat(key)
    if stat.S_ISDIR(st.st_mode):
        return tree_digest(tree_listing(Path(key), stat_cache))
    return stat_cache.sha256(key, st)


def action_source_digest(action: Action, path: str, real: Path, stat_cache: StatCache) -> str:
    """`source_digest` of `action`'s source `path` (at `real`); why it cannot be had is the
    action's UserError."""
    try:
        return source_digest(real, stat_cache)
    except NotAFile as e:
        inside = os.path.relpath(e.path, real) if e.path != os.fspath(real) else ""
        got = f"{path}/{inside}" if inside else path
        raise UserError(
            f"{action.mnemonic} has a source that is {e.kind}, not a regular file "
            f"(got {shorten(got)}); only regular files, directories and symlinks "
            "to them are read: replace it with a file or remove it from the inputs",
            where=action.owner,
        ) from None
    except (FileNotFoundError, NotADirectoryError):
        raise UserError(
            f"{action.mnemonic} needs a source file that does not exist "
            f"(got {shorten(path)}); create it or remove it from the rule's inputs",
            where=action.owner,
        ) from None
    except OSError as e:
        raise UserError(
            f"{action.mnemonic} cannot read a source file (got {shorten(path)}: "
            f"{e.strerror or e}); make it a readable file with a shorter path",
            where=action.owner,
        ) from None


_Result = dict[str, str | None]
_Hashing = list[Future[_Result]]
_HASH_FILES = 256
_HASH_BYTES = 32 << 20
"""A batch for the hashing threads ends at this many files or bytes: a future per file cost
more than the stat that found it changed, and one per action kept one thread busy."""
_QUEUED = 8
"""Batches waiting for the hashing threads at most: the walk is far quicker than hashing,
and queueing a cold closure's 58,000 stats at once held 20 MB more."""


class SourceDigests:
    def __init__(
        self,
        stat_cache: StatCache,
        source_path: Callable[[str], Path],
        threads: int,
        on_change: Callable[[], object] | None = None,
    ) -> None:
        self.stat_cache = stat_cache
        self._on_change = on_change
        """Called once, on the walking thread, when the first source is not as the stat cache
        remembers it: something will likely run (the build starts its worker then)."""
        self.source_path = source_path
        self._walker = ThreadPoolExecutor(1, thread_name_prefix="sources")
        self._hashers = ThreadPoolExecutor(max(1, threads), thread_name_prefix="hash")
        self._tasks: dict[int, Future[tuple[_Result, _Hashing]]] = {}
        self._taken: set[Future[tuple[_Result, _Hashing]]] = set()
        self._room = threading.Semaphore(_QUEUED)
        self._closed = False
        self._dirs: dict[str, str] = {}
        """Source directory (execroot path) -> where it is: a closure has 58,000 sources in
        3,000 directories, and making a Path per file cost as much as its stat."""

    def real_path(self, path: str) -> str:
        """Where source `path` (an execroot path) is on disk."""
        head, _, name = path.rpartition("/")
        root = self._dirs.get(head)
        if root is None:
            root = self._dirs[head] = os.fspath(self.source_path(head))
        return f"{root}/{name}"

    def submit(self, indexes: Sequence[int], paths: Sequence[str]) -> None:
        """Start digesting `paths` (execroot paths of sources), those of actions `indexes`."""
        task = self._walker.submit(self._walk, paths)
        for index in indexes:
            self._tasks[index] = task

    def take(self, index: int) -> _Result:
        """The digests (None: the source is missing) of the task holding action `index`'s
        sources, by path; {} if none were asked, or another action of it took them."""
        task = self._tasks.pop(index, None)
        if task is None or task in self._taken:
            return {}
        self._taken.add(task)
        out, hashing = task.result()
        for batch in hashing:
            out.update(batch.result())
        return out

    def _walk(self, paths: Sequence[str]) -> tuple[_Result, _Hashing]:
        """Stat `paths`: the digests the stat cache vouches for, and the batches being hashed."""
        out: _Result = {}
        hashing: _Hashing = []
        misses: list[tuple[str, str, os.stat_result]] = []
        pending = 0
        stat_cache, real_path = self.stat_cache, self.real_path
        for path in paths:
            if self._closed:  # the build stopped: don't make it wait for the rest
                break
            real = real_path(path)
            try:
                st = os.stat(real)
                if stat.S_ISDIR(st.st_mode):
                    # its files may be among those being hashed: let them land in the stat
                    # cache first, so that none is read twice
                    if misses:
                        hashing.append(self._queue(misses))
                        misses, pending = [], 0
                    for batch in hashing:
                        batch.exception()
                    out[path] = tree_digest(tree_listing(Path(real), stat_cache))
                    continue
            except OSError:
                out[path] = None
                continue
            known = stat_cache.unchanged_sha256(real, st)
            if known is not None:
                out[path] = known
                continue
            misses.append((path, real, st))
            if self._on_change is not None:
                on_change, self._on_change = self._on_change, None
                on_change()
            pending += st.st_size
            if len(misses) >= _HASH_FILES or pending >= _HASH_BYTES:
                hashing.append(self._queue(misses))
                misses, pending = [], 0
        if misses:
            hashing.append(self._queue(misses))
        return out, hashing

    def _queue(self, files: list[tuple[str, str, os.stat_result]]) -> Future[_Result]:
        self._room.acquire()  # released when the batch is done: the threads always progress
        return self._hashers.submit(self._hash, files)

    def _hash(self, files: list[tuple[str, str, os.stat_result]]) -> _Result:
        out: _Result = {}
        sha256 = self.stat_cache.sha256
        try:
            for path, real, st in files:
                if self._closed:
                    break
                try:
                    out[path] = sha256(real, st)
                except OSError:
                    out[path] = None
        finally:
            self._room.release()
        return out

    def close(self) -> None:
        """Stop, and wait for the threads (the stat cache is saved after this)."""
        self._closed = True
        self._walker.shutdown(wait=True, cancel_futures=True)
        self._hashers.shutdown(wait=True, cancel_futures=True)
        self._tasks.clear()
        self._taken.clear()


_BATCH = 64
"""Sources per task of the digest threads: actions with fewer are batched until they
reach it (one task per action cost more than a no-op's stats for small ones); one
with more has a task of its own, so no small action waits for a large one's hashing."""


def digest_ahead(
    sources_of: Callable[[int], Sequence[str]],
    order: Iterable[int],
    seen: set[str],
    sources: SourceDigests,
) -> SourceDigests:
    """Hand every action's sources (but those `seen`) to `sources`' threads, in the order
    the scheduler will need them; returns `sources`."""
    visited: set[int] = set()
    batch: list[int] = []
    paths: list[str] = []
    for i in order:
        if i in visited:
            continue
        visited.add(i)
        todo = [p for p in sources_of(i) if p not in seen]
        if not todo:
            continue
        seen.update(todo)
        if len(todo) >= _BATCH:  # a large action gets a task of its own
            if paths:
                sources.submit(batch, paths)
                batch, paths = [], []
            sources.submit([i], todo)
            continue
        batch.append(i)
        paths.extend(todo)
        if len(paths) >= _BATCH:
            sources.submit(batch, paths)
            batch, paths = [], []
    if paths:
        sources.submit(batch, paths)
    return sources
