"""Builds through a remote cache served in-process (tests/cache_server.py): a server that
lies costs one warning and never a wrong byte, and the scheduler's lookups overlap
while it handles them in the order it asked (strata.engine.execution.slots).
The cache client and the tiered policy alone are in test_engine_cache_http.py.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cache_server import CacheHandler, CacheServer, cache_url, serving, sha_hex
from strata.engine.action import Action
from strata.engine.cache.http import RemoteOptions


@pytest.fixture
def server() -> Iterator[CacheServer]:
    with serving() as srv:
        yield srv


def _flip(data: bytes) -> bytes:
    return bytes([data[0] ^ 1]) + data[1:] if data else b"\x01"


BAD_SERVERS: dict[str, tuple[dict[str, Callable[[str, bytes], Any]], tuple[str, ...]]] = {
    # name: (server behaviour, warnings of the build that uploads, then of the one that reads)
    "returns garbage for everything": (
        {"on_get": lambda _p, _d: b"\x00\xffgarbage\x13"},
        ("but sends other bytes back when read back", "ignored an invalid action result for "),
    ),
    "flips a byte of every blob": (
        {"on_get": lambda p, d: _flip(d) if "/cas/" in p else d},
        ("", "does not match its sha256"),
    ),
    "flips a byte of every action result it stores": (
        {"on_put": lambda p, d: _flip(d) if "/ac/" in p else d},
        ("but sends other bytes back when read back", "ignored an invalid action result for "),
    ),
    "loses every PUT (answering 200)": (
        {"on_put": lambda _p, _d: None},
        ("but does not have it when read back", "but does not have it when read back"),
    ),
    "loses the blobs it is sent": (
        {"on_put": lambda p, d: None if "/cas/" in p else d},
        ("", "could not be downloaded (a lost upload?)"),
    ),
}


def _engine_build(tmp: Path, name: str, url: str) -> tuple[dict[str, bytes], list[str]]:
    """A build in a fresh output base and local cache; its outputs and warnings."""
    from enginekit import BIN, sh
    from strata.engine.build import ExecutionConfig, execute
    from strata.engine.execution.report import Reporter
    from strata.engine.execution.scheduler import BuildOptions
    from strata.engine.outputbase import OutputBase

    ws = tmp / "ws"
    (ws / "pkg").mkdir(parents=True, exist_ok=True)
    (ws / "WORKSPACE").write_text("")
    (ws / "pkg" / "a.txt").write_text("alpha\n")
    f, tree, use = f"{BIN}/pkg/f", f"{BIN}/pkg/tree", f"{BIN}/pkg/use"
    actions = [
        sh("//pkg:f", f"tr a-z A-Z < pkg/a.txt > {f}", ["pkg/a.txt"], [f]),
        sh("//pkg:tree", f"mkdir -p {tree} && echo y > {tree}/y", [], [], output_dirs=(tree,)),
        sh("//pkg:use", f"cat {f} {tree}/y > {use}", [f, tree], [use]),
    ]
    stream = io.StringIO()
    base = OutputBase(tmp / name, ws)
    config = ExecutionConfig(
        BuildOptions(jobs=2), disk_cache=tmp / f"{name}-disk", remote=RemoteOptions(url=url)
    )
    execute(base, actions, [f, tree, use], config, Reporter(stream, tty=False))
    outputs = {p: (base.execroot / p).read_bytes() for p in (f, use, f"{tree}/y")}
    return outputs, [line for line in stream.getvalue().splitlines() if "warning" in line]


@pytest.mark.parametrize("case", sorted(BAD_SERVERS))
def test_a_server_that_lies_costs_one_warning_and_never_a_wrong_byte(
    server: CacheServer, tmp_path: Path, case: str
) -> None:
    behaviour, expected = BAD_SERVERS[case]
    for attr, fn in behaviour.items():
        setattr(server, attr, fn)
    url = cache_url(server)
    first, warned_first = _engine_build(tmp_path, "ob-a", url)
    second, warned_second = _engine_build(tmp_path, "ob-b", url)
    server.on_get = lambda _p, d: d
    server.on_put = lambda _p, d: d
    server.data.clear()
    clean, _ = _engine_build(tmp_path, "ob-clean", url)
    assert first == second == clean
    for warned, text in zip((warned_first, warned_second), expected, strict=True):
        if text:
            assert len(warned) == 1 and text in warned[0], warned
            assert warned[0].startswith(f"warning: remote cache {url}: "), warned
        else:
            assert warned == [], warned


def test_lookups_in_a_remote_cache_overlap_and_are_handled_in_the_order_asked(
    server: CacheServer, tmp_path: Path
) -> None:
    """Two independent actions in the remote cache, one output blob each, `--jobs=2`:
    both blobs are downloaded at the same time (a lookup waits on a thread, holding a job
    slot), and the first action asked is handled first though its blob comes last."""
    from enginekit import BIN, sh
    from remote_kit import build as remote_build
    from strata.engine.execution.report import Reporter

    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "WORKSPACE").write_text("")
    outs = [f"{BIN}/pkg/one", f"{BIN}/pkg/two"]
    actions = [
        sh(f"//pkg:{n}", f"echo {n} > {out}", [], [out])
        for n, out in zip(("one", "two"), outs, strict=True)
    ]
    url = cache_url(server)

    def build(name: str) -> list[str]:
        """The actions' owners in the order the build handled them (cache hits)."""
        reporter = Reporter(io.StringIO(), tty=False)
        order: list[str] = []
        real = reporter.action_finished

        def finished(action_id: int, action: Action, how: str, output: str = "") -> None:
            order.append(f"{action.owner} {how}")
            real(action_id, action, how, output)

        reporter.action_finished = finished  # type: ignore[method-assign]
        _, _, base = remote_build(
            ws,
            tmp_path / name,
            actions,
            RemoteOptions(url, download_outputs="all"),
            reporter=reporter,
        )
        assert [(base.execroot / o).read_text() for o in outs] == ["one\n", "two\n"]
        return order

    assert sorted(build("ob-a")) == ["//pkg:one executed", "//pkg:two executed"]
    first_blob = f"/team/cas/{sha_hex(b'one' + bytes([10]))}"
    in_flight, most = [0], [0]
    lock = threading.Lock()

    def slow_get(path: str, data: bytes) -> bytes:
        if "/cas/" in path:
            with lock:
                in_flight[0] += 1
                most[0] = max(most[0], in_flight[0])
            time.sleep(0.6 if path == first_blob else 0.2)
            with lock:
                in_flight[0] -= 1
        return data

    server.on_get = slow_get
    assert build("ob-b") == ["//pkg:one cache_hit", "//pkg:two cache_hit"]
    assert most[0] == 2


