"""`strata test`: Bazel's test command, on tests/fixtures/engine/test_command.

The fixture holds `sh_test`s and tests of a Starlark rule declared with
`test = True`: passing and failing ones, one that checks the environment
Bazel promises a test (env_check.sh), one needing a generated file, one
passing only under `--test_filter=Only.This`, one whose dependency cannot be
built. Each test here runs `strata test` on a fresh copy; the last one runs
`bazel test` (Bazel 4.2.3) on the same copy and compares the statuses.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from realtools import need, need_skylib
from strata.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "engine"
STATUS = re.compile(
    r"^(//\S+) +(\(cached\) )?(PASSED|FAILED|TIMEOUT|NO STATUS|FAILED TO BUILD)( in \d+\.\ds)?$"
)
ALL = ["//:sh_pass", "//:sh_fail", "//:env_check", "//:starlark_pass", "//:starlark_fail"]


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(FIXTURES / "test_command", root, symlinks=True)
    monkeypatch.chdir(root)
    monkeypatch.setenv("STRATA_CLIENT_ONLY", "not for tests")  # env_check fails if it sees it
    return root


def strata_test(
    ws: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, dict[str, str]]:
    """(exit status, stdout then stderr, {label: status as the summary shows it}).

    As Bazel, the summary and the tests' output go to stdout, the rest to stderr."""
    capsys.readouterr()
    rc = main(["test", f"--output_base={ws.parent / 'ob'}", *args])
    out, err = capsys.readouterr()
    return rc, out + err, statuses(out)


