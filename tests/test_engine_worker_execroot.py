"""Worker actions run in place, in the real execroot, as Bazel's non-sandboxed workers do.

Each test runs the same actions with the worker and with `--noworkers` (a
process in a sandbox of links), and what the action saw and wrote must be
the same, apart from where it ran.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest

from casekit import PYTHON_DIR
from enginekit import BIN, TOOL, TOOL_INPUTS, Engine, launcher, sh, tool_actions
from strata.engine.action import Action
from strata.engine.execution.running import ActionFailed

TESTS = Path(__file__).resolve().parent


def _tool() -> list[Action]:
    return tool_actions(launcher("probe_tool", f"{TESTS}:{PYTHON_DIR}"))


def _request(name: str, req: dict[str, Any]) -> Action:
    """A write action making `<BIN>/<name>.request.json`, as rules write their requests."""
    body = json.dumps({**req, "schema_version": 1}, sort_keys=True).encode()
    return Action(
        f"//pkg:{name}",
        "Request",
        "",
        kind="write",
        content=body,
        outputs=(f"{BIN}/{name}.request.json",),
    )


def _probe(
    name: str,
    req: dict[str, Any],
    inputs: tuple[str, ...] = (),
    outputs: tuple[str, ...] = (),
    output_dirs: tuple[str, ...] = (),
) -> list[Action]:
    request = f"{BIN}/{name}.request.json"
    run = Action(
        owner=f"//pkg:{name}",
        mnemonic="Probe",
        progress_message=f"Probe //pkg:{name}",
        argv=(TOOL, "action", "Probe", f"@{request}"),
        env=(("PATH", "/bin:/usr/bin"),),
        inputs=(*TOOL_INPUTS, request, *inputs),
        outputs=outputs,
        output_dirs=output_dirs,
    )
    return [_request(name, req), run]


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "pkg" / "sub").mkdir(parents=True)
    (ws / "WORKSPACE").write_text("")
    (ws / "pkg" / "a.txt").write_text("alpha\n")
    (ws / "pkg" / "sub" / "b.txt").write_text("beta\n")
    return ws


def _report(eng: Engine, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(eng.out(f"{BIN}/{name}").read_text())
    return data


@pytest.mark.parametrize("workers", [True, False])
def test_sources_and_outputs_resolve_by_their_execroot_paths(
    ws: Path, tmp_path: Path, workers: bool
) -> None:
    repo = tmp_path / "ob" / "external" / "other"
    repo.mkdir(parents=True)
    (repo / "c.txt").write_text("gamma\n")
    first = _probe("first", {"files": {f"{BIN}/first.txt": "one\n"}}, outputs=(f"{BIN}/first.txt",))
    reads = ["pkg/a.txt", "pkg/sub/b.txt", "external/other/c.txt", f"{BIN}/first.txt"]
    second = _probe(
        "second",
        {"read": reads, "report": f"{BIN}/seen.json"},
        inputs=tuple(reads),
        outputs=(f"{BIN}/seen.json",),
    )
    eng = Engine(ws, tmp_path / "ob")
    stats = eng.build([*_tool(), *first, *second], workers=workers)
    assert stats.in_worker == (2 if workers else 0)
    seen = _report(eng, "seen.json")
    assert seen["read"] == {
        "pkg/a.txt": "alpha\n",
        "pkg/sub/b.txt": "beta\n",
        "external/other/c.txt": "gamma\n",
        f"{BIN}/first.txt": "one\n",
    }
    execroot = eng.base.execroot
    if workers:
        # in place: the real execroot, its forest linking the workspace's entries (as Bazel's)
        assert seen["cwd"] == str(execroot)
        assert os.readlink(execroot / "pkg") == str(ws / "pkg")
        assert os.readlink(execroot / "external" / "other") == str(repo)
    else:
        assert seen["cwd"].startswith(str(eng.output_base / "sandbox"))


@pytest.mark.parametrize("workers", [True, False])
def test_a_worker_action_makes_no_sandbox(ws: Path, tmp_path: Path, workers: bool) -> None:
    """Nothing is staged or torn down: while it runs, no sandbox directory is there for it."""
    eng = Engine(ws, tmp_path / "ob")
    sandboxes = str(eng.output_base / "sandbox")
    probe = _probe(
        "p",
        {"list": [sandboxes], "report": f"{BIN}/p.txt"},
        inputs=("pkg/a.txt", "pkg/sub/b.txt"),
        outputs=(f"{BIN}/p.txt",),
    )
    eng.build([*_tool(), *probe], workers=workers)
    top = [e[0] for e in _report(eng, "p.txt")["list"][sandboxes] if "/" not in e[0]]
    staged = [name for name in top if name.startswith("a")]  # tempfile.mkdtemp(prefix="a")
    assert len(staged) == (0 if workers else 1)


def test_outputs_get_the_same_modes_in_place_and_in_a_sandbox(ws: Path, tmp_path: Path) -> None:
    def build(workers: bool) -> list[list[str]]:
        eng = Engine(ws, tmp_path / f"ob-{workers}")
        probe = _probe(
            "m",
            {"files": {f"{BIN}/m/file.txt": "f"}, "dirs": {f"{BIN}/m/tree": {"x/y.txt": "y"}}},
            outputs=(f"{BIN}/m/file.txt",),
            output_dirs=(f"{BIN}/m/tree",),
        )
        eng.build([*_tool(), *probe], workers=workers)
        listing: list[list[str]] = [["file.txt", oct(eng.out(f"{BIN}/m/file.txt").stat().st_mode)]]
        for dirpath, dirs, files in os.walk(eng.out(f"{BIN}/m/tree")):
            for name in dirs + files:
                p = Path(dirpath, name)
                listing.append([name, oct(p.stat().st_mode)])
        return listing

    in_place = build(True)
    assert in_place == build(False)
    assert {m for _name, m in in_place} == {oct(stat.S_IFREG | 0o555), oct(stat.S_IFDIR | 0o555)}


def test_stale_outputs_are_gone_before_the_action_runs(ws: Path, tmp_path: Path) -> None:
    eng = Engine(ws, tmp_path / "ob", disk_cache=tmp_path / "cache")
    outs = {"outputs": (f"{BIN}/r.json",), "output_dirs": (f"{BIN}/t",)}
    old = {"dirs": {f"{BIN}/t": {"old.txt": "1", "keep.txt": "1"}}, "report": f"{BIN}/r.json"}
    eng.build([*_tool(), *_probe("r", {**old, "present": []}, **outs)], workers=True)
    new = {
        "dirs": {f"{BIN}/t": {"keep.txt": "2"}},
        "present": [f"{BIN}/r.json", f"{BIN}/t/old.txt", f"{BIN}/t"],
        "report": f"{BIN}/r.json",
    }
    eng.build([*_tool(), *_probe("r", new, **outs)], workers=True)
    # the tree's directory is there, empty, as in a sandbox; the old outputs are not
    assert _report(eng, "r.json")["present"] == {
        f"{BIN}/r.json": False,
        f"{BIN}/t/old.txt": False,
        f"{BIN}/t": True,
    }
    assert sorted(p.name for p in eng.out(f"{BIN}/t").iterdir()) == ["keep.txt"]
    assert eng.out(f"{BIN}/t/keep.txt").read_text() == "2"


def test_a_failed_worker_action_leaves_no_output(ws: Path, tmp_path: Path) -> None:
    eng = Engine(ws, tmp_path / "ob")
    outs = {"outputs": (f"{BIN}/f/one.txt", f"{BIN}/f/two.txt"), "output_dirs": (f"{BIN}/f/t",)}
    ok = {"files": {f"{BIN}/f/one.txt": "1", f"{BIN}/f/two.txt": "2"}, "dirs": {f"{BIN}/f/t": {}}}
    eng.build([*_tool(), *_probe("f", ok, **outs)], workers=True)
    half = {
        "files": {f"{BIN}/f/one.txt": "1 again"},
        "dirs": {f"{BIN}/f/t": {"part.txt": "p"}},
        "litter": [f"{BIN}/f/two.txt"],
        "fail": "gave up half-way (got 1 of 2 outputs); fix the request",
    }
    with pytest.raises(ActionFailed) as e:
        eng.build([*_tool(), *_probe("f", half, **outs)], workers=True)
    assert str(e.value).endswith(
        f"\nerror: {BIN}/f.request.json: gave up half-way (got 1 of 2 outputs); fix the request"
    )
    assert sorted(os.listdir(eng.out(f"{BIN}/f"))) == []


def test_missing_output_of_a_worker_action_removes_the_others(ws: Path, tmp_path: Path) -> None:
    eng = Engine(ws, tmp_path / "ob")
    probe = _probe(
        "g",
        {"files": {f"{BIN}/g/one.txt": "1"}},
        outputs=(f"{BIN}/g/one.txt", f"{BIN}/g/two.txt"),
    )
    with pytest.raises(Exception, match="did not create declared output"):
        eng.build([*_tool(), *probe], workers=True)
    assert not eng.out(f"{BIN}/g/one.txt").exists()


def test_a_tree_input_is_staged_as_its_files(ws: Path, tmp_path: Path) -> None:
    """An action reading a tree artifact sees what Bazel's sandbox shows: files, no empty dirs."""
    tree = f"{BIN}/tree"
    make = sh(
        "//pkg:tree",
        f"mkdir -p {tree}/empty {tree}/d && echo x > {tree}/d/f",
        [],
        [],
        output_dirs=(tree,),
    )
    seen = {}
    for workers in (True, False):
        eng = Engine(ws, tmp_path / f"ob-{workers}")
        probe = _probe(
            "l",
            {"list": [tree], "report": f"{BIN}/l.json"},
            inputs=(tree,),
            outputs=(f"{BIN}/l.json",),
        )
        eng.build([*_tool(), make, *probe], workers=workers)
        seen[workers] = _report(eng, "l.json")["list"]
    assert seen[True] == seen[False]
    assert [name for name, _kind, _mode in seen[True][tree]] == ["d", "d/f"]


