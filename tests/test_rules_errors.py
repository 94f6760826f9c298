"""Rule errors under real Bazel, from another workspace that loads @strata//rules:defs.bzl.

One `bazel build --keep_going` of a package full of mistakes; each fail()
message is checked by its text (it names the label and the attribute).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from realtools import need

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.realtool

BUILD = """
load("@strata//rules:defs.bzl", "layered_image", "store_path")

genrule(name = "f", outs = ["f.txt"], cmd = "echo hi > $@")

store_path(name = "bad name!", srcs = {":f": "f.txt"})

store_path(name = "ok", srcs = {":f": "share/f.txt"})

layered_image(name = "too_few_layers", contents = [":ok"], max_layers = 1)

layered_image(name = "bad_env", contents = [":ok"], config = {"Env": ["NOEQUALS"]})

layered_image(name = "bad_cmd", contents = [":ok"], config = {"Cmd": "/bin/sh"})

store_path(name = "no_srcs")
"""


def test_rule_errors_name_label_and_attribute(tmp_path: Path) -> None:
    bazel = need("bazel")
    ws = tmp_path / "ws"
    (ws / "bad").mkdir(parents=True)
    (ws / "WORKSPACE").write_text(
        f'local_repository(name = "strata", path = "{ROOT}")\n'
        'load("@strata//rules:repositories.bzl", "strata_dependencies")\n'
        "strata_dependencies()\n"
    )
    (ws / "bad" / "BUILD").write_text(BUILD)
    proc = subprocess.run(
        [
            bazel,
            "--batch",
            f"--output_user_root={tmp_path / 'root'}",
            "build",
            "--keep_going",
            "--symlink_prefix=/",
            "--spawn_strategy=processwrapper-sandbox",
            "//bad:all",
        ],
        cwd=ws,
        capture_output=True,
        text=True,
    )
    out = proc.stderr
    assert proc.returncode != 0
    assert (
        "error: //bad:bad name!: attribute 'name': invalid store path name (got \"bad name!\")"
        in out
    )
    assert "error: //bad:too_few_layers: attribute 'max_layers': must leave room" in out
    assert "(got 1); use at least 2" in out
    assert (
        "error: //bad:bad_env: attribute 'config': "
        'Env entries must be "NAME=value" strings (got "NOEQUALS")' in out
    )
    assert "error: //bad:bad_cmd: attribute 'config': Cmd must be a list of strings" in out
    assert "error: //bad:no_srcs: attribute 'srcs': a store path needs content" in out
    # the well-formed store path has no error: the rules load from another workspace
    assert not any("//bad:ok:" in line for line in out.splitlines())
