"""Starting the worker before the first strata action asks for it.

A worker's start-up (Python and strata's imports, in the namespace sandbox)
took 0.7 s, and the first action of an incremental build waited for all of
it. The build knows earlier that something will likely run: the source walk
finds a file the stat cache does not vouch for. The worker is then started,
but never before the actions that make its tool (launcher and runfiles) are
done in this build, so it never runs a tool that is about to change. A
worker started this way and not used is killed at the end of the build.

It starts on a thread of its own: started on the thread that found the
change (the source walk) or finished the tool (the scheduler), its half a
second of start-up held up that thread, and so the digests or the actions
the build was waiting for. That thread then waits until `close()` (the end
of the build): bubblewrap's `--die-with-parent` is `PR_SET_PDEATHSIG`, which
the kernel fires when the *thread* that started the process ends. A thread
that returned at once killed the worker (SIGKILL) whenever bubblewrap had
set it by then, as it did on a loaded machine: the build warned that the
worker stopped, and ran its actions as processes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class EarlyWorker:
    """Calls `start` once, on a thread of its own, when a source changed and the tool's
    producers are all done; `start` must not raise."""

    def __init__(self, start: Callable[[], object], producers: set[int]) -> None:
        self._start = start
        self._pending = set(producers)
        """Indices of the actions making the tool, not done yet in this build."""
        self._changed = False
        self._started = False
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def source_changed(self) -> None:
        """The source walk (on its own thread) found a changed or new source."""
        with self._lock:
            self._changed = True
            self._maybe_start()

    def finished(self, index: int) -> None:
        """Action `index` is done (run, cached or up to date)."""
        if index in self._pending:
            with self._lock:
                self._pending.discard(index)
                self._maybe_start()

    def _maybe_start(self) -> None:
        if self._changed and not self._pending and not self._started:
            self._started = True
            threading.Thread(target=self._run, name="worker-start", daemon=True).start()

    def _run(self) -> None:
        self._start()
        self._closed.wait()  # what this thread started lives as long as it does

    def close(self) -> None:
        """The build is over: the thread that started the worker may end."""
        self._closed.set()
