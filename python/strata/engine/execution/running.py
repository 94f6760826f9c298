"""A started action, its end, and the words for its failure.

`Running` is an action's process (its own, or a preloaded worker's) with where
it runs; `Finished` is its result and output; `ActionFailed` is the error of an
action that exited non-zero or could not start, saying where to look.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from strata.engine.action import Action
from strata.engine.cache import ActionResult
from strata.engine.execution.workers import WorkerProcess
from strata.errors import UserError, shorten


class ActionFailed(UserError):
    """An action exited non-zero; the message carries its command and stderr."""

    def __init__(self, action: Action, message: str, stderr: str) -> None:
        self.action = action
        self.stderr = stderr
        tail = f"\n{stderr.rstrip()}" if stderr.strip() else ""
        super().__init__(message + tail, where=action.owner)


@dataclass(frozen=True)
class Running:
    action: Action
    process: subprocess.Popen[bytes] | WorkerProcess
    sandbox: Path | None
    """The action's own directory; None when it runs in place, in the real execroot."""
    execroot: Path
    """Its working directory, where it writes its outputs."""

    def pidfd(self) -> int:
        """A pidfd that becomes readable when the action's process exits (the caller closes it)."""
        if isinstance(self.process, WorkerProcess):
            return self.process.pidfd
        return os.pidfd_open(self.process.pid)

    def kill(self) -> None:
        if isinstance(self.process, WorkerProcess):
            self.process.kill()
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


@dataclass(frozen=True)
class Finished:
    result: ActionResult
    output: str
    """What the process printed (stdout then stderr), for the reporter."""
    in_worker: bool = False
    maxrss_kib: int = 0
    """Peak RSS of the action's process, where known (worker-run actions)."""


def action_env(action: Action) -> dict[str, str]:
    """Exactly what the action declares: as under Bazel, no PATH unless it sets one
    (a shell then uses its own default, and a bare command is looked up in `os.defpath`)."""
    return dict(action.env)


def can_exec(tool: str, execroot: Path, path: str) -> bool:
    if "/" in tool:
        return os.access(execroot / tool, os.X_OK) and (execroot / tool).is_file()
    return bool(tool) and shutil.which(tool, path=path) is not None


def could_not_start(action: Action, code: int) -> ActionFailed:
    command = shlex.join(action.argv)
    fix = "declare the tool as an input and check its path and executable bit"
    if code == errno.E2BIG:
        size = len(command) + sum(len(k) + len(v) + 2 for k, v in action.env)
        fix = (
            f"the kernel takes at most 128 KiB an argument and about 2 MiB in all (this one "
            f"is {size} bytes): pass long lists in a file, e.g. args.use_param_file()"
        )
    return ActionFailed(
        action,
        f"{action.mnemonic} could not start (got {os.strerror(code)}: {shorten(command)}); {fix}",
        "",
    )


def is_tool(path: str, tool: str) -> bool:
    """The worker's launcher or one of its runfiles: the worker already runs them."""
    return path == tool or path.startswith(tool + ".runfiles/")


def where_to_look(output: str, sandbox: Path) -> str:
    """The end of a failed action's error: its output follows, or why there is none."""
    if output.strip():
        return "see the action's output below"
    with contextlib.suppress(OSError):
        st = os.statvfs(sandbox)
        if st.f_bavail * st.f_frsize < (1 << 20):
            return (
                "it printed nothing, and the output base's file system is full: free some "
                "space and build again"
            )
    return "it printed nothing: run it by hand, or with --verbose_failures to keep its sandbox"