def test_processes_a_worker_action_leaves_behind_are_killed(ws: Path, tmp_path: Path) -> None:
    marker = f"strata-probe-{uuid.uuid4().hex}"
    eng = Engine(ws, tmp_path / "ob")
    probe = _probe(
        "bg",
        {"background": f"exec -a {marker} sleep 300", "files": {f"{BIN}/bg.txt": "x"}},
        outputs=(f"{BIN}/bg.txt",),
    )
    eng.build([*_tool(), *probe], workers=True, sandbox="directory")
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline.split(b"\0")[0]:
            left.append(pid)
    assert left == []


def test_an_input_hard_linked_into_an_output_keeps_its_digest(ws: Path, tmp_path: Path) -> None:
    """The engine knows a linked output's digest by inode; the result is the same either way."""
    results = {}
    for workers in (True, False):
        eng = Engine(ws, tmp_path / f"ob-{workers}", disk_cache=tmp_path / f"cache-{workers}")
        first = _probe(
            "blob", {"files": {f"{BIN}/blob": "layer bytes\n"}}, outputs=(f"{BIN}/blob",)
        )
        link = _probe(
            "lk",
            {"links": {f"{BIN}/lk/blob": f"{BIN}/blob"}},
            inputs=(f"{BIN}/blob",),
            outputs=(f"{BIN}/lk/blob",),
        )
        eng.build([*_tool(), *first, *link], workers=workers)
        a, b = eng.out(f"{BIN}/blob").stat(), eng.out(f"{BIN}/lk/blob").stat()
        # in place, one inode: nothing copied (a namespace sandbox's input is another mount)
        assert ((a.st_ino, a.st_dev) == (b.st_ino, b.st_dev)) == workers
        # the disk cache holds it under its true sha256 (a wrong digest would be a miss)
        cas = {p.name for p in (tmp_path / f"cache-{workers}" / "cas").rglob("*") if p.is_file()}
        results[workers] = cas
    assert hashlib.sha256(b"layer bytes\n").hexdigest() in results[True]
    assert results[True] == results[False]


@pytest.mark.parametrize("sandbox", ["directory", "namespace"])
def test_a_worker_dying_under_an_action_fails_it_cleanly(
    ws: Path, tmp_path: Path, sandbox: str
) -> None:
    eng = Engine(ws, tmp_path / "ob")
    die = {"files": {f"{BIN}/d.txt": "written"}, "kill_parent": True}
    with pytest.raises(ActionFailed, match="Probe failed with signal 9"):
        eng.build([*_tool(), *_probe("d", die, outputs=(f"{BIN}/d.txt",))], sandbox=sandbox)
    assert not eng.out(f"{BIN}/d.txt").exists()
    assert "warning: strata's action worker stopped" in eng.log[-1]
    # the next build starts a new worker and is whole again
    fine = {"files": {f"{BIN}/d.txt": "written"}}
    stats = eng.build([*_tool(), *_probe("d", fine, outputs=(f"{BIN}/d.txt",))], sandbox=sandbox)
    assert stats.in_worker == 1 and eng.out(f"{BIN}/d.txt").read_text() == "written"
