"""A workspace written from a dict of files, and its analysis (the loader tests)."""

from __future__ import annotations

from pathlib import Path

from strata.engine.analysis.analysis import analyze

BIN = "bazel-out/k8-fastbuild/bin"


def workspace(tmp_path: Path, files: dict[str, str]) -> Path:
    ws = tmp_path / "ws"
    for name, text in {"WORKSPACE": "", **files}.items():
        (ws / name).parent.mkdir(parents=True, exist_ok=True)
        (ws / name).write_text(text)
    return ws


def build(ws: Path, *patterns: str):  # type: ignore[no-untyped-def]
    return analyze(ws, list(patterns), output_base=ws.parent / "ob")
