"""strata's own actions run in a preloaded worker, with the same outcome as a process."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from enginekit import BIN, TOOL, TOOL_INPUTS, Engine, launcher, tool_actions
from strata.engine.action import Action
from strata.engine.execution.running import ActionFailed
from strata.errors import UserError


def _layer_action(name: str, request: str) -> Action:
    return Action(
        owner=f"//img:{name}",
        mnemonic="CustomizationLayer",
        progress_message=f"CustomizationLayer //img:{name}",
        argv=(TOOL, "action", "CustomizationLayer", f"@{request}"),
        env=(("PATH", "/bin:/usr/bin"),),
        inputs=(*TOOL_INPUTS, request),
        outputs=(f"{BIN}/{name}.json", f"{BIN}/{name}.tar"),
    )


def _workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "WORKSPACE").write_text("")
    req = {
        "compressor": "gzip",
        "files": [
            {"content": "hello\n", "dest": "etc/motd", "type": "file"},
            {"dest": "lib64", "target": "lib", "type": "symlink"},
        ],
        "descriptor": f"{BIN}/ok.json",
        "output": f"{BIN}/ok.tar",
        "schema_version": 1,
    }
    (ws / "ok.json").write_text(json.dumps(req, sort_keys=True))
    (ws / "bad.json").write_text(json.dumps({**req, "compressor": "lzma"}, sort_keys=True))
    return ws


@pytest.mark.parametrize("workers", [True, False])
def test_worker_and_process_give_the_same_outputs(tmp_path: Path, workers: bool) -> None:
    ws = _workspace(tmp_path)
    eng = Engine(ws, tmp_path / f"ob-{workers}", disk_cache=None)
    stats = eng.build([*tool_actions(), _layer_action("ok", "ok.json")], workers=workers)
    assert stats.executed == 1 and stats.in_worker == (1 if workers else 0)
    if workers:
        assert stats.max_action_rss_kib > 0 and stats.max_action_rss_owner == "//img:ok"
    digest = json.loads(eng.out(f"{BIN}/ok.json").read_text())["digest"]
    other = Engine(ws, tmp_path / f"ob-other-{workers}")
    other.build([*tool_actions(), _layer_action("ok", "ok.json")], workers=not workers)
    assert json.loads(other.out(f"{BIN}/ok.json").read_text())["digest"] == digest
    assert eng.out(f"{BIN}/ok.tar").read_bytes() == other.out(f"{BIN}/ok.tar").read_bytes()


def test_worker_action_failure_is_the_actions_one_line_error(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    eng = Engine(ws, tmp_path / "ob")
    with pytest.raises(ActionFailed) as e:
        eng.build([*tool_actions(), _layer_action("ok", "bad.json")], workers=True)
    text = str(e.value)
    assert "CustomizationLayer failed with exit status 1" in text
    assert text.endswith(
        "\nerror: bad.json: unknown compressor (got 'lzma'); use one of: none, gzip, zstd"
    )
    assert not eng.out(f"{BIN}/ok.tar").exists()


def test_no_worker_outlives_the_build(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    eng = Engine(ws, tmp_path / "ob")
    probe = Action(
        owner="//img:probe",
        mnemonic="CustomizationLayer",
        progress_message="",
        argv=(TOOL, "action", "CustomizationLayer", "@ok.json"),
        env=(("PATH", "/bin:/usr/bin"),),
        inputs=(*TOOL_INPUTS, "ok.json"),
        outputs=(f"{BIN}/ok.json", f"{BIN}/ok.tar"),
    )
    eng.build([*tool_actions(), probe], workers=True)
    assert eng.log[-1].strip().endswith("3 actions: 1 executed, 0 cache hits, 2 in-process")
    # No worker outlives the build: soon nothing of ours has the output base as cwd. (The
    # kernel ends what is left in a namespace sandbox after its first process is reaped, so
    # on a loaded machine a worker can take a moment to be gone.)
    deadline = time.monotonic() + 10
    while left := _processes_in(tmp_path / "ob"):
        assert time.monotonic() < deadline, f"processes left in the output base: {left}"
        time.sleep(0.05)


def _processes_in(root: Path) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cwd = os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                continue
            if cwd.startswith(str(root)):
                found.append(f"{pid} in {cwd}")
    return found


def test_worker_actions_cannot_write_outside_the_output_base(tmp_path: Path) -> None:
    """Under the namespace sandbox the worker's children see the host read-only."""
    from strata.engine.execution.sandbox import find_bwrap, probe

    if probe(find_bwrap()):
        pytest.fail("bubblewrap must work here (tools/test installs it)")
    ws = _workspace(tmp_path)
    canary = tmp_path / "canary"
    canary.mkdir()
    outside = {"descriptor": str(canary / "d.json"), "output": str(canary / "x.tar")}
    req = json.loads((ws / "ok.json").read_text())
    (ws / "escape.json").write_text(json.dumps({**req, **outside}, sort_keys=True))
    eng = Engine(ws, tmp_path / "ob")
    with pytest.raises(UserError, match="did not create declared output"):
        eng.build(
            [*tool_actions(), _layer_action("ok", "escape.json")],
            workers=True,
            sandbox="namespace",
        )
    assert list(canary.iterdir()) == []  # it wrote into the worker's private /tmp


