"""Rule errors under real Bazel and under strata's engine, from another workspace.

The workspace loads @strata//rules:defs.bzl through local_repository. Each
mistake's message is checked by its text: our fail()s name the label and the
attribute in strata's error shape; the engines' own attribute checks
(mandatory, type) name both too. Bazel gets one `build --keep_going`; the
engine stops at its first analysis error, so it builds each target alone.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from realtools import bazel

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.realtool

LOAD = (
    'load("@strata//rules:defs.bzl", "docker_image", "image_load", "layered_image", "store_path")\n'
)
OK = """
genrule(name = "f", outs = ["f.txt"], cmd = "echo hi > $@")

store_path(name = "ok", srcs = {":f": "share/f.txt"})
"""
BAD = (
    LOAD
    + OK
    + """
store_path(name = "bad name!", srcs = {":f": "f.txt"})

layered_image(name = "too_few_layers", contents = [":ok"], max_layers = 1)

layered_image(name = "bad_env", contents = [":ok"], config = {"Env": ["NOEQUALS"]})

layered_image(name = "bad_cmd", contents = [":ok"], config = {"Cmd": "/bin/sh"})

layered_image(name = "bad_layering", contents = [":ok"], layering = "fancy")

store_path(name = "no_srcs")

genrule(name = "g", outs = ["g.txt"], cmd = "echo g > $@")

store_path(name = "two_places", srcs = {":f": "share/x", ":g": "share/x"})

store_path(name = "escaping", srcs = {":f": "../../etc/passwd"})
"""
)
# An execution-time mistake: a single-file store path cannot be copied to / (as Nix's
# buildEnv refuses to merge one); the CustomizationLayer action says so.
SINGLE_FILE = (
    LOAD
    + OK
    + """
store_path(name = "single", srcs = {":f": ""})

