"""fail() texts of helper_store_path / bin_sh, nix_db and run_as_root, under Bazel and strata."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from realtools import need

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.realtool

BAD = """
load("@strata//rules:defs.bzl", "docker_image", "helper_store_path", "nix_db", "run_as_root")

helper_store_path(name = "ok", files = {"etc/motd": "hi\\n"})

helper_store_path(name = "abs_dest", files = {"/etc/motd": "hi\\n"})

helper_store_path(name = "links_without_target", links = {"bin/sh": "bin/bash"})

helper_store_path(name = "empty")

nix_db(name = "empty_db")

docker_image(name = "parent", copy_to_root = [":ok"])

run_as_root(name = "blank_script", from_image = ":parent", script = "  ")
"""

RULE_ERRORS = {
    "//bad:abs_dest": (
        "//bad:abs_dest: attribute 'files': destinations are relative paths inside "
        'the store path (got "/etc/motd")',
    ),
    "//bad:links_without_target": (
        "//bad:links_without_target: attribute 'link_to': links need a store path "
        "to point into (got None)",
    ),
    "//bad:empty": ("//bad:empty: attribute 'files': a store path needs content",),
    "//bad:empty_db": (
        "//bad:empty_db: attribute 'contents': a Nix database needs store paths (got [])",
    ),
    "//bad:blank_script": ("//bad:blank_script: attribute 'script': must not be empty",),
}


def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "bad").mkdir(parents=True)
    (ws / "bad" / "BUILD").write_text(BAD)
    (ws / "WORKSPACE").write_text(
        f'local_repository(name = "strata", path = "{ROOT}")\n'
        'load("@strata//rules:repositories.bzl", "strata_dependencies")\n'
        "strata_dependencies()\n"
    )
    return ws


def test_helper_rule_errors_under_bazel(tmp_path: Path) -> None:
    bazel = need("bazel")
    argv = [bazel, "--batch", f"--output_user_root={tmp_path / 'root'}", "build"]
    argv += ["--keep_going", "--nobuild", "--symlink_prefix=/", *sorted(RULE_ERRORS)]
    proc = subprocess.run(argv, cwd=workspace(tmp_path), capture_output=True, text=True)
    assert proc.returncode != 0
    for texts in RULE_ERRORS.values():
        for text in texts:
            assert f"Error in fail: {text}" in proc.stderr
    assert "Error in fail: error:" not in proc.stderr


@pytest.fixture(scope="module")
def strata_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One workspace and output base for every case: the tool is set up once, and each
    case's build analyses only its own target."""
    return workspace(tmp_path_factory.mktemp("helper-errors"))


@pytest.mark.parametrize("target", sorted(RULE_ERRORS))
def test_helper_rule_errors_under_strata(target: str, strata_ws: Path) -> None:
    proc = subprocess.run(
        [ROOT / "tools" / "strata", "build", f"--output_base={strata_ws.parent / 'base'}", target],
        cwd=strata_ws,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stderr
    for text in RULE_ERRORS[target]:
        # the engine puts the fail() site first: "error: <file:line>: //bad:x: attribute ..."
        assert text in proc.stderr
    assert proc.stderr.startswith("error: ")
    first = proc.stderr.splitlines()[0]
    assert RULE_ERRORS[target][0] in first and first.count("error: ") == 1, first
    assert "Traceback" not in proc.stderr
