"""Bad-input cases run as a user runs strata: a real process, its exit status and stderr.

A case passes when strata ends as the project promises for bad input: exit
status 1, exactly one `error:` line that names the place and says how to fix
it, no traceback, no hang (a timeout fails the case), and none of the
outputs the build was asked for left half-written. Running the CLI as its
own process is what lets a case see a crash (exit 2, or a signal such as
SIGSEGV) and a hang as failures rather than as the end of the test run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PYTHON_DIR = Path(__file__).resolve().parent.parent / "python"
TIMEOUT = 180.0
"""Seconds a case may take before it counts as a hang (a bound, never a speed check)."""


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str

    @property
    def errors(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("error: ")]

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("warning: ")]


def strata(
    cwd: Path,
    *args: str | os.PathLike[str],
    env: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> Outcome:
    """`python -m strata ARGS` in `cwd` with this checkout's sources."""
    environ = {**os.environ, **(env or {})}
    environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PYTHON_DIR), environ.get("PYTHONPATH", "")) if p
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "strata", *map(str, args)],
            cwd=cwd,
            env=environ,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise AssertionError(
            f"strata {args} hung (no answer in {timeout} s): {e.stderr!r}"
        ) from None
    return Outcome(
        proc.returncode,
        proc.stdout.decode(errors="replace"),
        proc.stderr.decode(errors="replace"),
    )


def assert_one_error(outcome: Outcome, pattern: str) -> str:
    """Exit 1 and exactly one `error:` line matching `pattern` (a regex); returns the line."""
    assert "Traceback" not in outcome.err, outcome.err
    assert outcome.code == 1, f"exit {outcome.code}\n{outcome.err}"
    assert len(outcome.errors) == 1, outcome.err
    line = outcome.errors[0]
    assert re.search(pattern, line), f"{pattern!r} not in {line!r}"
    assert len(line) < 2000, f"an error line of {len(line)} characters"
    return line


def workspace(root: Path, files: dict[str, str | bytes]) -> Path:
    """A workspace at `root` holding `files` (relative path → content); WORKSPACE by default."""
    root.mkdir(parents=True, exist_ok=True)
    if "WORKSPACE" not in files:
        (root / "WORKSPACE").write_text('workspace(name = "w")\n')
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def files_under(top: Path) -> list[str]:
    """Every file and link under `top` (relative, sorted): what a failed build must not add."""
    if not top.exists():
        return []
    return sorted(
        p.relative_to(top).as_posix() for p in top.rglob("*") if p.is_symlink() or not p.is_dir()
    )
