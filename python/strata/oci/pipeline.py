"""Overlap reading with hashing, compressing and writing.

The tar writer spends its time in `read` and header building; the sink chain
(sha256 → compressor → sha256 → file) in hashing and writing. hashlib, ISA-L,
zstd and file writes all release the GIL, so running the sink chain on one
background thread lets the two halves use two cores. The queue is bounded,
so memory stays flat (a few MiB) whatever the layer size.
"""

from __future__ import annotations

import queue
import threading
from types import TracebackType

from strata.oci.tarwriter import Sink

_DEPTH = 8
_STOP = None


class BackgroundSink:
    """A `Sink` that hands writes to `sink` on a worker thread; `close()` waits for it."""

    def __init__(self, sink: Sink, depth: int = _DEPTH) -> None:
        self._sink = sink
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="strata-sink", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            data = self._queue.get()
            if data is _STOP:
                return
            if self._error is None:
                try:
                    self._sink.write(data)
                except BaseException as e:  # handed back to the writer in write()/close()
                    self._error = e

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        if self._error is not None:
            self._raise()
        # Copy anything mutable: the caller may reuse its buffer after we return.
        self._queue.put(data if isinstance(data, bytes) else bytes(data))
        return len(data)

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        if self._error is not None:
            self._raise()

    def _raise(self) -> None:
        error, self._error = self._error, None
        assert error is not None
        raise error

    def __enter__(self) -> BackgroundSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
