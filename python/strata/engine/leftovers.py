"""What an engine that did not finish left behind: sandboxes, and the processes in them.

An engine stopped by SIGTERM or Ctrl-C kills its running actions and removes
their sandboxes itself (the CLI turns the signal into an exception that runs
the scheduler's clean-up). One killed outright (`kill -9`, the OOM killer, a
crash) cannot: in the directory sandbox its actions run on, each the leader
of its own session, and their sandboxes stay in the output base. (In the
namespace sandbox bubblewrap's `--die-with-parent` ends them with the engine;
the worker kills its children when the engine's end of its socket closes.)

So each process action records `<sandbox>/pid` (its pid and start time),
and the next command that takes the output base's lock, which no live engine
holds, stops every process still in such a session and removes every
sandbox, except those `--verbose_failures` kept on purpose (`<sandbox>/kept`).
The start time (`/proc/<pid>/stat`, field 22) tells a leftover session from
a new one that reuses the pid.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

PID_FILE = "pid"
KEPT_FILE = "kept"
WORKER_TMP = "worker-tmp"
"""The `/tmp` of strata's action worker (strata.engine.execution.sandbox), beside the sandboxes: it
outlives every build that started a worker, so it is emptied, not counted as left behind."""


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (field 3 is index 0), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def record(sandbox: Path, pid: int) -> None:
    """Note the action process `pid` (a session leader) running in `sandbox`."""
    (sandbox / PID_FILE).write_text(f"{pid} {start_time(pid) or 0}\n")


def mark_kept(sandbox: Path) -> None:
    """A sandbox kept for the user to look at (`--verbose_failures`): never cleaned up."""
    with contextlib.suppress(OSError):
        (sandbox / KEPT_FILE).write_text("kept by --verbose_failures\n")


def _session(leader: int, started: int) -> list[int]:
    """Processes of the session `leader` started at `started`, if it is still that session.

    A live leader must have the recorded start time; a session whose leader
    has exited is still ours if every member started after it (a reused pid
    would be a live leader with another start time)."""
    leader_start = start_time(leader)
    if leader_start is not None and leader_start != started:
        return []  # the pid belongs to another process now
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if not fields or len(fields) <= 19 or fields[0] == "Z":  # a zombie is dead already
            continue
        if int(fields[3]) == leader and int(fields[19]) >= started:
            members.append(int(entry.name))
    return members


@dataclass(frozen=True)
class Cleaned:
    sandboxes: int
    processes: int


def clean_up(sandbox_root: Path) -> Cleaned:
    """Stop the processes of, and remove, every sandbox a dead engine left in `sandbox_root`.

    Call only while holding the output base's lock."""
    sandboxes = processes = 0
    try:
        entries = list(os.scandir(sandbox_root))
    except FileNotFoundError:
        return Cleaned(0, 0)
    for entry in entries:
        path = Path(entry.path)
        if not entry.is_dir(follow_symlinks=False) or (path / KEPT_FILE).exists():
            continue
        if entry.name == WORKER_TMP:
            _remove(path)  # a finished build leaves it too: nothing to report
            continue
        with contextlib.suppress(OSError, ValueError):
            pid, started = (int(x) for x in (path / PID_FILE).read_text().split())
            for member in _session(pid, started):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(member, signal.SIGKILL)
                    processes += 1
        _remove(path)
        sandboxes += 1
    return Cleaned(sandboxes, processes)


def _remove(path: Path) -> None:
    """rmtree, making read-only directories (an action's, or outputs) writable on the way."""

    def retry(func: object, name: str, _exc: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(name), 0o755)
            if callable(func):
                func(name)

    shutil.rmtree(path, onerror=retry)
