"""The bad-input suite, cache and build-state group: damaged caches, dying and racing builds.

Cases (tests/fixtures/bad_inputs/cache_cases.py) damage what a clean build
left: a `--disk_cache` (corrupt, truncated and hostile entries and blobs), a
remote cache server (tests/fault_server.py: 500s, a hang, redirects, lost
uploads, garbage and flipped bytes; and a real nginx refusing uploads,
failing, or with files damaged on its disk). Each must be recovery: exit 0, the
clean build's bytes, only the poisoned actions run again, exactly the
expected warnings, the canary untouched, and the bad entry replaced so the
next build from that cache is a clean hit. Then the build state: an engine
killed mid-action, two builds on one output base, a 9 GiB sparse source.

One workspace and output base serve every case (`strata clean` between
them keeps the analysis); each case gets its own copy of the clean disk
cache or its own part of the server. Every call runs under a deadline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from badinput_kit import DEADLINE, deadline, recovered, start_strata, stop, strata, tree_bytes, wait
from fault_server import FaultServer
from nginx_server import NginxCache
from realtools import need

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "bad_inputs"))
from cache_cases import (  # noqa: E402
    BUILD,
    DISK,
    DISK_CASES,
    LABEL,
    NGINX_CASES,
    NGINX_EXTRA,
    REMOTE_CASES,
    RULES,
    SOURCE,
    DiskCtx,
    RemoteCtx,
)


@dataclass(frozen=True)
class Workspace:
    top: Path
    ws: Path
    ob: Path
    good: dict[str, bytes | str]
    """Outputs of a clean build (no cache)."""
    clean_disk: Path
    """The disk cache that clean build filled."""

    @property
    def execroot(self) -> Path:
        return self.ob / "execroot" / "w"

    def outputs(self) -> dict[str, bytes | str]:
        return tree_bytes(self.execroot / "bazel-out" / "k8-fastbuild" / "bin" / "pkg")

    def executed(self) -> int:
        return int(json.loads((self.ob / "last_build.json").read_text())["executed"])


def _workspace(ws: Path) -> None:
    (ws / "pkg").mkdir(parents=True)
    (ws / "WORKSPACE").write_text('workspace(name = "w")\n')
    (ws / "pkg" / "BUILD").write_text(BUILD)
    (ws / "pkg" / "r.bzl").write_text(RULES)
    (ws / "pkg" / "a.txt").write_text(SOURCE)


@pytest.fixture(scope="module")
def cache_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    top = tmp_path_factory.mktemp("bad-cache")
    _workspace(top / "ws")
    ob = top / "ob"
    rc, err = strata(
        ["build", f"--output_base={ob}", f"--disk_cache={top / 'disk'}", "//pkg:use"], top / "ws"
    )
    assert rc == 0, err
    w = Workspace(top, top / "ws", ob, {}, top / "disk")
    good = w.outputs()
    assert good["use.txt"] == b"host secret\nterces tsoh\nterces tsoh\n"
    assert good["t/link"] == "-> sub/x"
    return Workspace(top, top / "ws", ob, good, top / "disk")


ALL = ("--remote_download_outputs=all",)


def _build(w: Workspace, capsys: pytest.CaptureFixture[str] | None, *flags: str) -> tuple[int, str]:
    rc, err = strata(["clean", f"--output_base={w.ob}"], w.ws, capsys)
    assert rc == 0, err
    return strata(["build", f"--output_base={w.ob}", *flags, "//pkg:use"], w.ws, capsys)


def _a_clean_hit(w: Workspace, capsys: pytest.CaptureFixture[str], disk: Path) -> None:
    """A build from the disk cache `disk` alone runs nothing and gives the good outputs."""
    rc, err = _build(w, capsys, f"--disk_cache={disk}")
    recovered(rc, err, [])
    assert w.executed() == 0 and w.outputs() == w.good


# -- a damaged --disk_cache ---------------------------------------------------------------


@pytest.mark.parametrize("i", range(len(DISK_CASES)), ids=[c[0] for c in DISK_CASES])
def test_damaged_disk_cache(
    i: int, cache_ws: Workspace, canary: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _name, poison, rerun, why = DISK_CASES[i]
    w = cache_ws
    disk = w.top / f"disk-{i}"
    shutil.copytree(w.clean_disk, disk, symlinks=True)
    poison(DiskCtx(disk, Path("/") / canary, w.execroot))
    rc, err = _build(w, capsys, f"--disk_cache={disk}")
    labels = "(" + "|".join(LABEL[o] for o in rerun) + ")"
    warning = [] if why is None else [DISK.format(disk=re.escape(str(disk)), label=labels, why=why)]
    recovered(rc, err, warning)
    assert w.outputs() == w.good
    assert w.executed() == len(rerun)
    # The fresh result replaced the bad entry: the next build is a clean hit.
    _a_clean_hit(w, capsys, disk)


# -- a misbehaving remote cache -------------------------------------------------------------


@pytest.fixture(scope="module")
def server(cache_ws: Workspace) -> Iterator[FaultServer]:
    """A fault server holding, under /seed, what a clean build uploaded."""
    fault = FaultServer().start()
    seed = [f"--disk_cache={cache_ws.top / 'seed-disk'}", f"--remote_cache={fault.url}/seed"]
    rc, err = _build(cache_ws, None, *seed)
    assert rc == 0, err
    assert len([p for p in fault.stored if p.startswith("/seed/ac/")]) == 3
    yield fault
    fault.stop()


@pytest.mark.parametrize("i", range(len(REMOTE_CASES)), ids=[c[0] for c in REMOTE_CASES])
def test_misbehaving_remote_cache(
    i: int, cache_ws: Workspace, server: FaultServer, canary: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    _name, poison, rerun, warnings = REMOTE_CASES[i]
    w = cache_ws
    prefix = f"/r{i}"
    for path, data in list(server.stored.items()):
        if path.startswith("/seed/"):
            server.stored[prefix + path[len("/seed") :]] = data
    ctx = RemoteCtx(server, prefix, Path("/") / canary, url=server.url + prefix)
    poison(ctx)
    disk = w.top / f"remote-disk-{i}"
    # Every output comes down (the engine's default leaves those not asked for on the
    # server: tests/test_engine_remote_download.py), so every blob meets the checks.
    rc, err = _build(
        w, capsys, f"--disk_cache={disk}", f"--remote_cache={ctx.url}", *ALL, *ctx.flags
    )
    recovered(rc, err, [p.replace("{url}", re.escape(ctx.url)) for p in warnings])
    assert w.outputs() == w.good
    assert w.executed() == len(rerun)
    # Nothing bad reached the local cache: a build from it alone is a clean hit.
    _a_clean_hit(w, capsys, disk)


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxCache]:
    server = NginxCache(tmp_path_factory.mktemp("bad-nginx"), extra=NGINX_EXTRA)
    server.start(need("nginx"))
    yield server
    server.stop()


@pytest.mark.realtool
@pytest.mark.parametrize("i", range(len(NGINX_CASES)), ids=[c[0] for c in NGINX_CASES])
def test_misbehaving_real_nginx_cache(
    i: int, cache_ws: Workspace, nginx: NginxCache, canary: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    _name, prefix, seed, damage, rerun, warnings = NGINX_CASES[i]
    w = cache_ws
    url = nginx.url + prefix
    if seed:
        seed_disk = w.top / f"nginx-seed-{i}"
        rc, err = _build(w, capsys, f"--disk_cache={seed_disk}", f"--remote_cache={url}", *ALL)
        recovered(rc, err, [])
    if damage is not None:
        damage(nginx.cache_dir / prefix.strip("/"))
    disk = w.top / f"nginx-disk-{i}"
    rc, err = _build(w, capsys, f"--disk_cache={disk}", f"--remote_cache={url}", *ALL)
    recovered(rc, err, [p.replace("{url}", re.escape(url)) for p in warnings])
    assert w.outputs() == w.good
    assert w.executed() == len(rerun)
    _a_clean_hit(w, capsys, disk)


# -- build state: an engine killed mid-build, two builds at once, a huge sparse source ------

# Writes half its output, says it started, then waits (while the workspace holds `hold`)
# until the test puts `go` in its sandbox, for at most a minute.
SLOW = """
genrule(name = "slow", srcs = ["a.txt"], outs = ["slow.txt"],
        cmd = "head -c 5 $< > $@; touch started; i=0; " +
              "while [ -e {hold} ] && [ ! -e go ] && [ $$i -lt 600 ]; " +
              "do sleep 0.1; i=$$((i+1)); done; cat $< >> $@")
