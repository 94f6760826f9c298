"""The checks tools can make: ruff (lint and format), mypy --strict on the packages
pyproject.toml names, and no merge conflict markers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*argv: str) -> None:
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(argv)}\n{proc.stdout}\n{proc.stderr}"


def test_ruff_check() -> None:
    _run(str(BIN / "ruff"), "check", "python", "tests", "tools")


def test_ruff_format() -> None:
    _run(str(BIN / "ruff"), "format", "--check", "python", "tests", "tools")


def test_mypy_strict() -> None:
    _run(str(BIN / "mypy"))  # files and strictness come from pyproject.toml


def test_no_merge_conflict_markers() -> None:
    """A conflict left in a doc or a .bzl file breaks nothing else that is checked."""
    marker = ("<" * 7 + " ", ">" * 7 + " ")
    found = []
    for path in ROOT.rglob("*"):
        parts = path.relative_to(ROOT).parts
        if not path.is_file() or parts[0].startswith((".", "strata-", "bazel-")):
            continue
        if path.suffix not in (".md", ".py", ".bzl", ".txt", ".toml", ".sh") and path.name not in (
            "BUILD",
            "WORKSPACE",
        ):
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if line.startswith(marker):
                found.append(f"{path.relative_to(ROOT)}:{n}")
    assert not found, f"merge conflict markers left in: {found}"
