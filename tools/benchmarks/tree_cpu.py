"""CPU time of a command and of every process under it, waited for or not.

getrusage(RUSAGE_CHILDREN) counts a process only once its parent has waited
for it, and the whole chain up to us. strata's worker runs under bubblewrap,
and its CPU never reached our counters that way: a cold build that kept
both cores busy for 15 s was reported as 8 s of CPU, while a cgroup around
the same command counted 29 s. So each measured command runs in a cgroup
of its own (cgroup v2's `cpu.stat`, which needs no controller, or v1's
`cpuacct`), created under ours and removed after, and its CPU is the
cgroup's. Where no cgroup can be made (not root, no cgroup file system),
RUSAGE_CHILDREN is all there is, and `TreeCpu.exact` says so.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import resource
import time
from pathlib import Path

_COUNTER = itertools.count()
_LEFT: list[Path] = []
"""Cgroups a daemon kept (a Bazel server outlives the `bazel info` that started it)."""


@atexit.register
def _remove_left() -> None:
    deadline = time.monotonic() + 5
    for d in _LEFT:
        while time.monotonic() < deadline:
            try:
                d.rmdir()
                break
            except OSError:  # the daemon still ending
                time.sleep(0.05)


def children_cpu() -> float:
    """User + system seconds of the processes we (and they, all the way down) waited for."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _v2_dir() -> Path | None:
    """Our own cgroup in the cgroup2 hierarchy, if one is mounted."""
    mount = None
    with contextlib.suppress(OSError), open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and fields[2] == "cgroup2":
                mount = Path(fields[1])
                break
    if mount is None:
        return None
    with contextlib.suppress(OSError), open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return mount / line[3:].strip().lstrip("/")
    return None


def _v1_dir() -> Path | None:
    root = Path("/sys/fs/cgroup/cpuacct")
    return root if (root / "cpuacct.usage").exists() else None


class TreeCpu:
    """One command's CPU: `enter` in the child before it runs, `seconds()` after it ends."""

    def __init__(self) -> None:
        self.exact = False
        self._dir: Path | None = None
        self._read = children_cpu
        self._start = children_cpu()
        name = f"strata-bench-{os.getpid()}-{next(_COUNTER)}"
        for parent, counter in ((_v2_dir(), self._v2_usage), (_v1_dir(), self._v1_usage)):
            if parent is None:
                continue
            try:
                (parent / name).mkdir()
            except OSError:
                continue
            self._dir, self._read, self.exact = parent / name, counter, True
            self._start = 0.0
            break

    def enter(self) -> None:
        """Called in the child between fork and exec: move it into the cgroup."""
        if self._dir is not None:
            (self._dir / "cgroup.procs").write_text(str(os.getpid()))

    def seconds(self) -> float:
        """CPU seconds since the command started; the cgroup is removed (once empty)."""
        used = self._read() - self._start
        if self._dir is not None:
            try:
                self._dir.rmdir()
            except OSError:  # a daemon left in it (a Bazel server): removed at exit
                _LEFT.append(self._dir)
        return used

    def _v2_usage(self) -> float:
        assert self._dir is not None
        for line in (self._dir / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
        return 0.0

    def _v1_usage(self) -> float:
        assert self._dir is not None
        return int((self._dir / "cpuacct.usage").read_text()) / 1e9


def how_measured() -> str:
    """One line for a benchmark's output: what its CPU figures count here."""
    probe = TreeCpu()
    probe.seconds()
    if probe.exact:
        return "cpu: every process of each command, from a cgroup of its own"
    return (
        "cpu: only the processes each command waited for (no cgroup could be made here; "
        "strata's sandboxed worker is not counted): run as root for whole figures"
    )
