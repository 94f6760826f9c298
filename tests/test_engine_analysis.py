"""Analysis only: fixture workspaces in, expected Actions out (no execution)."""

from __future__ import annotations

from pathlib import Path

import pytest

from strata.engine.action import Action
from strata.engine.analysis.analysis import AnalysisResult, analyze
from strata.errors import UserError

FIXTURES = Path(__file__).parent / "fixtures" / "engine"
BIN = "bazel-out/k8-fastbuild/bin"


def run(tmp_path: Path, name: str, *patterns: str, cwd: str = "") -> AnalysisResult:
    return analyze(FIXTURES / name, list(patterns), cwd_package=cwd, output_base=tmp_path / "ob")


def by_output(result: AnalysisResult) -> dict[str, Action]:
    return {o: a for a in result.actions for o in (*a.outputs, *a.output_dirs)}


def test_basic_write_and_genrule(tmp_path: Path) -> None:
    result = run(tmp_path, "basic", "//pkg:all")
    acts = by_output(result)
    write = acts[f"{BIN}/pkg/hi.txt"]
    assert write.kind == "write"
    assert write.content == b"hello strata\n"
    assert write.owner == "//pkg:hi"
    gen = acts[f"{BIN}/pkg/upper.txt"]
    assert gen.mnemonic == "Genrule"
    assert gen.argv[:2] == ("/bin/bash", "-c")
    assert gen.argv[2].endswith(f"tr a-z A-Z < {BIN}/pkg/hi.txt > {BIN}/pkg/upper.txt")
    assert gen.inputs == (f"{BIN}/pkg/hi.txt",)
    assert result.targets["//pkg:upper"].files == (f"{BIN}/pkg/upper.txt",)


def test_only_needed_actions(tmp_path: Path) -> None:
    result = run(tmp_path, "basic", ":hi", cwd="pkg")
    assert [a.owner for a in result.actions] == ["//pkg:hi"]
    assert list(result.targets) == ["//pkg:hi"]


def test_unknown_target_suggests(tmp_path: Path) -> None:
    with pytest.raises(
        UserError, match=r"no such target '//pkg:uper'.*did you mean :upper, :upper.txt\?"
    ):
        run(tmp_path, "basic", "//pkg:uper")


def test_benchmark_workspace_generator(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "engine_gen", Path(__file__).parents[1] / "tools" / "benchmarks" / "engine_gen.py"
    )
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    gen.generate(tmp_path / "ws", packages=3, targets=4)
    result = analyze(tmp_path / "ws", ["//..."], output_base=tmp_path / "ob")
    assert len(result.targets) == 12
    assert len(result.actions) == 24
    last = by_output(result)[f"{BIN}/pkg002/t3.sum"]
    assert last.inputs == (
        f"{BIN}/pkg001/t3.sum",
        f"{BIN}/pkg002/t2.sum",
        f"{BIN}/pkg002/t3.txt",
    )