docker_image(name = "single_file", copy_to_root = [":single"])
"""
)
SINGLE_FILE_ERROR = (
    "a single-file store path has no tree to copy or link to / (got /nix/store/",
    "-single); put the file at a path inside a store path",
)
# Loading-phase mistakes spoil their whole package: one package each.
MISSING = LOAD + 'image_load(name = "no_image")\n'
WRONG_TYPE = (
    LOAD + OK + 'layered_image(name = "wrong_type", contents = [":ok"], max_layers = "8")\n'
)

# fail() texts, the same under both engines (each engine adds its own "error"/"Error in
# fail" prefix and place; the message itself starts with the label).
RULE_ERRORS = {
    "//bad:bad name!": (
        "//bad:bad name!: attribute 'name': invalid store path name (got \"bad name!\")",
    ),
    "//bad:too_few_layers": (
        "//bad:too_few_layers: attribute 'max_layers': must leave room",
        "(got 1); use at least 2",
    ),
    "//bad:bad_env": (
        "//bad:bad_env: attribute 'config': "
        'Env entries must be "NAME=value" strings (got "NOEQUALS")',
    ),
    "//bad:bad_cmd": ("//bad:bad_cmd: attribute 'config': Cmd must be a list of strings",),
    "//bad:bad_layering": (
        "//bad:bad_layering: attribute 'layering': unknown layering strategy (got \"fancy\")",
    ),
    "//bad:no_srcs": ("//bad:no_srcs: attribute 'srcs': a store path needs content",),
    "//bad:two_places": (
        "//bad:two_places: attribute 'srcs': two entries for one destination "
        "(the other in 'srcs') (got \"share/x\")",
    ),
    "//bad:escaping": (
        "//bad:escaping: attribute 'srcs': destinations are relative paths inside the store path"
        ' (got "../../etc/passwd")',
    ),
}


def place(target: str) -> str:
    """Where both engines put `target`'s analysis error: `bad/BUILD:<line>:<column>: in <rule>
    rule <label>: `, the column at the call's parenthesis (each call in BAD is one line)."""
    name = target.split(":", 1)[1]
    lines = BAD.splitlines()
    number = next(i for i, line in enumerate(lines, 1) if f'name = "{name}"' in line)
    line = lines[number - 1]
    rule = "store_path" if line.startswith("store_path(") else "layered_image_rule"
    return f"bad/BUILD:{number}:{line.index('(') + 1}: in {rule} rule {target}: "


def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    packages = (("bad", BAD), ("missing", MISSING), ("wrongtype", WRONG_TYPE))
    for pkg, text in (*packages, ("single", SINGLE_FILE)):
        (ws / pkg).mkdir(parents=True)
        (ws / pkg / "BUILD").write_text(text)
    (ws / "WORKSPACE").write_text(
        f'local_repository(name = "strata", path = "{ROOT}")\n'
        'load("@strata//rules:repositories.bzl", "strata_dependencies")\n'
        "strata_dependencies()\n"
    )
    return ws


def line_with(out: str, *parts: str) -> str:
    found = [line for line in out.splitlines() if all(p in line for p in parts)]
    assert found, f"no line with {parts} in:\n{out[-3000:]}"
    return found[0]


def test_rule_errors_under_bazel(tmp_path: Path) -> None:
    proc = bazel(
        workspace(tmp_path),
        tmp_path / "root",
        "build",
        "--keep_going",
        "--symlink_prefix=/",
        "--spawn_strategy=processwrapper-sandbox",
        "//bad:all",
        "//missing:all",
        "//wrongtype:all",
        "//single:all",
        check=False,
    )
    out = proc.stderr
    assert proc.returncode != 0
    for target, texts in RULE_ERRORS.items():
        for text in texts:
            assert text in out
        line_with(out, "Error in fail: " + texts[0])
        line_with(out, f"ERROR: {tmp_path / 'ws'}/{place(target)}")
    assert "Error in fail: error:" not in out  # one prefix, Bazel's
    line_with(out, "single_file", "CustomizationLayer")
    assert all(text in out for text in SINGLE_FILE_ERROR)
    line_with(out, "//missing:no_image", "mandatory attribute 'image'")
    line_with(out, "//wrongtype:wrong_type", "'max_layers'", "int")
    # the well-formed store path has no error: the rules load from another workspace
    assert not any("//bad:ok:" in line for line in out.splitlines())


@pytest.fixture(scope="module")
def strata_ws(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("errors")
    return workspace(tmp), tmp / "base"


def strata_build(ws: tuple[Path, Path], target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ROOT / "tools" / "strata", "build", f"--output_base={ws[1]}", target],
        cwd=ws[0],
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize("target", sorted(RULE_ERRORS))
def test_rule_errors_under_strata(target: str, strata_ws: tuple[Path, Path]) -> None:
    proc = strata_build(strata_ws, target)
    assert proc.returncode == 1, proc.stderr
    for text in RULE_ERRORS[target]:
        assert text in proc.stderr
    # "error: <BUILD line>: in <rule> rule //bad:x: attribute ...": placed at the user's
    # BUILD call as under Bazel, not in strata's .bzl; the engine's prefix, not a second one
    line = line_with(proc.stderr, RULE_ERRORS[target][0])
    assert line.startswith("error: " + place(target)) and line.count("error: ") == 1, line
    assert "\n  at external/strata/rules/private/" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_single_file_copy_to_root_under_strata(strata_ws: tuple[Path, Path]) -> None:
    proc = strata_build(strata_ws, "//single:single_file")
    assert proc.returncode == 1, proc.stderr
    line_with(proc.stderr, "//single:single_file", "CustomizationLayer")
    line_with(proc.stderr, *SINGLE_FILE_ERROR)
    assert "Traceback" not in proc.stderr


def test_attribute_checks_under_strata(strata_ws: tuple[Path, Path]) -> None:
    missing = strata_build(strata_ws, "//missing:no_image")
    assert missing.returncode == 1
    line_with(missing.stderr, "//missing:no_image", "mandatory attribute 'image'")
    wrong = strata_build(strata_ws, "//wrongtype:wrong_type")
    assert wrong.returncode == 1
    line_with(wrong.stderr, "//wrongtype:wrong_type", "'max_layers'", "integer")
