"""A build stopped half-way: SIGTERM, Ctrl-C (SIGINT) and kill -9.

Stopped by SIGTERM or SIGINT, the engine kills its running actions (a genrule
and everything it started; a strata action in the worker) and removes their
sandboxes before it exits with 128 + the signal and one error line. Killed
outright, it cannot: in the directory sandbox its actions run on (in the
namespace sandbox bubblewrap ends them), and the next build stops them and
removes what they left. Each action here runs `sleep` with a marker of its
own, so the test finds exactly its processes in /proc, whichever pid
namespace they run in.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from casekit import PYTHON_DIR, Outcome, assert_one_error, strata, workspace
from realtools import need
from strata.engine import leftovers
from strata.engine.leftovers import WORKER_TMP

BOUND = 120.0
"""Seconds to wait for something that should take well under one (a bound, not a check)."""


def marked(marker: str, program: bytes = b"") -> list[int]:
    """Live processes whose command line holds `marker` (a zombie's is empty), and
    whose command is `program`, if given."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmdline = Path(entry.path, "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline and cmdline.startswith(program):
                found.append(int(entry.name))
    return found


def running(marker: str) -> bool:
    """The action's own `sleep` runs (not just a sandbox that will start it)."""
    return bool(marked(marker, b"sleep\0"))


def sandboxes(tmp: Path) -> list[Path]:
    """The action sandboxes in the output base (the worker's shared /tmp is not one)."""
    return [p for p in (tmp / "ob" / "sandbox").glob("*") if p.name != "worker-tmp"]


def wait_for(what: str, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + BOUND
    while not ready():
        assert time.monotonic() < deadline, f"no {what} after {BOUND} s"
        time.sleep(0.05)


def sleeper() -> str:
    """A `sleep` argument unique to this test: 86400.<random digits> seconds."""
    return f"86400.{uuid.uuid4().int % 10**12:012d}"


def start(cwd: Path, argv: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(PYTHON_DIR)}
    return subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def finish(proc: subprocess.Popen[bytes]) -> Outcome:
    _out, err = proc.communicate(timeout=BOUND)
    return Outcome(proc.returncode, "", err.decode(errors="replace"))


def genrule_build(tmp: Path, marker: str) -> tuple[Path, list[str]]:
    # a child in the background and a `wait`: killing the shell alone would orphan it
    build = (
        f'genrule(name = "slow", srcs = ["in.txt"], outs = ["o"], '
        f'cmd = "sleep {marker} & wait; cp $< $@")\n'
    )
    ws = workspace(tmp / "ws", {"p/BUILD": build, "p/in.txt": "source\n"})
    return ws, [sys.executable, "-m", "strata", "build", f"--output_base={tmp / 'ob'}"]


def worker_build(tmp: Path, marker: str) -> tuple[Path, list[str]]:
    """A strata action (CustomizationLayer, whose extra_commands sleep) run in the worker."""
    need("fakeroot")
    ws = workspace(tmp / "ws", {})
    req = {
        "compressor": "none",
        "contents": [],
        "descriptor": "bazel-out/k8-fastbuild/bin/c.json",
        "extra_commands": f"sleep {marker} & wait",
        "output": "bazel-out/k8-fastbuild/bin/c.tar",
        "schema_version": 1,
    }
    (ws / "c.json").write_text(json.dumps(req, sort_keys=True))
    driver = (
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from pathlib import Path\n"
        "from enginekit import BIN, TOOL, TOOL_INPUTS, Engine, tool_actions\n"
        "from strata.engine.action import Action\n"
        "a = Action(owner='//img:c', mnemonic='CustomizationLayer', progress_message='',\n"
        "    argv=(TOOL, 'action', 'CustomizationLayer', '@c.json'),\n"
        "    env=(('PATH', '/bin:/usr/bin'),),\n"
        "    inputs=(*TOOL_INPUTS, 'c.json'),\n"
        "    outputs=(f'{BIN}/c.json', f'{BIN}/c.tar'))\n"
        f"eng = Engine(Path({str(ws)!r}), Path({str(tmp / 'ob')!r}))\n"
        "from strata.cli import Stopped\n"
        "import signal\n"
        "from strata import cli\n"
        "for s in (signal.SIGTERM, signal.SIGINT):\n"
        "    signal.signal(s, cli._stop)\n"
        "try:\n"
        "    eng.build([*tool_actions(), a], workers=True, sandbox=sys.argv[1])\n"
        "except Stopped as e:\n"
        "    print('error: stopped', file=sys.stderr)\n"
        "    sys.exit(128 + e.signum)\n"
    )
    return ws, [sys.executable, "-c", driver]


BUILDS = {"genrule": genrule_build, "strata action in the worker": worker_build}


@pytest.mark.parametrize("sandbox", ["directory", "namespace"])
# The strata action runs fakeroot (CustomizationLayer): a real tool.
@pytest.mark.parametrize(
    "kind", [pytest.param(k, marks=[pytest.mark.realtool] if BUILDS[k] is worker_build else [])
             for k in sorted(BUILDS)],
)  # fmt: skip
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_build_stops_its_actions_and_removes_their_sandboxes(
    tmp_path: Path, kind: str, sandbox: str, signum: int
) -> None:
    marker = sleeper()
    ws, argv = BUILDS[kind](tmp_path, marker)
    if kind == "genrule":
        argv += [f"--sandbox={sandbox}", "//p:slow"]
    else:
        argv.append(sandbox)
    proc = start(ws, argv)
    try:
        wait_for("running action", lambda: running(marker))
        proc.send_signal(signum)
        got = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert got.code == 128 + signum, got.err
    if kind == "genrule":
        name = signal.Signals(signum).name
        assert_one_error(
            Outcome(1, "", got.err),
            rf"^error: strata build: interrupted \(got {name}\); running actions were stopped "
            r"and nothing half-written was kept: run it again to finish$",
        )
    assert marked(marker) == []  # the shell and the sleep it started
    assert sandboxes(tmp_path) == []
    # Only what the actions write: in-place worker actions also see the execroot's links
    # to the workspace (its c.json is the request, an input).
    outputs = [
        p.name
        for p in (tmp_path / "ob" / "execroot").rglob("*")
        if "bazel-out" in p.parts and p.is_file() and not p.is_symlink()
    ]
    assert not {"o", "c.tar", "c.json"} & set(outputs)


@pytest.mark.parametrize("sandbox", ["directory", "namespace"])
def test_after_kill_9_the_next_build_stops_the_orphans_and_removes_the_sandbox(
    tmp_path: Path, sandbox: str, canary: str
) -> None:
    marker = sleeper()
    ws, argv = genrule_build(tmp_path, marker)
    proc = start(ws, [*argv, f"--sandbox={sandbox}", "//p:slow"])
    wait_for("running action", lambda: running(marker))
    proc.kill()
    proc.wait(timeout=BOUND)
    left = sandboxes(tmp_path)
    assert len(left) == 1  # nothing could remove it
    if sandbox == "directory":  # the action runs on, orphaned
        assert running(marker)
    # what the clean-up must not touch: the sources the sandbox links to, the canary a link
    # planted in it leads to (checked by the fixture), and a process of someone else's
    (left[0] / "execroot" / "evil").symlink_to(Path("/") / canary)
    (left[0] / "execroot" / "ro").mkdir()
    (left[0] / "execroot" / "ro" / "f").write_text("x")
    os.chmod(left[0] / "execroot" / "ro", 0o555)
    decoy_marker = sleeper()
    decoy = subprocess.Popen(["sleep", decoy_marker], start_new_session=True)
    # (in the namespace sandbox bubblewrap's --die-with-parent ends it, unless the engine
    # died before bubblewrap could ask for that: the next build stops it then)
    (ws / "p" / "BUILD").write_text('genrule(name = "slow", outs = ["o"], cmd = "echo ok > $@")\n')
    got = strata(
        ws, "build", f"--output_base={tmp_path / 'ob'}", f"--sandbox={sandbox}", "//p:slow"
    )
    assert got.code == 0, got.err
    assert marked(marker) == []
    assert sandboxes(tmp_path) == []
    stopped = "2" if sandbox == "directory" else r"\d+"  # the shell and its sleep
    assert re.search(
        "^strata: cleaned up after a build that did not finish "
        rf"\(got 1 sandboxes and {stopped} processes left behind\)$",
        got.err,
        re.M,
    ), got.err
    assert (ws / "strata-bin" / "p" / "o").read_text() == "ok\n"
    assert (ws / "p" / "in.txt").read_text() == "source\n"
    assert decoy.poll() is None and running(decoy_marker)
    decoy.kill()
    decoy.wait()


def test_the_workers_tmp_is_emptied_and_not_reported_as_left_behind(tmp_path: Path) -> None:
    """Every build that starts strata's worker leaves its /tmp beside the sandboxes: the
    next build empties it and says nothing ("did not finish" is for real leftovers)."""
    root = tmp_path / "sandbox"
    (root / WORKER_TMP / "sub").mkdir(parents=True)
    (root / WORKER_TMP / "sub" / "f").write_text("a worker action's scratch file")
    (root / "1").mkdir()  # a real leftover sandbox, with no process left
    assert leftovers.clean_up(root) == leftovers.Cleaned(1, 0)
    assert list(root.iterdir()) == []


def test_a_sandbox_kept_by_verbose_failures_is_not_cleaned_up(tmp_path: Path) -> None:
    ws = workspace(
        tmp_path / "ws", {"p/BUILD": 'genrule(name = "bad", outs = ["o"], cmd = "exit 3")\n'}
    )
    got = strata(ws, "build", f"--output_base={tmp_path / 'ob'}", "--verbose_failures", "//p:bad")
    assert got.code == 1
    kept = sandboxes(tmp_path)
    assert len(kept) == 1
    (ws / "p" / "BUILD").write_text('genrule(name = "ok", outs = ["o"], cmd = "echo > $@")\n')
    assert strata(ws, "build", f"--output_base={tmp_path / 'ob'}", "//p:ok").code == 0
    assert sandboxes(tmp_path) == kept
