"""`--profile FILE`: the build's phases and actions as a JSON trace, as Bazel's flag writes.

The format is the Trace Event Format that chrome://tracing, Perfetto and
`bazel analyze-profile`'s readers take: `{"traceEvents": [...], "otherData":
{...}}`, each event a complete span (`"ph": "X"`, start `ts` and `dur` in
microseconds). Phases (analysis, execution) are on the first lane; each
action looked up in a cache (`cache_hit`, or `cache_miss` up to the moment
it starts) and each action run (`executed`, `failed`) is on the lowest lane
free when it began, so the lanes show how many ran at once. Actions the
engine found up to date, or carried out in-process, take no lookup and are
not shown.
"""

from __future__ import annotations

import contextlib
import gzip
import time
from collections.abc import Iterator
from typing import Any

from strata.canonical import json_bytes

_PID = 1


class TraceProfile:
    """Spans collected during one command; `to_bytes` gives the file."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self._events: list[dict[str, Any]] = []
        self._open: dict[int, tuple[float, int, str]] = {}
        """action id -> (start, lane, name)"""
        self._busy: set[int] = set()
        self._lanes = 0

    def _us(self, t: float) -> int:
        return int((t - self._t0) * 1_000_000)

    def _span(self, name: str, cat: str, start: float, lane: int, **args: Any) -> None:
        end = time.monotonic()
        event = {"cat": cat, "dur": max(self._us(end) - self._us(start), 1), "name": name}
        event |= {"ph": "X", "pid": _PID, "tid": lane, "ts": self._us(start)}
        if args:
            event["args"] = args
        self._events.append(event)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """A span on the first lane for the block."""
        start = time.monotonic()
        try:
            yield
        finally:
            self._span(name, "build phase", start, 0)

    def action_started(self, action_id: int, name: str) -> None:
        """An action looked up in the caches, or started; a lookup that found nothing ends
        when the action starts (`cache_miss`)."""
        if action_id in self._open:
            self.action_finished(action_id, "cache_miss")
        lane = next(i for i in range(1, self._lanes + 2) if i not in self._busy)
        self._lanes = max(self._lanes, lane)
        self._busy.add(lane)
        self._open[action_id] = (time.monotonic(), lane, name)

    def action_finished(self, action_id: int, how: str) -> None:
        """`how` as the reporter's (executed, cache_hit, in_process, failed)."""
        opened = self._open.pop(action_id, None)
        if opened is None:
            return
        start, lane, name = opened
        self._busy.discard(lane)
        self._span(name, "action", start, lane, result=how)

    def to_bytes(self, *, compress: bool) -> bytes:
        names = [{"args": {"name": "phases"}, "name": "thread_name", "ph": "M", "tid": 0}]
        names += [
            {"args": {"name": f"action {i}"}, "name": "thread_name", "ph": "M", "tid": i}
            for i in range(1, self._lanes + 1)
        ]
        for n in names:
            n["pid"] = _PID
        doc = {
            "otherData": {"producer": "strata"},
            "traceEvents": names + sorted(self._events, key=lambda e: (e["ts"], e["tid"])),
        }
        data = json_bytes(doc)
        return gzip.compress(data, mtime=0) if compress else data