def test_many_lookups_that_miss_and_end_out_of_order_run_every_action(
    server: CacheServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lookups that end out of order are handled in order; each that misses starts its
    action, whose pidfd may reuse the number of a lookup's closed pipe. No action may be
    lost that way (a lost one was once reported as up to date)."""
    import random

    from enginekit import BIN, sh
    from remote_kit import build as remote_build

    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "WORKSPACE").write_text("")
    outs = [f"{BIN}/pkg/o{i}" for i in range(24)]
    actions = [sh(f"//pkg:o{i}", f"echo {i} > {out}", [], [out]) for i, out in enumerate(outs)]
    pause = random.Random(7)

    real_record = CacheHandler._record

    def record(self: CacheHandler, body: bytes = b"") -> None:
        real_record(self, body)
        if self.command == "GET" and "/ac/" in self.path:
            time.sleep(pause.choice((0.0, 0.01, 0.05)))

    monkeypatch.setattr(CacheHandler, "_record", record)
    for jobs in (2, 4):
        remote = RemoteOptions(cache_url(server, f"/j{jobs}"), upload_local_results=False)
        stats, _, base = remote_build(ws, tmp_path / f"ob{jobs}", actions, remote, jobs=jobs)
        assert stats.executed == len(outs)
        assert [(base.execroot / o).read_text() for o in outs] == [f"{i}\n" for i in range(24)]
