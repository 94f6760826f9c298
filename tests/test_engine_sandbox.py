"""The namespace sandbox: what an action can reach by absolute path, and the fallback."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from enginekit import BIN, Engine, sh
from realtools import need, need_namespace_sandbox
from strata.cli import main
from strata.engine.action import Action
from strata.errors import UserError

WARNING = "warning: no namespace sandbox"
TAIL = "actions can read and write outside their sandbox by absolute path; install bubblewrap"


@pytest.fixture
def eng(tmp_path: Path) -> Engine:
    ws = tmp_path / "ws"
    (ws / "pkg").mkdir(parents=True)
    (ws / "WORKSPACE").write_text("")
    (ws / "pkg" / "a.txt").write_text("alpha\n")
    return Engine(ws, tmp_path / "ob")


@pytest.fixture
def namespace() -> None:
    need_namespace_sandbox()


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[Path]:
    """A directory outside workspace and output base that no action may change."""
    d = tmp_path / "canary"
    d.mkdir()
    (d / "keep").write_text("untouched\n")
    yield d
    assert sorted(p.name for p in d.iterdir()) == ["keep"]
    assert (d / "keep").read_text() == "untouched\n"


def out(name: str) -> str:
    return f"{BIN}/pkg/{name}"


@pytest.mark.realtool  # bwrap, through the namespace fixture
def test_reading_a_file_outside_by_absolute_path_fails(
    eng: Engine, tmp_path: Path, namespace: None
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("hunter2\n")
    leak = sh("//pkg:leak", f"cat {secret} > {out('leak')}", [], [out("leak")])
    with pytest.raises(UserError) as info:
        eng.build([leak])
    assert f"cat: {secret}: No such file or directory" in str(info.value)
    assert not eng.out(out("leak")).exists()
    assert WARNING not in eng.log[-1]
    # The directory sandbox alone lets it through: that is what the warning says.
    eng.build([leak], sandbox="directory")
    assert eng.out(out("leak")).read_text() == "hunter2\n"


@pytest.mark.realtool  # bwrap, through the namespace fixture
def test_declared_inputs_are_still_readable(eng: Engine, namespace: None) -> None:
    first = sh("//pkg:up", f"tr a-z A-Z < pkg/a.txt > {out('A')}", ["pkg/a.txt"], [out("A")])
    second = sh("//pkg:cat", f"cat {out('A')} > {out('B')}", [out("A")], [out("B")])
    eng.build([first, second])
    assert eng.out(out("B")).read_text() == "ALPHA\n"


@pytest.mark.realtool  # bwrap, through the namespace fixture
def test_a_declared_input_linking_outside_is_readable_and_only_it(
    eng: Engine, tmp_path: Path, namespace: None
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "data.txt").write_text("linked\n")
    (elsewhere / "other.txt").write_text("not declared\n")
    (eng.workspace / "pkg" / "link.txt").symlink_to(elsewhere / "data.txt")
    read = sh("//pkg:r", f"cat pkg/link.txt > {out('r')}", ["pkg/link.txt"], [out("r")])
    eng.build([read])
    assert eng.out(out("r")).read_text() == "linked\n"
    peek = sh("//pkg:p", f"cat {elsewhere}/other.txt > {out('p')}", ["pkg/link.txt"], [out("p")])
    with pytest.raises(UserError, match="No such file or directory"):
        eng.build([peek])


@pytest.mark.realtool  # bwrap, through the namespace fixture
def test_writes_outside_the_sandbox_fail(eng: Engine, canary: Path, namespace: None) -> None:
    eng.build([sh("//pkg:a", f"cp pkg/a.txt {out('a')}", ["pkg/a.txt"], [out("a")])])
    targets = [
        canary / "keep",
        canary / "new",
        eng.workspace / "pkg" / "a.txt",
        eng.workspace / "pkg" / "new",
        eng.out(out("a")),  # an earlier output, by its path in the output base
    ]
    for i, target in enumerate(targets):
        action = sh(
            f"//pkg:w{i}", f"echo pwned > {target} && echo ran > {out('w')}", [], [out("w")]
        )
        with pytest.raises(UserError, match="(Read-only file system|Directory nonexistent)"):
            eng.build([action])
    wipe = sh("//pkg:rm", f"rm -rf {canary}; echo ran > {out('rm')}", [], [out("rm")])
    eng.build([wipe])  # rm -rf of a path that is not there succeeds, and removes nothing
    assert (eng.workspace / "pkg" / "a.txt").read_text() == "alpha\n"
    assert not (eng.workspace / "pkg" / "new").exists()
    assert eng.out(out("a")).read_text() == "alpha\n"


@pytest.mark.realtool  # bwrap, through the namespace fixture
def test_tmp_is_private_and_writable(eng: Engine, namespace: None) -> None:
    host_tmp = Path("/tmp") / f"strata-sandbox-test-{uuid.uuid4().hex}"
    script = (
        f"echo inside > {host_tmp}; ls -A /tmp | wc -l > {out('n')}; cat {host_tmp} >> {out('n')}"
    )
    eng.build([sh("//pkg:tmp", script, [], [out("n")])])
    # only the action's own file is in its /tmp (and where the output base is re-bound)
    count, text = eng.out(out("n")).read_text().split()
    assert text == "inside"
    assert int(count) <= 2
    assert not host_tmp.exists()


@pytest.mark.realtool  # bwrap, through the namespace fixture
def test_no_mounting_and_no_sysctls(eng: Engine, namespace: None) -> None:
    """Even as root: no CAP_SYS_ADMIN to undo the read-only view, /proc/sys read-only."""
    mount = sh(
        "//pkg:m", f"mkdir d && mount -t tmpfs none d && echo x > {out('m')}", [], [out("m")]
    )
    with pytest.raises(UserError, match="mount"):
        eng.build([mount])
    sysctl = Path("/proc/sys/kernel/core_pattern")
    before = sysctl.read_text()
    # the value it already has: harmless even where the sandbox does not hold
    script = f"printf '%s' '{before}' > {sysctl} && echo x > {out('s')}"
    with pytest.raises(UserError, match="(Read-only file system|Permission denied)"):
        eng.build([sh("//pkg:s", script, [], [out("s")])])
    assert sysctl.read_text() == before


@pytest.mark.realtool  # bwrap, through the namespace fixture
def test_a_missing_tool_reads_the_same_in_both_sandboxes(eng: Engine, namespace: None) -> None:
    tool = Action(
        owner="//pkg:t",
        mnemonic="Tool",
        progress_message="",
        argv=("bin/missing-tool", "x"),
        outputs=(out("t"),),
    )
    messages = []
    for mode in ("namespace", "directory"):
        with pytest.raises(UserError) as info:
            eng.build([tool], sandbox=mode)
        messages.append(str(info.value))
    assert (
        messages[0]
        == messages[1]
        == (
            "//pkg:t: Tool could not start (got No such file or directory: bin/missing-tool x); "
            "declare the tool as an input and check its path and executable bit"
        )
    )


@pytest.mark.realtool  # bwrap, through the namespace fixture
def test_orphans_die_with_the_sandbox(eng: Engine, namespace: None) -> None:
    marker = f"strata-orphan-{uuid.uuid4().hex}"
    sleeper = f"python3 -c 'import time; time.sleep(60)' {marker}"
    action = sh("//pkg:bg", f"{sleeper} >/dev/null 2>&1 & echo ok > {out('bg')}", [], [out("bg")])
    started = time.monotonic()
    eng.build([action])
    assert time.monotonic() - started < 30, "the build waited for the orphan"
    deadline = time.monotonic() + 5
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_with(marker) == []


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry))
    return found


# -- network, through a genrule's tags (the CLI and real analysis) -------------------


@pytest.fixture
def listening() -> Iterator[int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    try:
        yield srv.getsockname()[1]
    finally:
        srv.close()


def _genrule_workspace(root: Path, body: str) -> Path:
    ws = root / "ws"
    ws.mkdir()
    (ws / "WORKSPACE").write_text("")
    (ws / "BUILD").write_text(body)
    return ws


@pytest.mark.realtool  # bwrap, through the namespace fixture
def test_network_only_with_requires_network(
    tmp_path: Path,
    listening: int,
    namespace: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    need("python3")
    connect = f"import socket; socket.create_connection(('127.0.0.1', {listening}), 5)"
    cmd = f'if python3 -c "{connect}" 2>/dev/null; then echo connected; else echo blocked; fi > $@'
    ws = _genrule_workspace(
        tmp_path,
        f"genrule(name = 'closed', outs = ['closed.txt'], cmd = '''{cmd}''')\n"
        f"genrule(name = 'open', outs = ['open.txt'], cmd = '''{cmd}''',\n"
        "        tags = ['requires-network'])\n",
    )
    monkeypatch.chdir(ws)
    ob = f"--output_base={tmp_path / 'ob'}"
    assert main(["build", ob, "--sandbox=namespace", "//:closed", "//:open"]) == 0
    assert WARNING not in capsys.readouterr().err
    assert (ws / "strata-bin" / "closed.txt").read_text() == "blocked\n"
    assert (ws / "strata-bin" / "open.txt").read_text() == "connected\n"


@pytest.mark.realtool  # bwrap, through the namespace fixture
def test_no_sandbox_runs_outside_the_namespace(
    tmp_path: Path, namespace: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As under Bazel, `no-sandbox` (and `local`) take an action out of the sandbox: it
    reads the host's /tmp, which the namespace hides from every other action."""
    outside = tmp_path / "outside.txt"
    outside.write_text("seen\n")
    cmd = f"cat {outside} > $@ 2>/dev/null || echo hidden > $@"
    rules = [("inside", []), ("free", ["no-sandbox"]), ("here", ["local"])]
    ws = _genrule_workspace(
        tmp_path,
        "".join(
            f"genrule(name = '{n}', outs = ['{n}.txt'], cmd = '''{cmd}''', tags = {t})\n"
            for n, t in rules
        ),
    )
    monkeypatch.chdir(ws)
    ob = f"--output_base={tmp_path / 'ob'}"
    assert main(["build", ob, "--sandbox=namespace", "//:inside", "//:free", "//:here"]) == 0
    got = {n: (ws / "strata-bin" / f"{n}.txt").read_text() for n, _ in rules}
    assert got == {"inside": "hidden\n", "free": "seen\n", "here": "seen\n"}


