"""Digests of fresh outputs, without reading their bytes on the engine's thread.

Every output file is hashed once (xxh3-128 for the stat cache, sha256 for
the cache protocol). For each file the engine takes the first of:

1. what the worker child reported (strata.worker hashes the outputs of the
   action it ran, in that process), believed only if the file still has the
   size, mtime and inode the child hashed;
2. an inode already hashed in this build, with the same size and mtime:
   outputs are read-only and replaced, never changed in place, so a hard link
   to another output (a layer's blob in an OCI layout, a path's own layer in
   `LayerGroups`: fsutil.share_output) holds the bytes that output was hashed
   with. Outputs an earlier build left up to date count too: the stat cache
   remembers their digests, and they are looked up (`defer`) only when a
   linked file comes that nothing else vouches for, so a no-op pays nothing;
3. reading it, on a pool of threads when there are several (hashlib releases
   the GIL while it hashes, and so does reading; xxh3 is ~30x faster than
   sha256 and does not matter).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from strata.engine.digests import xxh3_and_sha256_file
from strata.engine.execution.workers import ReportedDigest


@dataclass(frozen=True)
class Pending:
    """One output file to digest: where it is now, its stat, and the child's report if any."""

    path: str
    stat: os.stat_result
    reported: ReportedDigest | None = None


Recall = Callable[[str], tuple[os.stat_result, str, str] | None]
"""(stat, xxh3, sha256) the stat cache remembers for an output path, if still current."""


class OutputDigests:
    def __init__(self, threads: int, recall: Recall) -> None:
        self.threads = max(1, threads)
        self._recall = recall
        self._deferred: list[Callable[[], Iterable[str]]] = []
        """Up-to-date actions' output files, not yet looked up (see `defer`)."""
        self._pool: ThreadPoolExecutor | None = None
        self._by_inode: dict[tuple[int, int], tuple[int, int, str, str]] = {}
        """(st_dev, st_ino) -> (size, mtime_ns, xxh3, sha256) of outputs digested this build."""
        self.read = 0
        """How many output files the engine had to read itself (the rest it was told)."""

    def learn(self, st: os.stat_result, xxh3: str, sha256: str) -> None:
        """Note the digests of an output file (one just digested, or a cache hit)."""
        self._by_inode[(st.st_dev, st.st_ino)] = (st.st_size, st.st_mtime_ns, xxh3, sha256)

    def defer(self, paths: Callable[[], Iterable[str]]) -> None:
        """Output files an earlier build left in place (listed when needed), to learn if a
        new output links one."""
        self._deferred.append(paths)

    def _learn_deferred(self) -> None:
        deferred, self._deferred = self._deferred, []
        for paths in deferred:
            for path in paths():
                known = self._recall(path)
                if known is not None:
                    self.learn(*known)

    def _known(self, p: Pending) -> tuple[str, str] | None:
        st = p.stat
        if p.reported is not None and p.reported.matches(st):
            return p.reported.xxh3, p.reported.sha256
        if st.st_nlink > 1 and self._deferred:
            self._learn_deferred()
        known = self._by_inode.get((st.st_dev, st.st_ino))
        if known is not None and known[:2] == (st.st_size, st.st_mtime_ns):
            return known[2], known[3]
        return None

    def digest(self, files: Sequence[Pending]) -> list[tuple[str, str]]:
        """(xxh3, sha256) of each file, in order; reads only what nobody vouched for."""
        out: list[tuple[str, str] | None] = [self._known(p) for p in files]
        todo = [i for i, d in enumerate(out) if d is None]
        self.read += len(todo)
        if len(todo) > 1 and self.threads > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="hash")
            hashed = list(self._pool.map(xxh3_and_sha256_file, [files[i].path for i in todo]))
        else:
            hashed = [xxh3_and_sha256_file(files[i].path) for i in todo]
        for i, digests in zip(todo, hashed, strict=True):
            out[i] = digests
        done: list[tuple[str, str]] = []
        for p, d in zip(files, out, strict=True):
            assert d is not None
            self.learn(p.stat, *d)
            done.append(d)
        return done

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
