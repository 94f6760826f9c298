"""The `realtool` marker follows what a test runs, so the fast tier runs no real tool.

`tools/test -m "not realtool"` is the inner loop: it must never start Bazel, a
container engine, a registry or Nix. realtools.need() fails any test (or a fixture
it uses) that asks for one of REAL_TOOLS without the marker; these tests run a
small pytest session with tests/conftest.py to show that it does, and that the
marker, a module pytestmark or a marked parameter each satisfy it. A test that
runs a real tool directly (`subprocess.run(["skopeo", ...])`) is found in the
source instead.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from realtools import REAL_TOOLS
from test_tool_packages import programs_tests_run

TESTS = Path(__file__).resolve().parent

INNER = """
import pytest
from realtools import need

pytestmark = MODULE_MARK

@pytest.fixture
def registry():
    return need("docker-registry")

def test_unmarked_skopeo():
    need("skopeo")

def test_unmarked_fixture(registry):
    pass

def test_unmarked_plain_utility():
    need("rsync")

@pytest.mark.realtool
def test_marked():
    need("umoci")

@pytest.mark.parametrize("tool", ["rsync", pytest.param("bazel", marks=pytest.mark.realtool)])
def test_marked_param(tool):
    need(tool)
"""


def _inner(tmp_path: Path, module_mark: str) -> dict[str, str]:
    """Outcome of each inner test that passed, failed or errored, and the failure lines."""
    (tmp_path / "test_inner.py").write_text(INNER.replace("MODULE_MARK", module_mark))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-rA",
         "-q", "-m", "", str(tmp_path / "test_inner.py")],
        cwd=tmp_path,
        env={"PYTHONPATH": f"{TESTS}:{TESTS.parent / 'python'}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )  # fmt: skip
    outcomes = {}
    for line in proc.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "ERROR") and "::" in rest:
            name = rest.split("::", 1)[1].split(" ", 1)[0]
            outcomes[name] = word.lower()
    outcomes["stdout"] = proc.stdout
    return outcomes


def test_a_real_tool_without_the_marker_fails_the_test(tmp_path: Path) -> None:
    got = _inner(tmp_path, "[]")
    out = got["stdout"]
    assert got["test_unmarked_skopeo"] == "failed", out
    assert got["test_unmarked_fixture"] == "error", out  # in its setup
    assert (
        "test_inner.py::test_unmarked_skopeo runs skopeo but is not marked realtool; add "
        "@pytest.mark.realtool (or a module pytestmark) so the fast tier leaves it out"
    ) in out
    assert "test_inner.py::test_unmarked_fixture runs docker-registry but" in out
    # A plain utility needs no marker, and marked tests are not failed by the check (they
    # pass, or skip where the tool is missing).
    assert got.get("test_unmarked_plain_utility", "skipped") != "failed", out
    assert "test_marked runs" not in out and "test_marked_param[bazel] runs" not in out
    assert "test_marked_param[rsync] runs" not in out


def test_a_module_pytestmark_satisfies_the_check(tmp_path: Path) -> None:
    out = _inner(tmp_path, "pytest.mark.realtool")["stdout"]
    assert "but is not marked realtool" not in out, out


def test_the_real_tools_are_the_heavy_third_party_programs() -> None:
    assert {"bazel", "docker", "dockerd", "podman", "skopeo", "umoci", "nginx"} <= REAL_TOOLS
    assert {"fakeroot", "proot", "bwrap", "nix-store", "docker-registry"} <= REAL_TOOLS
    assert not {"rsync", "busybox", "tar", "git", "python3"} & REAL_TOOLS


def unmarked_tests_naming_real_tools(tests: Path = TESTS) -> list[str]:
    """`file:line test`: a test function that names a real tool as the program of
    `need`, realtools' `run` or `subprocess` (the scan of test_tool_packages) without the
    `realtool` marker on it or on its module. Helpers and fixtures are left to `need`'s
    check at run time, which sees the test that called them."""
    sites: dict[str, list[int]] = {}
    for program, places in programs_tests_run(tests).items():
        if program in REAL_TOOLS:
            for place in places:
                name, line = place.rsplit(":", 1)
                sites.setdefault(name, []).append(int(line))
    found = []
    for name, lines in sorted(sites.items()):
        tree = ast.parse((tests / name).read_text())
        module_marked = any(
            isinstance(n, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in n.targets)
            and "realtool" in ast.unparse(n.value)
            for n in tree.body
        )
        for fn in tree.body:
            if not isinstance(fn, ast.FunctionDef) or not fn.name.startswith("test_"):
                continue
            marked = module_marked or any("realtool" in ast.unparse(d) for d in fn.decorator_list)
            end = fn.end_lineno or fn.lineno
            for line in sorted(lines):
                if fn.lineno <= line <= end and not marked:
                    found.append(f"{name}:{line} {fn.name}")
    return found


def test_no_unmarked_test_names_a_real_tool() -> None:
    assert unmarked_tests_naming_real_tools() == []


def test_the_scan_finds_an_unmarked_test_that_runs_a_real_tool_directly(tmp_path: Path) -> None:
    (tmp_path / "test_a.py").write_text(
        "import subprocess\nimport pytest\n"
        "def helper():\n    subprocess.run(['bazel', 'info'])\n"
        "def test_direct():\n    subprocess.run(['skopeo', 'inspect'])\n"
        "@pytest.mark.realtool\ndef test_marked():\n    subprocess.run(['umoci', 'unpack'])\n"
        "def test_plain():\n    subprocess.run(['rsync', '-a'])\n"
    )
    (tmp_path / "test_b.py").write_text(
        "import subprocess\nimport pytest\npytestmark = [pytest.mark.realtool]\n"
        "def test_in_marked_module():\n    subprocess.run(['podman', 'run'])\n"
    )
    assert unmarked_tests_naming_real_tools(tmp_path) == ["test_a.py:6 test_direct"]