def test_a_worker_that_dies_is_one_warning_and_the_actions_run_as_processes(
    tmp_path: Path,
) -> None:
    ws = _workspace(tmp_path)
    broken = launcher(
        before='if [ "$1" = worker ]; then echo "worker: cannot start here" >&2; exit 3; fi\n'
    )
    eng = Engine(ws, tmp_path / "ob")
    stats = eng.build([*tool_actions(broken), _layer_action("ok", "ok.json")], workers=True)
    assert stats.executed == 1 and stats.in_worker == 0
    assert eng.out(f"{BIN}/ok.tar").is_file()
    warnings = [line for line in eng.log[-1].splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: strata's action worker stopped (worker: cannot start here); its actions ran "
        "as processes (slower, same bytes); --noworkers skips the worker"
    ]


def test_the_worker_is_started_early_only_once_its_tool_is_made_and_a_source_changed() -> None:
    from strata.engine.execution.early_worker import EarlyWorker

    started: list[str] = []
    release, done = threading.Event(), threading.Event()

    def start() -> None:  # a start-up that takes its time
        release.wait(10)
        started.append(threading.current_thread().name)
        done.set()

    early = EarlyWorker(start, producers={3, 7})
    early.source_changed()  # the tool is not made yet: a worker now could run an old one
    early.finished(3)
    early.finished(5)  # not a producer of the tool
    assert not done.wait(0.2) and started == []
    early.finished(7)  # returns at once: the start-up runs on its own thread
    assert started == []
    release.set()
    assert done.wait(10) and started == ["worker-start"]
    early.source_changed()
    early.finished(7)
    time.sleep(0.2)
    assert started == ["worker-start"]  # once a build
    quiet = EarlyWorker(lambda: started.append("quiet"), producers=set())
    quiet.finished(1)  # nothing changed (a no-op): no worker
    time.sleep(0.2)
    assert started == ["worker-start"]
    early.close()  # the end of the build: the thread that started the worker ends
    quiet.close()


def test_closing_the_pool_waits_for_a_start_under_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker starting on its thread when the build ends is closed, not left running."""
    from strata.engine.execution import workers

    pool = workers.WorkerPool(tmp_path, {})
    made: list[object] = []
    entered = threading.Event()

    class Slow:
        def __init__(self, *args: object) -> None:
            entered.set()
            time.sleep(0.5)
            made.append(self)
            self.closed = False

        def close(self) -> None:
            self.closed = True

    (tmp_path / "tool").write_text("")
    (tmp_path / "tool.runfiles").mkdir()
    monkeypatch.setattr(workers, "Worker", Slow)
    starter = threading.Thread(target=pool.get, args=("tool",))
    starter.start()
    assert entered.wait(10)
    pool.close()  # waits for the start under way, then closes what it made
    starter.join()
    assert len(made) == 1 and made[0].closed  # type: ignore[attr-defined]
    assert pool.get("tool") is None  # a closed pool starts nothing


def test_a_worker_started_and_never_used_is_killed_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A changed source that only a non-strata action reads starts the worker early; the
    build does not wait for its start-up: it is killed first, then reaped."""
    from strata.engine.execution import workers

    ws = tmp_path / "ws"
    ws.mkdir()
    slow = ws / "slow.sh"
    slow.write_text("#!/bin/sh\nsleep 30\n")
    slow.chmod(0o755)
    worker = workers.Worker(slow, ws, {"PATH": "/bin:/usr/bin"})
    events: list[str] = []
    real_killpg, real_wait = os.killpg, worker.process.wait

    def killpg(pid: int, sig: int) -> None:
        events.append("kill")
        real_killpg(pid, sig)

    def wait(timeout: float | None = None) -> int:
        events.append("wait")
        return real_wait(timeout)

    monkeypatch.setattr(workers.os, "killpg", killpg)
    monkeypatch.setattr(worker.process, "wait", wait)
    worker.close()
    assert events == ["kill", "wait"]
    assert worker.process.returncode == -9


@pytest.mark.realtool
def test_a_worker_started_early_in_the_namespace_sandbox_lives_on_after_its_start(
    tmp_path: Path,
) -> None:
    """bubblewrap's --die-with-parent fires when the *thread* that started it ends: the
    early start's thread stays until the build is over, so the worker is not killed."""
    from strata.engine.execution import workers
    from strata.engine.execution.early_worker import EarlyWorker
    from strata.engine.execution.sandbox import choose

    namespace, why = choose("namespace")
    assert namespace is not None, why
    ob = tmp_path / "ob"
    ob.mkdir()
    script = tmp_path / "tool"
    script.write_text("#!/bin/sh\nexec sleep 60\n")
    script.chmod(0o755)
    made: list[workers.Worker] = []
    returned = threading.Event()

    def start() -> None:
        made.append(
            workers.Worker(
                script,
                ob,
                {"PATH": "/bin:/usr/bin"},
                lambda argv: namespace.worker_command(ob, [tmp_path], argv),
            )
        )
        time.sleep(1)  # bubblewrap has set its parent-death signal by now
        returned.set()

    early = EarlyWorker(start, producers=set())
    early.source_changed()
    try:
        assert returned.wait(20)
        time.sleep(1)  # the start has returned: only the waiting thread is left
        assert made[0].process.poll() is None, "the worker died when its start returned"
    finally:
        early.close()
        for worker in made:
            worker.close()
