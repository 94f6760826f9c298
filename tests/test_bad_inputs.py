"""The bad-input suite: what careless or hostile users feed strata, and what must happen.

This module holds BUILD/.bzl mistakes, command-line mistakes and action
requests; test_bad_inputs_cache.py damaged caches, dying and racing builds;
test_bad_inputs_rules.py the rules' attribute mistakes and registry faults.
Every case is data (tests/fixtures/bad_inputs/*.py): an input (a BUILD file,
a command line, an action request, a damaged cache entry, a misbehaving
cache server or registry) and the expected outcome (tests/badinput_kit.py):

- one error line: exit 1 (exit 2, Bazel's status, for a mistake on the command
  line or in an rc file's flags, which is then the only line: no usage text),
  the first `error:` line matches the case's regex (which names the place:
  file:line, label, request file or flag), it is the only one, no traceback,
  and no output of the failing command is left; or
- recovery: the build succeeds with the same bytes as a clean build.

Hostile cases also keep the `canary` directory (tests/canary.py) untouched.
Cases share one workspace and output base per group (module-scoped
fixtures), and every call runs under a deadline, so a hang fails the case.
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from badinput_kit import no_files_under, one_error, strata

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "bad_inputs"))
from cases import ACTION_CASES, BUILD_CASES, CLI_CASES, LOAD, RULES  # noqa: E402

# -- BUILD and .bzl mistakes, one package a case, one workspace and output base ------------


@pytest.fixture(scope="module")
def build_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("bad-build") / "ws"
    (ws / "defs").mkdir(parents=True)
    (ws / "WORKSPACE").write_text('workspace(name = "w")\n')
    (ws / "defs" / "BUILD").write_text("")
    (ws / "defs" / "r.bzl").write_text(RULES)
    (ws / "ok").mkdir()
    (ws / "ok" / "BUILD").write_text(LOAD + 'echo(name = "a", text = "fine")\n')
    for i, (_name, build, _target, _regex) in enumerate(BUILD_CASES):
        (ws / f"c{i:02}").mkdir()
        (ws / f"c{i:02}" / "BUILD").write_text(build)
    return ws


@pytest.mark.parametrize("i", range(len(BUILD_CASES)), ids=[c[0] for c in BUILD_CASES])
def test_build_mistake(
    i: int, build_ws: Path, capsys: pytest.CaptureFixture[str], tmp_path_factory: Any
) -> None:
    _name, _build, target, regex = BUILD_CASES[i]
    pkg = f"c{i:02}"
    ob = build_ws.parent / "ob"
    rc, err = strata(["build", f"--output_base={ob}", f"//{pkg}:{target}"], build_ws, capsys)
    one_error(rc, err, regex.replace("{pkg}", pkg))
    for bin_dir in ob.glob("execroot/*/bazel-out/*/bin"):
        no_files_under(bin_dir / pkg)


@pytest.mark.parametrize("i", range(len(CLI_CASES)), ids=[c[0] for c in CLI_CASES])
def test_command_line_mistake(i: int, build_ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _name, files, argv, status, regex = CLI_CASES[i]
    for rel, text in files.items():
        (build_ws / rel).write_text(text)
    try:
        ob = build_ws.parent / "ob"
        rc, err = strata([f"--output_base={ob}", *argv], build_ws, capsys)
    finally:
        for rel in files:
            (build_ws / rel).unlink()
    one_error(rc, err, regex, status)
    if status == 2:  # a command-line mistake: one line, no usage text
        assert err.count("\n") == 1, err


# -- action requests (`strata action M @request.json`), one directory of real inputs ------


@pytest.fixture(scope="module")
def action_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    top = tmp_path_factory.mktemp("bad-actions")
    (top / "text").write_text("not an archive\n")
    (top / "dir").mkdir()
    with tarfile.open(top / "evil.tar", "w") as tar:
        info = tarfile.TarInfo("../../canary/victim/secret")
        tar.addfile(info)
        manifest = json.dumps([{"Config": "c.json", "Layers": []}]).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)

        tar.addfile(info, io.BytesIO(manifest))
    return top


@pytest.mark.parametrize("i", range(len(ACTION_CASES)), ids=[c[0] for c in ACTION_CASES])
def test_action_request_mistake(
    i: int, action_dir: Path, tmp_path: Path, canary: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _name, mnemonic, req, regex = ACTION_CASES[i]
    path = tmp_path / "req.json"
    if isinstance(req, bytes):
        path.write_bytes(req)
    elif isinstance(req, str):
        path.write_text(req)
    else:
        text = json.dumps({"schema_version": 1, **req}) if req != {} else "{}"
        if "schema_version" in req or req == {}:
            text = json.dumps(req)
        path.write_text(text.replace("{tmp}", str(tmp_path)))
    (tmp_path / "text").write_text("not an archive\n")
    (tmp_path / "dir").mkdir()
    os.link(action_dir / "evil.tar", tmp_path / "evil.tar")
    rc, err = strata(["action", mnemonic, f"@{path}"], tmp_path, capsys)
    pattern = regex.replace("{req}", re.escape(str(path))).replace(
        "{tmp}", re.escape(str(tmp_path))
    )
    one_error(rc, err, pattern)
    for out in ("o.tar", "o.json", "i.json"):
        assert not (tmp_path / out).exists()