def statuses(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        m = STATUS.match(line)
        if m:
            out[m[1]] = (m[2] or "") + m[3]
    return out


def test_a_failing_test_is_exit_3_with_bazels_summary(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, err, got = strata_test(ws, capsys, *ALL)
    assert rc == 3, err
    assert got == {
        "//:sh_pass": "PASSED",
        "//:env_check": "PASSED",
        "//:starlark_pass": "PASSED",
        "//:sh_fail": "FAILED",
        "//:starlark_fail": "FAILED",
    }
    logs = ws.parent / "ob" / "execroot" / "tw" / "bazel-out" / "k8-fastbuild" / "testlogs"
    lines = err.splitlines()
    # Bazel's order: by status (PASSED before FAILED), then label; a status ends at column 79.
    summary = [line for line in lines if STATUS.match(line)]
    assert [STATUS.match(s)[1] for s in summary] == [  # type: ignore[index]
        "//:env_check",
        "//:sh_pass",
        "//:starlark_pass",
        "//:sh_fail",
        "//:starlark_fail",
    ]
    assert all(s.index(" in ") == 79 for s in summary), summary
    fail = lines.index(summary[3])
    assert lines[fail + 1] == f"  {logs}/sh_fail/test.log"
    assert f"FAIL: //:sh_fail (see {logs}/sh_fail/test.log)" in lines
    executed = lines.index("Executed 5 out of 5 tests: 3 tests pass and 2 fail locally.")
    assert lines[executed - 1] == "" and lines[executed - 2] == f"  {logs}/starlark_fail/test.log"
    assert "There were tests whose specified size" not in err  # Bazel's hint: not given
    # test.log: Bazel's header, then what the test printed; test.xml as generate-xml.sh writes it
    assert (logs / "sh_fail" / "test.log").read_text() == (
        'exec ${PAGER:-/usr/bin/less} "$0" || exit 1\n'
        "Executing tests from //:sh_fail\n" + "-" * 77 + "\nsh test failing\n"
    )
    xml = (logs / "sh_fail" / "test.xml").read_text()
    assert '<testsuite name="sh_fail" tests="1" failures="0" errors="1">' in xml
    assert '<error message="exited with error code 1"></error>' in xml
    assert "<![CDATA[exec ${PAGER" in xml and "sh test failing" in xml
    assert 'errors="0"' in (logs / "sh_pass" / "test.xml").read_text()
    assert (ws / "strata-testlogs").resolve() == logs.resolve()
    assert (logs / "env_check" / "test.outputs" / "out.txt").is_file()
    assert "env ok" in (logs / "env_check" / "test.log").read_text()


def test_a_passed_test_is_cached_until_an_input_changes(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    targets = ["//:starlark_pass", "//:sh_pass", "//:reads_generated", "//:sh_fail"]
    rc, err, got = strata_test(ws, capsys, *targets)
    assert rc == 3 and got["//:starlark_pass"] == "PASSED", err
    log = ws / "strata-testlogs" / "starlark_pass" / "test.log"
    first = log.stat().st_mtime_ns, log.stat().st_ino

    rc, err, got = strata_test(ws, capsys, *targets)
    assert rc == 3, err
    assert got == {
        "//:starlark_pass": "(cached) PASSED",
        "//:sh_pass": "(cached) PASSED",
        "//:reads_generated": "(cached) PASSED",
        "//:sh_fail": "FAILED",  # a failure is never cached (--cache_test_results=auto)
    }
    assert "Executed 1 out of 4 tests: 3 tests pass and 1 fails locally." in err
    assert (log.stat().st_mtime_ns, log.stat().st_ino) == first  # not run again

    # A file only some tests read: those run again, the others stay cached.
    (ws / "data.txt").write_text("hello from data\n# changed\n")
    rc, err, got = strata_test(ws, capsys, *targets)
    assert got["//:starlark_pass"] == "FAILED" and got["//:sh_pass"] == "FAILED", err
    assert got["//:reads_generated"] == "(cached) PASSED"
    (ws / "data.txt").write_text("hello from data\n")
    rc, err, got = strata_test(ws, capsys, *targets[:3])
    assert rc == 0 and got == dict.fromkeys(targets[:3], "PASSED") | {
        "//:reads_generated": "(cached) PASSED"
    }, err
    assert "Executed 2 out of 3 tests: 3 tests pass." in err

    # The test's own script changing (a generated input) runs it again too.
    (ws / "BUILD").write_text(
        (ws / "BUILD").read_text().replace("grep -q made made.txt", "grep -q mad made.txt")
    )
    _rc, err, got = strata_test(ws, capsys, "//:reads_generated")
    assert got == {"//:reads_generated": "PASSED"}, err

    # --cache_test_results=no runs everything; =yes reuses a failure too.
    _rc, err, got = strata_test(ws, capsys, "--nocache_test_results", "//:reads_generated")
    assert got == {"//:reads_generated": "PASSED"}, err
    strata_test(ws, capsys, "//:sh_fail")
    _rc, err, got = strata_test(ws, capsys, "--cache_test_results=yes", "//:sh_fail")
    assert got == {"//:sh_fail": "(cached) FAILED"}, err

    # A difference from Bazel: results live with the test logs, not in the disk cache, so
    # `clean` (which keeps the disk cache) forgets them.
    assert main(["clean", f"--output_base={ws.parent / 'ob'}"]) == 0
    _rc, err, got = strata_test(ws, capsys, "//:sh_pass")
    assert got == {"//:sh_pass": "PASSED"}, err


@pytest.mark.parametrize(
    ("mode", "shown", "hidden"),
    [
        ("summary", [], ["sh test failing", "hello"]),
        ("errors", ["sh test failing"], ["env ok"]),
        ("all", ["sh test failing", "env ok"], []),
        ("streamed", ["sh test failing", "env ok"], []),  # as `all`, one test at a time
    ],
)
def test_test_output_modes(
    ws: Path, capsys: pytest.CaptureFixture[str], mode: str, shown: list[str], hidden: list[str]
) -> None:
    rc, err, _got = strata_test(ws, capsys, f"--test_output={mode}", "//:sh_fail", "//:env_check")
    assert rc == 3, err
    for text in shown:
        assert text in err
    for text in hidden:
        assert text not in err
    lines = err.splitlines()
    if mode != "summary":
        start = lines.index("==================== Test output for //:sh_fail:")
        assert lines[start + 1 : start + 3] == ["sh test failing", "=" * 80]
        assert "INFO: From Testing //:sh_fail:" in lines


def test_test_filter_reaches_the_test(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, err, got = strata_test(ws, capsys, "--test_output=all", "//:filtered")
    assert rc == 3 and got == {"//:filtered": "FAILED"}, err
    assert "filter: \n" in err
    rc, err, got = strata_test(ws, capsys, "--test_filter=Only.This", "//:filtered")
    assert rc == 0 and got == {"//:filtered": "PASSED"}, err  # a new filter is a new run


def test_output_groups_do_not_keep_a_test_from_its_script_and_runfiles(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--output_groups` picks what a build lists, not what a test needs to run: a group
    no target has still runs the tests, their generated script and data built
    (as `bazel test --output_groups=nothing` does)."""
    labels = ("//:starlark_pass", "//:sh_pass")
    rc, err, got = strata_test(ws, capsys, "--output_groups=nothing", *labels)
    assert rc == 0 and got == {label: "PASSED" for label in labels}, err


def test_build_failures_no_tests_and_timeouts(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, err, got = strata_test(ws, capsys, "--keep_going", "//:needs_broken", "//:sh_pass")
    assert rc == 1, err
    assert got == {"//:needs_broken": "FAILED TO BUILD", "//:sh_pass": "PASSED"}
    assert "Executed 1 out of 2 tests: 1 test passes and 1 fails to build." in err
    rc, err, got = strata_test(ws, capsys, "//:needs_broken", "//:sh_fail")
    assert rc == 1, err  # without --keep_going the build stops: nothing runs
    assert got == {"//:needs_broken": "FAILED TO BUILD", "//:sh_fail": "NO STATUS"}
    assert "Executed 0 out of 2 tests: 1 fails to build and 1 was skipped." in err

    rc, err, got = strata_test(ws, capsys, "//:made")
    assert rc == 4 and got == {}, err
    assert "error: No test targets were found, yet testing was requested" in err
    assert (ws / "strata-bin" / "made.txt").read_text() == "made\n"  # built all the same

    rc, err, got = strata_test(ws, capsys, "--test_timeout=1", "//:sleepy")
    assert rc == 3 and got == {"//:sleepy": "TIMEOUT"}, err
    assert "\nTIMEOUT: //:sleepy (Summary)\n      " in err  # Bazel's words for it
    log = (ws / "strata-testlogs" / "sleepy" / "test.log").read_text()
    assert re.search(r"^-- Test timed out at .* UTC --$", log, re.MULTILINE), log


def test_manual_tests_run_only_when_named_and_own_xml_is_kept(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, err, got = strata_test(ws, capsys, "--test_filter=Only.This", "//...")
    assert rc == 3, err
    assert sorted(got) == sorted([*ALL, "//:reads_generated", "//:filtered"])  # no manual one
    rc, err, got = strata_test(ws, capsys, "//:own_xml")
    assert rc == 0 and got == {"//:own_xml": "PASSED"}, err
    xml = (ws / "strata-testlogs" / "own_xml" / "test.xml").read_text()
    assert xml == '<testsuites><testsuite name="own"/></testsuites>\n'


def test_args_and_test_env(
    ws: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (ws / "pkg").mkdir()
    (ws / "pkg" / "BUILD").write_text(
        'load("//:defs.bzl", "script_test")\n'
        "script_test(\n"
        '    name = "t",\n'
        '    args = ["one", "\'two words\'", "$(location //:data.txt)"],\n'
        '    data = ["//:data.txt"],\n'
        "    shard_count = 3,\n"
        '    script = \'echo "argv: $*"; echo "A=$A B=$B C=$FROM_CLIENT"; cat "$3"; \'\n'
        "        + 'echo \"PATH=$PATH shards=$TEST_TOTAL_SHARDS\"',\n"
        ")\n"
    )
    monkeypatch.setenv("FROM_CLIENT", "client value")
    monkeypatch.setenv("B", "client only")
    rc, err, _got = strata_test(
        ws,
        capsys,
        "--test_output=all",
        "--test_arg=three",
        "--test_env=A=set here",
        "--test_env=FROM_CLIENT",
        "//pkg:t",
    )
    assert rc == 0, err
    assert re.search(r"^argv: one two words (\./)?data\.txt three$", err, re.MULTILINE), err
    assert "A=set here B= C=client value\n" in err  # B: the client's, but not asked for
    assert "hello from data" in err  # $(location) names the file where the test runs
    # Differences from Bazel: PATH is not the client's (Bazel 4.2.3 passes it on), and
    # shard_count is accepted but a test runs as one shard.
    assert "PATH=.:/bin:/usr/bin:/usr/local/bin shards=\n" in err
    assert "argv: one two" in (ws / "strata-testlogs" / "pkg" / "t" / "test.log").read_text()


def test_no_network_unless_tagged_requires_network(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A difference from Bazel 4.2.3, whose sandbox lets tests reach the network by default:
    in strata's namespace sandbox a test has only a loopback of its own, as an action."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        connect = f"import socket; socket.create_connection(('127.0.0.1', {port}), 5)"
        (ws / "net").mkdir()
        (ws / "net" / "BUILD").write_text(
            'load("//:defs.bzl", "script_test")\n'
            f'script_test(name = "off", script = "python3 -c \\"{connect}\\"")\n'
            f'script_test(name = "on", script = "python3 -c \\"{connect}\\"", '
            'tags = ["requires-network"])\n'
        )
        rc, err, got = strata_test(ws, capsys, "--sandbox=namespace", "//net:off", "//net:on")
    assert rc == 3 and got == {"//net:on": "PASSED", "//net:off": "FAILED"}, err


def test_bazel_test_flags_strata_lacks_are_refused(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Differences from Bazel: no --runs_per_test, --flaky_test_attempts or coverage."""
    for flag in ("--runs_per_test=2", "--flaky_test_attempts=3", "--collect_code_coverage"):
        rc, err, _got = strata_test(ws, capsys, flag, "//:sh_pass")
        assert rc == 2 and err == f"error: {flag} :: Unrecognized option: {flag}\n"


def bazel_test(ws: Path, tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """`bazel test` (4.2.3), offline: two repositories it would download are stood in for."""
    stubs = FIXTURES / "bazel_test_stubs"
    return subprocess.run(
        [
            need("bazel"),
            f"--output_user_root={tmp_path / 'bazel-root'}",
            "--batch",
            "test",
            "--spawn_strategy=processwrapper-sandbox",
            f"--override_repository=remote_coverage_tools={stubs / 'remote_coverage_tools'}",
            f"--override_repository=rules_cc={stubs / 'rules_cc'}",
            *flags,
        ],
        cwd=ws,
        env={**os.environ, "STRATA_CLIENT_ONLY": "not for tests"},
        capture_output=True,
        text=True,
    )


@pytest.mark.realtool
@pytest.mark.slow
def test_bazel_gives_the_same_statuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`bazel test` and `strata test` on one copy: the same status for every test, the same
    Executed line, the same exit status."""
    ws = tmp_path / "ws"
    shutil.copytree(FIXTURES / "test_command", ws, symlinks=True)
    flags = ["--keep_going", "--test_filter=Only.This", "//...", "//:needs_broken"]
    proc = bazel_test(ws, tmp_path, *flags)
    theirs = statuses(proc.stdout)
    monkeypatch.chdir(ws)
    monkeypatch.setenv("STRATA_CLIENT_ONLY", "not for tests")
    rc, err, ours = strata_test(ws, capsys, *flags)
    assert len(theirs) == 8, proc.stdout + proc.stderr
    assert ours == theirs, (err, proc.stdout)
    assert theirs["//:env_check"] == "PASSED" and theirs["//:needs_broken"] == "FAILED TO BUILD"
    executed = [line for line in proc.stdout.splitlines() if line.startswith("Executed ")]
    assert executed == [
        "Executed 7 out of 8 tests: 5 tests pass, 1 fails to build and 2 fail locally."
    ]
    assert executed[0] in err.splitlines()
    assert rc == proc.returncode == 1


@pytest.mark.realtool
@pytest.mark.slow
def test_skylib_test_rules_as_under_bazel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Debian's bazel-skylib: diff_test (a test = True rule) and build_test (an sh_test)."""
    ws = tmp_path / "ws"
    shutil.copytree(FIXTURES / "test_command_skylib", ws, symlinks=True)
    (tmp_path / "bazel_skylib").symlink_to(need_skylib())
    proc = bazel_test(ws, tmp_path, "//...")
    theirs = statuses(proc.stdout)
    monkeypatch.chdir(ws)
    rc, err, ours = strata_test(ws, capsys, "//...")
    assert theirs == {"//:builds": "PASSED", "//:same": "PASSED", "//:differ": "FAILED"}, (
        proc.stdout + proc.stderr
    )
    assert ours == theirs, err
    assert rc == proc.returncode == 3
