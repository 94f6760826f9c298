"""The stored analysis is reused only while nothing analysis read has changed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from strata.engine.analysis_cache import CachedAnalysis, analyze_cached
from strata.engine.digests import StatCache

DEFS = 'WORD = "one"\n'
BUILD = """load("//rules:defs.bzl", "WORD")

filegroup(name = "all", srcs = glob(["**/*.txt"]))

genrule(name = "gen", outs = ["gen.out"], cmd = "echo %s > $@" % WORD)
"""


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "rules").mkdir(parents=True)
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "WORKSPACE").write_text('workspace(name = "cached")\n')
    (root / "rules" / "BUILD").write_text("")
    (root / "rules" / "defs.bzl").write_text(DEFS)
    (root / "pkg" / "BUILD").write_text(BUILD)
    (root / "pkg" / "a.txt").write_text("a\n")
    (root / "pkg" / "sub" / "b.txt").write_text("b\n")
    return root


def run(ws: Path, patterns: tuple[str, ...] = ("//...",)) -> CachedAnalysis:
    """One command: load the stat cache, analyse (or reuse), save the stat cache."""
    ob = ws.parent / "ob"
    stat_cache = StatCache(ob / "stat_cache.json")
    try:
        return analyze_cached(ws, list(patterns), output_base=ob, stat_cache=stat_cache)
    finally:
        stat_cache.save()


def files(outcome: CachedAnalysis, label: str = "//pkg:all") -> tuple[str, ...]:
    return outcome.result.targets[label].files


def gen_argv(outcome: CachedAnalysis) -> str:
    (action,) = [a for a in outcome.result.actions if a.owner == "//pkg:gen"]
    return " ".join(action.argv)


def test_second_run_reuses_the_result(ws: Path) -> None:
    first = run(ws)
    assert not first.reused and first.reason == "no earlier analysis of this request"
    second = run(ws)
    assert second.reused and second.reason == ""
    assert second.result.actions == first.result.actions
    assert second.result.targets == first.result.targets
    assert files(second) == ("pkg/a.txt", "pkg/sub/b.txt")


def test_patterns_are_part_of_the_key(ws: Path) -> None:
    run(ws)
    other = run(ws, ("//pkg:gen",))
    assert not other.reused
    assert set(other.result.targets) == {"//pkg:gen"}
    assert run(ws, ("//pkg:gen",)).reused and run(ws).reused


def test_editing_a_build_file_reanalyses(ws: Path) -> None:
    run(ws)
    (ws / "pkg" / "BUILD").write_text(BUILD.replace('"**/*.txt"', '"*.txt"'))
    again = run(ws)
    assert not again.reused
    assert again.reason == f"content of {ws / 'pkg' / 'BUILD'} changed"
    assert files(again) == ("pkg/a.txt",)


def test_touching_without_changing_content_keeps_the_result(ws: Path) -> None:
    run(ws)
    (ws / "pkg" / "BUILD").write_text(BUILD)
    assert run(ws).reused


def test_a_new_file_matching_a_glob_reanalyses(ws: Path) -> None:
    run(ws)
    (ws / "pkg" / "sub" / "c.txt").write_text("c\n")
    again = run(ws)
    assert not again.reused
    assert again.reason == f"listing of directory {ws / 'pkg' / 'sub'} changed"
    assert files(again) == ("pkg/a.txt", "pkg/sub/b.txt", "pkg/sub/c.txt")


def test_a_new_build_file_splitting_a_glob_reanalyses(ws: Path) -> None:
    run(ws)
    (ws / "pkg" / "sub" / "BUILD").write_text('filegroup(name = "b", srcs = ["b.txt"])\n')
    again = run(ws)
    assert not again.reused
    assert files(again) == ("pkg/a.txt",)
    assert files(again, "//pkg/sub:b") == ("pkg/sub/b.txt",)


def test_changing_a_bzl_file_reanalyses(ws: Path) -> None:
    first = run(ws)
    assert "echo one" in gen_argv(first)
    (ws / "rules" / "defs.bzl").write_text('WORD = "three"\n')
    again = run(ws)
    assert not again.reused
    assert again.reason == f"content of {ws / 'rules' / 'defs.bzl'} changed"
    assert "echo three" in gen_argv(again)


def test_changing_the_workspace_reanalyses(ws: Path) -> None:
    assert run(ws).result.workspace_name == "cached"
    (ws / "WORKSPACE").write_text('workspace(name = "renamed")\n')
    again = run(ws)
    assert not again.reused
    assert again.result.workspace_name == "renamed"


def test_a_new_package_under_a_recursive_pattern_reanalyses(ws: Path) -> None:
    run(ws)
    (ws / "other").mkdir()
    (ws / "other" / "BUILD").write_text('filegroup(name = "o", srcs = [])\n')
    again = run(ws)
    assert not again.reused
    assert "//other:o" in again.result.targets


def test_a_damaged_entry_is_a_miss(ws: Path) -> None:
    run(ws)
    (entry,) = (ws.parent / "ob" / "analysis").iterdir()
    entry.write_bytes(b"not a pickle")
    again = run(ws)
    assert not again.reused and again.reason == "no earlier analysis of this request"
    assert run(ws).reused


def test_a_failed_analysis_is_not_stored(ws: Path) -> None:
    from strata.errors import UserError

    run(ws)
    (ws / "pkg" / "BUILD").write_text(BUILD + "filegroup(name = 'all')\n")
    with pytest.raises(UserError, match="declared twice"):
        run(ws)
    with pytest.raises(UserError, match="declared twice"):
        run(ws)


REPO_RULE = """def _impl(rctx):
    rctx.file("BUILD", 'filegroup(name = "f", srcs = ["x.txt"])\\n')
    rctx.file("x.txt", "x\\n")

gen_repo = repository_rule(implementation = _impl)
"""


def test_a_removed_fetched_repository_reanalyses_and_fetches_again(ws: Path) -> None:
    (ws / "rules" / "repo.bzl").write_text(REPO_RULE)
    (ws / "WORKSPACE").write_text('load("//rules:repo.bzl", "gen_repo")\ngen_repo(name = "gen")\n')
    first = run(ws, ("@gen//:f",))
    assert first.result.targets["@gen//:f"].files == ("external/gen/x.txt",)
    assert run(ws, ("@gen//:f",)).reused
    fetched = ws.parent / "ob" / "external" / "gen"
    shutil.rmtree(fetched)
    again = run(ws, ("@gen//:f",))
    assert not again.reused
    assert (fetched / "x.txt").is_file()


def test_a_noop_build_does_not_import_starlark(ws: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from strata.cli import main\n"
        f"rc = main(['build', '--output_base={ws.parent / 'ob'}', '//pkg:gen'])\n"
        "print(rc, 'starlark' in sys.modules)\n"
    )
    outs = [
        subprocess.run(
            [sys.executable, "-c", code], cwd=ws, capture_output=True, text=True, check=True
        ).stdout.splitlines()[-1]
        for _ in range(2)
    ]
    assert outs == ["0 True", "0 False"]