# -- falling back, and refusing to ----------------------------------------------------


def _two_actions() -> list[Action]:
    return [
        sh("//pkg:a", f"cp pkg/a.txt {out('a')}", ["pkg/a.txt"], [out("a")]),
        sh("//pkg:b", f"cp {out('a')} {out('b')}", [out("a")], [out("b")]),
    ]


def test_directory_mode_warns_once_per_build(eng: Engine) -> None:
    eng.build(_two_actions(), sandbox="directory")
    log = eng.log[-1]
    assert log.count(WARNING) == 1
    assert f"{WARNING} (--sandbox=directory); {TAIL}\n" in log
    assert eng.out(out("b")).read_text() == "alpha\n"


def test_bwrap_not_on_path_falls_back_with_one_warning(
    eng: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRATA_BWRAP", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    eng.build(_two_actions())
    assert eng.log[-1].count(WARNING) == 1
    assert f"{WARNING} (bwrap is not on PATH); {TAIL}\n" in eng.log[-1]
    assert eng.out(out("b")).read_text() == "alpha\n"


def test_missing_override_falls_back_with_one_warning(
    eng: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATA_BWRAP", "/nonexistent")
    eng.build(_two_actions())
    assert eng.log[-1].count(WARNING) == 1
    assert f"{WARNING} (/nonexistent is not executable); {TAIL}\n" in eng.log[-1]


def test_bwrap_failing_its_probe_falls_back(
    eng: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("STRATA_BWRAP", str(fake))
    eng.build(_two_actions())
    log = eng.log[-1]
    assert log.count(WARNING) == 1
    why = f"{fake} fails a test run: bwrap: No permissions to create new namespace"
    assert f"{WARNING} ({why}); {TAIL}\n" in log


def test_namespace_mode_refuses_to_fall_back(eng: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATA_BWRAP", "/nonexistent")
    with pytest.raises(UserError) as info:
        eng.build(_two_actions(), sandbox="namespace")
    assert str(info.value) == (
        "strata: --sandbox=namespace needs a working bubblewrap (got /nonexistent is not "
        "executable); install the Debian package bubblewrap, allow user namespaces, or pass "
        "--sandbox=auto"
    )
    assert not eng.out(out("a")).exists()


def test_sandbox_flag_from_strata_rc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = _genrule_workspace(
        tmp_path, "genrule(name = 'g', outs = ['g.txt'], cmd = 'echo hi > $@')\n"
    )
    (ws / ".strata.rc").write_text("build --sandbox=directory\n")
    monkeypatch.chdir(ws)
    ob = f"--output_base={tmp_path / 'ob'}"
    assert main(["build", ob, "//:g"]) == 0
    assert f"{WARNING} (--sandbox=directory); {TAIL}\n" in capsys.readouterr().err
    monkeypatch.setenv("STRATA_BWRAP", "/nonexistent")
    assert main(["build", ob, "--sandbox=namespace", "//:g"]) == 1  # command line wins
    err = capsys.readouterr().err
    assert err.startswith("error: strata: --sandbox=namespace needs a working bubblewrap")
    assert "Traceback" not in err