"""


def _started(ob: Path, proc: object) -> Path:
    """The sandbox of the running slow action, once it has started (or a hang)."""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        found = list(ob.glob("sandbox/*/execroot/started"))
        if found:
            return found[0].parent
        assert getattr(proc, "poll")() is None, "the build ended before the action started"  # noqa: B009
        time.sleep(0.05)
    raise TimeoutError("the slow action never started")


@pytest.fixture(scope="module")
def slow_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("bad-state") / "ws"
    _workspace(ws)
    (ws / "pkg" / "BUILD").write_text(BUILD + SLOW.format(hold=ws / "hold"))
    return ws


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_engine_killed_mid_action_then_built_again(
    how: str, slow_ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import signal

    ob = tmp_path / "ob"
    (slow_ws / "hold").touch()
    proc = start_strata(["build", f"--output_base={ob}", "//pkg:slow"], slow_ws, tmp_path / "log")
    try:
        _started(ob, proc)
        proc.send_signal(getattr(signal, how))
        wait(proc)
    finally:
        stop(proc)
        (slow_ws / "hold").unlink()
    rc, err = strata(["build", f"--output_base={ob}", "//pkg:slow"], slow_ws, capsys)
    recovered(rc, err, [])
    out = ob / "execroot" / "w" / "bazel-out" / "k8-fastbuild" / "bin" / "pkg" / "slow.txt"
    # The half-written output of the killed run was not taken for a result.
    assert out.read_bytes() == b"host " + SOURCE.encode()


def test_two_builds_on_one_output_base(
    slow_ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ob = tmp_path / "ob"
    (slow_ws / "hold").touch()
    first = start_strata(["build", f"--output_base={ob}", "//pkg:slow"], slow_ws, tmp_path / "1")
    second = None
    try:
        sandbox = _started(ob, first)
        second = start_strata(["build", f"--output_base={ob}", "//pkg:slow", "//pkg:use"],
                              slow_ws, tmp_path / "2")  # fmt: skip
        end = time.monotonic() + DEADLINE
        while "another command holds the output base; waiting" not in (tmp_path / "2").read_text():
            assert second.poll() is None, (tmp_path / "2").read_text()
            assert time.monotonic() < end, "the second build neither waited nor failed"
            time.sleep(0.05)
        (sandbox / "go").touch()
        assert wait(first) == 0, (tmp_path / "1").read_text()
        assert wait(second) == 0, (tmp_path / "2").read_text()
    finally:
        (slow_ws / "hold").unlink()
        stop(first)
        if second is not None:
            stop(second)
    log = (tmp_path / "2").read_text()
    assert "Traceback" not in log and "error:" not in log, log
    bin_dir = ob / "execroot" / "w" / "bazel-out" / "k8-fastbuild" / "bin" / "pkg"
    assert (bin_dir / "slow.txt").read_bytes() == b"host " + SOURCE.encode()
    assert (bin_dir / "use.txt").read_bytes() == b"host secret\nterces tsoh\nterces tsoh\n"


SPARSE = """
genrule(name = "sparse", srcs = ["huge.bin"], outs = ["tail.txt"],
        cmd = "wc -c < $< > $@; tail -c 4 $< >> $@")
"""


@pytest.mark.slow
def test_a_9_gib_sparse_source(tmp_path: Path) -> None:
    """Read once for its digests, in bounded memory; no timing is asserted."""
    ws = tmp_path / "ws"
    _workspace(ws)
    (ws / "pkg" / "BUILD").write_text(SPARSE)
    size = 9 << 30
    with open(ws / "pkg" / "huge.bin", "wb") as f:
        f.truncate(size - 4)
        f.seek(size - 4)
        f.write(b"end\n")
    proc = start_strata(["build", f"--output_base={tmp_path / 'ob'}", "//pkg:sparse"],
                        ws, tmp_path / "log")  # fmt: skip
    try:
        with deadline():
            _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        stop(proc)
    log = (tmp_path / "log").read_text()
    assert proc.returncode == 0 and "Traceback" not in log, log
    assert (ws / "strata-bin" / "pkg" / "tail.txt").read_bytes() == f"{size}\nend\n".encode()
    # The engine and every action it waited for stayed far below the file's size.
    assert usage.ru_maxrss < 1 << 20, f"peak RSS {usage.ru_maxrss} KiB for a 9 GiB source"
