from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from strata.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.startswith("strata ")


def test_unknown_action_is_one_line_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["action", "NoSuchThing", "@x.json"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: strata action: unknown action mnemonic (got 'NoSuchThing')")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "request is not valid JSON"),
        ("[1]", "request must be a JSON object (got list)"),
        ('{"schema_version": 99}', "unsupported schema_version (got 99)"),
    ],
)
def test_bad_request_files(tmp_path: Path, content: str, message: str) -> None:
    from strata.actions.request import load_request
    from strata.errors import UserError

    req = tmp_path / "req.json"
    req.write_text(content)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_request(f"@{req}")


def test_launcher_runs_the_cli() -> None:
    out = subprocess.run(
        [str(ROOT / "tools" / "strata"), "version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().startswith("strata ")


def test_internal_error_exits_37_with_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import strata.actions as actions

    def broken(req: dict[str, object], where: str) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(actions, "lookup", lambda mnemonic: broken)
    req = tmp_path / "req.json"
    req.write_text(json.dumps({"schema_version": 1}))
    assert main(["action", "Anything", f"@{req}"]) == 37  # Bazel's status for a crash
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: boom" in err and "please report" in err


def test_a_request_that_is_not_utf8_is_one_error(tmp_path: Path) -> None:
    # Found by tools/fuzz (action-request): a UnicodeDecodeError traceback before.
    from strata.actions.request import load_request
    from strata.errors import UserError

    req = tmp_path / "req.json"
    req.write_bytes(b'{"schema_version": 1, "name": "\xff"}')
    with pytest.raises(UserError) as e:
        load_request(f"@{req}")
    assert str(e.value) == (
        f"{req}: request is not UTF-8 (got byte 0xff at offset 31); write the request as UTF-8 JSON"
    )


def test_a_workers_children_parse_with_the_workers_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A worker forks a child per action: they reuse the parser the worker built for its
    own command line instead of building one each (7 ms of a small action's 18)."""
    from strata import cli, worker

    kept: list[object] = []
    monkeypatch.setattr(cli, "_WORKER_PARSER", None)
    monkeypatch.setattr(worker, "main", lambda protocol, cli_main: kept.append(cli._WORKER_PARSER))
    main(["worker", "--protocol", "1"])  # worker.main is stubbed: it notes the parser kept
    assert len(kept) == 1 and kept[0] is not None

    def no_new_parser() -> None:
        raise AssertionError("a parser was built again")

    monkeypatch.setattr(cli, "build_parser", no_new_parser)
    assert main(["version"]) == 0
    assert capsys.readouterr().out.startswith("strata ")
    # what it parses is still checked as before
    assert main(["action", "NoSuchMnemonic", "@x.json"]) == 1
    assert "NoSuchMnemonic" in capsys.readouterr().err
