"""The README's first command builds the hello example with strata and runs it in Docker."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from realtools import need, unavailable

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.realtool
@pytest.mark.slow
def test_readme_first_command_builds_and_runs_hello() -> None:
    need("gcc")
    need("dockerd")
    if os.geteuid() != 0:
        unavailable("tools/example starts a private dockerd, which needs root")
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"  # force the private daemon path
    proc = subprocess.run(
        [str(ROOT / "tools" / "example")], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == "Hello from a strata image!\n"
    assert "Loaded image: examples/hello/hello:latest" in proc.stderr


def test_unknown_example_is_a_one_line_error() -> None:
    proc = subprocess.run(
        [str(ROOT / "tools" / "example"), "no-such-example"], capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert proc.stderr == (
        "error: tools/example: no example 'no-such-example' "
        "(got examples/no-such-example/BUILD missing); see examples/\n"
    )
