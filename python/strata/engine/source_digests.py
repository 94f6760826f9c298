"""Digests of source inputs for action keys, taken ahead of the scheduler on threads.

An action's key needs the sha256 of every source it reads. Taken when the
scheduler reaches the action, on its one thread, a 1.7 GB closure was read
file after file while the actions that could run waited. Instead the build
hands this pool the sources of each action, in the order the scheduler will
reach them (small actions batched into one task), as soon as it knows the
order: the threads read and hash (hashlib and file reads release the GIL)
while earlier actions run, and the scheduler takes each action's digests
when it gets there, usually already done. On a no-op each source costs the
threads one `stat`.

Each source is digested once a build, in the task of the first action that
lists it; the stat cache (strata.engine.digests) still decides whether a
file must be read at all.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from strata.engine.digests import StatCache, tree_digest, tree_listing


def source_digest(real: str | Path, stat_cache: StatCache) -> str:
    """sha256 of a source file, or the tree digest of a source directory; OSError if missing.

    An unchanged file costs one `stat` (a no-op's main cost: one per source).
    """
    key = os.fspath(real)
    st = os.stat(key)
    if stat.S_ISDIR(st.st_mode):
        return tree_digest(tree_listing(Path(key), stat_cache))
    return stat_cache.sha256(key, st)


class SourceDigests:
    def __init__(
        self, stat_cache: StatCache, source_path: Callable[[str], Path], threads: int
    ) -> None:
        self.stat_cache = stat_cache
        self.source_path = source_path
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="sources")
        self._tasks: dict[int, Future[dict[str, str | None]]] = {}
        self._taken: set[Future[dict[str, str | None]]] = set()
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
        task = self._pool.submit(self._digest_all, paths)
        for index in indexes:
            self._tasks[index] = task

    def take(self, index: int) -> dict[str, str | None]:
        """The digests (None: the source is missing) of the task holding action `index`'s
        sources, by path; {} if none were asked, or another action of it took them."""
        task = self._tasks.pop(index, None)
        if task is None or task in self._taken:
            return {}
        self._taken.add(task)
        return task.result()

    def _digest_all(self, paths: Sequence[str]) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        stat_cache, real_path = self.stat_cache, self.real_path
        for path in paths:
            if self._closed:  # the build stopped: don't make it wait for the rest
                break
            try:
                out[path] = source_digest(real_path(path), stat_cache)
            except OSError:
                out[path] = None
        return out

    def close(self) -> None:
        """Stop, and wait for the threads (the stat cache is saved after this)."""
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._tasks.clear()
        self._taken.clear()
