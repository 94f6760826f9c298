"""What every group of the bad-input suite checks, in one place.

A case ends in one of two ways, and these helpers say which:

- `one_error`: exit 1 (2 for a command-line mistake, as Bazel), no traceback,
  exactly one `error:` line, matching the
  case's regex (which names the place: file:line, label, request or flag);
  `action_error` for a mistake only an action can see: the engine's one line
  naming the label and the action, and the action's own one line;
- `recovered`: exit 0, no traceback, exactly the warnings the case expects
  (each matching its regex); the caller then compares the outputs' bytes with
  a clean build's.

Every call runs under a deadline (in-process: SIGALRM; a process: a timeout
and a kill of its process group), so a hang fails its case instead of CI.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from strata.cli import main

ROOT = Path(__file__).resolve().parent.parent
DEADLINE = 120.0
"""Seconds a case may block before it counts as a hang (a bound, never a speed check)."""


@contextlib.contextmanager
def deadline(seconds: float = DEADLINE) -> Iterator[None]:
    """Fail (instead of stalling CI) when the body blocks longer than `seconds`."""

    def expired(_signum: int, _frame: FrameType | None) -> None:
        raise TimeoutError(f"no answer within {seconds} s: a hang")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def strata(
    argv: list[str],
    cwd: Path,
    capsys: pytest.CaptureFixture[str] | None = None,
    *,
    seconds: float = DEADLINE,
) -> tuple[int, str]:
    """`strata ARGV` in this process, in `cwd`: (exit status, stderr).

    Without `capsys` (in a module fixture), stderr is caught here instead.
    """
    if capsys is not None:
        capsys.readouterr()
    old = os.getcwd()
    os.chdir(cwd)
    caught = io.StringIO()
    redirect = contextlib.redirect_stderr(caught) if capsys is None else contextlib.nullcontext()
    try:
        with deadline(seconds), redirect:
            rc = main(argv)
    finally:
        os.chdir(old)
    return rc, caught.getvalue() if capsys is None else capsys.readouterr().err


def strata_env(**extra: str) -> dict[str, str]:
    """The environment for `python -m strata` as its own process, with this checkout."""
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "python"), os.environ.get("PYTHONPATH", "")) if p
    )
    return env


def start_strata(argv: list[str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    """`python -m strata ARGV` as its own process group, stderr and stdout to `log`."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "strata", *argv],
            cwd=cwd,
            env=strata_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait(proc: subprocess.Popen[bytes], seconds: float = DEADLINE) -> int:
    """Its exit status; a process still running after `seconds` is killed: a hang."""
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        stop(proc)
        raise TimeoutError(f"{proc.args!r} still running after {seconds} s: a hang") from None


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill the process group we started (the engine and whatever it left running)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def no_traceback(err: str) -> None:
    assert "Traceback" not in err and "please report" not in err, err


def one_error(rc: int, err: str, pattern: str, status: int = 1) -> None:
    """Exit `status` (2, Bazel's, for a command-line mistake), one matching error line."""
    no_traceback(err)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert rc == status, err
    assert len(errors) == 1, err
    assert re.match(pattern, errors[0]), f"{errors[0]!r} !~ {pattern!r}"


def action_error(rc: int, err: str, label: str, mnemonic: str, pattern: str) -> None:
    """An execution-time mistake: exit 1, the engine's one line naming the label and the
    action, then the action's own output, whose one `error:` line matches `pattern`."""
    no_traceback(err)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert rc == 1, err
    assert len(errors) == 2, err
    assert errors[0].startswith(f"error: {label}: {mnemonic} failed with exit status 1 "), err
    assert errors[0].endswith("see the action's output below"), err
    assert re.match(pattern, errors[1]), f"{errors[1]!r} !~ {pattern!r}"


def recovered(rc: int, err: str, warnings: list[str]) -> None:
    """Exit 0 with exactly one warning line per regex of `warnings`, in that order."""
    no_traceback(err)
    assert rc == 0, err
    got = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(got) == len(warnings), err
    for line, pattern in zip(got, warnings, strict=True):
        assert re.match(pattern, line), f"{line!r} !~ {pattern!r}"


def no_files_under(top: Path) -> None:
    left = [p for p in top.rglob("*") if not p.is_dir()] if top.exists() else []
    assert not left, left


def tree_bytes(top: Path) -> dict[str, bytes | str]:
    """Every file's bytes and every symlink's target below `top`, by relative path."""
    out: dict[str, bytes | str] = {}
    for p in sorted(top.rglob("*")):
        rel = str(p.relative_to(top))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = p.read_bytes()
    return out
