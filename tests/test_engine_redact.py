"""Remote-cache credentials never reach strata's output.

`redact_url`, `redact_header` and `redact_text` on their own, then the real
command line: malformed `--remote_cache` URLs (port 99999, `http://[::1`, ...)
and bad `--remote_header`s are one-line errors with exit 2 (a flag's mistake,
Bazel's status) that show no password; mistyped flags, `.strata.rc` lines,
the warning for a server that is down, `--explain`, `--verbose_failures` and
the summary show none either.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from strata.engine.cache.http import parse_remote_cache
from strata.engine.redact import redact_header, redact_text, redact_url
from strata.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cretPW"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"http://al:{SECRET}@cache:8080/team", "http://***@cache:8080/team"),
        (f"http://al:{SECRET}@cache:99999/x", "http://***@cache:99999/x"),
        (f"http://al:{SECRET}@[::1", "http://***@[::1"),
        (f"http://al:{SECRET}/x@cache/p", "http://***@cache/p"),  # a '/' in the password
        (f"http://al:p@{SECRET}@cache", "http://***@cache"),  # an '@' in the password
        (f"https://cache/p?token={SECRET}#x", "https://cache/p?***"),
        (f"al:{SECRET}@cache", "***@cache"),
        ("http://cache:8080/team", "http://cache:8080/team"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_header_and_text() -> None:
    assert redact_header(f"Authorization=Bearer {SECRET}") == "Authorization=***"
    assert redact_header(f"Authorization: Bearer {SECRET}") == "Authorization:***"
    assert redact_header(f"Bearer {SECRET}") == "***"
    text = (
        f"unrecognized arguments: --remote_cash=http://u:{SECRET}@h "
        f"--remote_header=X-Token={SECRET} {SECRET}"
    )
    assert redact_text(text) == (
        "unrecognized arguments: --remote_cash=http://***@h --remote_header=X-Token=***"
    )
    assert redact_text(f"--remote_headr='Authorization: Bearer {SECRET}'") == (
        "--remote_headr='Authorization: ***'"
    )


@pytest.mark.parametrize(
    "url",
    [
        f"http://al:{SECRET}@cache:99999/x",
        f"http://al:{SECRET}@[::1",
        f"http://al:{SECRET}/x@cache",
        f"http://al:{SECRET}@cache:0",
        f"grpc://al:{SECRET}@cache:9092",
        f"http://al:{SECRET}@cache/p?token={SECRET}",
    ],
)
def test_parse_errors_hide_the_password(url: str) -> None:
    with pytest.raises(UserError) as e:
        parse_remote_cache(url)
    assert SECRET not in str(e.value)
    assert str(e.value).startswith("strata: --remote_cache ")
    assert "(got 'http://***@" in str(e.value) or "(got 'grpc://***@" in str(e.value)


def test_header_names_and_values_are_checked() -> None:
    for name, value in (("X Token", SECRET), ("X-Token", f"{SECRET}\nInjected: 1")):
        with pytest.raises(UserError, match=r"--remote_header must be Name=Value") as e:
            parse_remote_cache("http://cache", ((name, value),))
        assert SECRET not in str(e.value)


# -- the command line ------------------------------------------------------------------------


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "WORKSPACE").write_text("")
    (root / "BUILD").write_text(
        'genrule(name = "ok", outs = ["ok.txt"], cmd = "echo hi > $@")\n'
        'genrule(name = "fails", outs = ["no.txt"], cmd = "echo nope >&2; exit 3")\n'
    )
    return root


def strata(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    return subprocess.run(
        [sys.executable, "-m", "strata", *args[:1], f"--output_base={ws.parent / 'ob'}", *args[1:]],
        cwd=ws,
        capture_output=True,
        text=True,
        env=env,
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ([f"--remote_cache=http://al:{SECRET}@cache:99999/x"], "--remote_cache is not a valid URL"),
        ([f"--remote_cache=http://al:{SECRET}@[::1"], "--remote_cache is not a valid URL"),
        ([f"--remote_cache=http://al:{SECRET}@cache:0"], "--remote_cache port must be"),
        ([f"--remote_cache=ftp://al:{SECRET}@cache"], "--remote_cache must be an http(s) URL"),
        (
            ["--remote_cache=http://cache", f"--remote_header=Authorization: Bearer {SECRET}"],
            "--remote_header must be Name=Value (got 'Authorization:***')",
        ),
        (
            ["--remote_cache=http://cache", f"--remote_header=X-Token={SECRET}\r\nX: 1"],
            "--remote_header must be Name=Value with a token name",
        ),
        (
            [f"--remote_headr=Authorization: Bearer {SECRET}"],
            "--remote_headr=Authorization: *** :: Unrecognized option: "
            "--remote_headr=Authorization: ***",
        ),
    ],
)
@pytest.mark.parametrize("command", ["build", "run"])
def test_bad_remote_flags_are_one_line_without_the_secret(
    ws: Path, flags: list[str], message: str, command: str
) -> None:
    target = "//:ok"
    proc = strata(ws, command, *flags, target)
    assert proc.returncode == 2, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")
    assert message in proc.stderr
    assert not (ws.parent / "ob").exists()  # refused before any analysis or output


def test_mistyped_flags_and_rc_lines_hide_the_secret(ws: Path) -> None:
    typo = strata(ws, "build", f"--remote_cash=http://al:{SECRET}@cache", "//:ok")
    assert typo.returncode == 2 and typo.stderr == (
        "error: --remote_cash=http://***@cache :: Unrecognized option: "
        "--remote_cash=http://***@cache\n"
    )
    assert SECRET not in typo.stdout + typo.stderr
    for line, message in (
        (
            f"build --remote_cach=http://al:{SECRET}@cache",
            ":1: --remote_cach=http://***@cache :: Unrecognized option: --remote_cach=",
        ),
        (f'build --remote_header="X-Token={SECRET}', "cannot split line (No closing quotation)"),
        (f"build --remote_cache=http://al:{SECRET}@[::1", "--remote_cache is not a valid URL"),
    ):
        (ws / ".strata.rc").write_text(line + "\n")
        proc = strata(ws, "build", "//:ok")
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert SECRET not in proc.stdout + proc.stderr
        assert proc.stderr.count("\n") == 1


def test_server_down_explain_verbose_failures_and_summary_hide_the_secret(ws: Path) -> None:
    url = f"http://al:{SECRET}@127.0.0.1:{_closed_port()}/team"
    flags = [f"--remote_cache={url}", "--remote_timeout=5", "--explain", "--verbose_failures"]
    ok = strata(ws, "build", *flags, f"--remote_header=X-Token={SECRET}", "//:ok")
    assert ok.returncode == 0, ok.stderr
    assert f"warning: remote cache http://***@127.0.0.1:{url.rsplit(':', 1)[1]}: GET" in ok.stderr
    assert "remote cache: 0 hits" in ok.stderr and "explain: //:ok" in ok.stderr
    failed = strata(ws, "build", *flags, "--keep_going", "//:fails")
    assert failed.returncode == 1 and "nope" in failed.stderr
    for proc in (ok, failed):
        assert SECRET not in proc.stdout + proc.stderr
