"""What holds one of the scheduler's job slots: a running action, or a cache lookup on a
thread (strata.engine.execution.scheduler).

Each is waited for through a file descriptor, so that one `select` sees whichever
ends first: a running action's pidfd, a lookup's pipe. Lookups are *handled* in the
order they were asked (`Lookups`), whatever order their downloads end in: what a
build reports (the first warning about a bad cache entry, the explain lines) must
not depend on which download was faster.
"""

from __future__ import annotations

import contextlib
import os
import selectors
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from strata.engine.cache import ActionResult, Cache, RemoteResult, ResultCheck
from strata.engine.execution.running import Running


@dataclass(frozen=True)
class Keyed:
    """An action that runs unless the cache has it: its keys, worked out once."""

    index: int
    material: dict[str, Any]
    encoded: bytes
    """Its key material, encoded (canonical JSON), for the action log."""
    key: str
    """The key the cache knows the action by (`--action_keys`)."""
    record_key: str
    """The key the action records know it by."""
    cacheable: bool


@dataclass
class Process:
    """A running action."""

    keyed: Keyed
    running: Running
    fd: int
    """Its pidfd."""

    @property
    def index(self) -> int:
        return self.keyed.index


@dataclass
class Lookup:
    """An action whose cache lookup runs on a thread; `fd` (a pipe's read end) becomes
    readable when the lookup has ended."""

    keyed: Keyed
    fd: int
    future: Future[ActionResult | RemoteResult | None]
    ended: bool = False

    @property
    def index(self) -> int:
        return self.keyed.index


Slot = Process | Lookup


def _look_up(
    cache: Cache, key: str, check: ResultCheck, done: int
) -> ActionResult | RemoteResult | None:
    """A lookup thread's work; writes to (and closes) the pipe `done` when it has ended."""
    try:
        return cache.get_action_result(key, check)
    finally:
        with contextlib.suppress(OSError):  # the build stopped and closed its end
            os.write(done, b".")
        os.close(done)


class Lookups:
    """The threads that ask a cache that may wait on a network, and the lookups asked."""

    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lookup")
        self._asked: deque[Lookup] = deque()

    def ask(self, keyed: Keyed, cache: Cache, check: ResultCheck) -> Lookup:
        read, write = os.pipe2(os.O_CLOEXEC)
        try:
            future = self._pool.submit(_look_up, cache, keyed.key, check, write)
        except BaseException:
            os.close(write)
            os.close(read)
            raise
        lookup = Lookup(keyed, read, future)
        self._asked.append(lookup)
        return lookup

    def ended(self, lookup: Lookup) -> list[Lookup]:
        """`lookup` has ended: the lookups now due, in the order they were asked (none
        while an earlier one is still under way). The caller closes each one's fd."""
        lookup.ended = True
        due = []
        while self._asked and self._asked[0].ended:
            due.append(self._asked.popleft())
        return due

    def close(self) -> None:
        """Cancel the lookups not started; one under way ends on its thread (its
        downloads are renamed into the cache whole, or not at all)."""
        for lookup in self._asked:
            lookup.future.cancel()
        self._asked.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)


def wait_any(slots: dict[int, Slot]) -> int:
    """Block until one running action exits or one lookup not yet seen ends; its fd."""
    with selectors.DefaultSelector() as sel:
        for fd, slot in slots.items():
            if not (isinstance(slot, Lookup) and slot.ended):
                sel.register(fd, selectors.EVENT_READ)
        events = sel.select()
    return events[0][0].fd
