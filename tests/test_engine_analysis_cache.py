"""The stored analysis is reused only while nothing analysis read has changed."""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest

from strata.engine import digests
from strata.engine.analysis import analysis_cache
from strata.engine.analysis.analysis_cache import CachedAnalysis, analyze_cached, engine_fingerprint
from strata.engine.digests import StatCache
from strata.engine.loading import reads

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
    stat_cache = StatCache(ob / "stat_cache")
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


# -- directory stamps ---------------------------------------------------------------


@pytest.fixture
def stamped(ws: Path, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """The workspace, old enough for its directory stamps to count; counts listings made."""
    monkeypatch.setattr(digests, "RACY_NS", 50_000_000)
    time.sleep(0.1)
    listed: Counter[str] = Counter()
    real = reads.list_dir

    def counted(path: str) -> list[tuple[str, str]]:
        listed[path] += 1
        return real(path)

    monkeypatch.setattr(reads, "list_dir", counted)
    return listed


def test_an_unchanged_directory_is_checked_by_its_stamp_alone(
    ws: Path, stamped: Counter[str]
) -> None:
    run(ws)
    stamped.clear()
    assert run(ws).reused
    assert stamped == Counter()


def test_a_new_file_in_a_stamped_directory_reanalyses(ws: Path, stamped: Counter[str]) -> None:
    run(ws)
    (ws / "pkg" / "sub" / "c.txt").write_text("c\n")
    again = run(ws)
    assert again.reason == f"listing of directory {ws / 'pkg' / 'sub'} changed"
    assert files(again) == ("pkg/a.txt", "pkg/sub/b.txt", "pkg/sub/c.txt")


def test_a_deleted_file_under_a_glob_reanalyses(ws: Path, stamped: Counter[str]) -> None:
    run(ws)
    (ws / "pkg" / "sub" / "b.txt").unlink()
    again = run(ws)
    assert again.reason == f"listing of directory {ws / 'pkg' / 'sub'} changed"
    assert files(again) == ("pkg/a.txt",)


def test_a_file_edited_in_place_keeps_the_analysis(ws: Path, stamped: Counter[str]) -> None:
    run(ws)
    (ws / "pkg" / "sub" / "b.txt").write_text("a longer b\n")  # content is not analysis's
    assert run(ws).reused


def test_a_file_replaced_by_a_directory_reanalyses(ws: Path, stamped: Counter[str]) -> None:
    (ws / "pkg" / "BUILD").write_text(BUILD + 'filegroup(name = "b", srcs = ["sub/b.txt"])\n')
    run(ws)
    (ws / "pkg" / "sub" / "b.txt").unlink()
    (ws / "pkg" / "sub" / "b.txt").mkdir()
    again = run(ws)
    assert not again.reused
    assert files(again) == ("pkg/a.txt",)


@pytest.mark.parametrize("first", ["dir", "file"])
def test_a_symlink_whose_target_changes_kind_reanalyses(
    ws: Path, stamped: Counter[str], tmp_path: Path, first: str
) -> None:
    target = tmp_path / "target.txt"
    if first == "dir":
        target.mkdir()
    else:
        target.write_text("a file\n")
    (ws / "pkg" / "sub" / "link.txt").symlink_to(target)
    time.sleep(0.1)
    with_link = ("pkg/a.txt", "pkg/sub/b.txt", "pkg/sub/link.txt")
    without = ("pkg/a.txt", "pkg/sub/b.txt")  # a link to a directory is not a file
    assert files(run(ws)) == (without if first == "dir" else with_link)
    if first == "dir":
        target.rmdir()
        target.write_text("now a file\n")
    else:
        target.unlink()
        target.mkdir()
    # pkg/sub itself did not change: its stamp cannot vouch for what its link points at
    again = run(ws)
    assert again.reason == f"listing of directory {ws / 'pkg' / 'sub'} changed"
    assert files(again) == (with_link if first == "dir" else without)


def test_a_new_name_beside_a_globs_literal_prefix_keeps_the_analysis(
    ws: Path, stamped: Counter[str]
) -> None:
    (ws / "BUILD").write_text('filegroup(name = "top", srcs = glob(["data/set/*.txt"]))\n')
    (ws / "data" / "set").mkdir(parents=True)
    (ws / "data" / "set" / "one.txt").write_text("1\n")
    time.sleep(0.1)
    assert files(run(ws, ("//:top",)), "//:top") == ("data/set/one.txt",)
    (ws / "strata-bin").symlink_to(ws.parent)  # what the first build leaves at the root
    (ws / "notes.md").write_text("")
    assert run(ws, ("//:top",)).reused
    (ws / "data").rename(ws / "moved")
    again = run(ws, ("//:top",))
    assert again.reason == f"existence of {ws / 'data'} changed"
    assert files(again, "//:top") == ()


def test_a_stamp_is_stored_only_once_the_directory_is_old_enough(
    ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed: Counter[str] = Counter()
    real = reads.list_dir
    monkeypatch.setattr(reads, "list_dir", lambda p: listed.update([p]) or real(p))
    run(ws)  # every directory was made just now: no stamp proves anything yet
    listed.clear()
    assert run(ws).reused
    assert listed[str(ws / "pkg" / "sub")] == 1  # listed again; same listing
    monkeypatch.setattr(digests, "RACY_NS", 0)  # as if the directories had aged
    assert run(ws).reused  # listed once more, and the stamp stored
    listed.clear()
    assert run(ws).reused
    assert listed == Counter()


def test_a_change_inside_a_directory_the_glob_excludes_keeps_the_analysis(
    ws: Path, stamped: Counter[str]
) -> None:
    excluding = 'glob(["**/*.txt"], exclude = ["**/__pycache__/**"])'
    (ws / "pkg" / "BUILD").write_text(BUILD.replace('glob(["**/*.txt"])', excluding))
    bytecode = ws / "pkg" / "sub" / "__pycache__"
    bytecode.mkdir()
    (bytecode / "old.txt").write_text("")
    time.sleep(0.1)
    assert files(run(ws, ("//pkg:all",))) == ("pkg/a.txt", "pkg/sub/b.txt")
    (bytecode / "new.txt").write_text("")  # as Python writes bytecode beside its sources
    stamped.clear()
    assert run(ws, ("//pkg:all",)).reused
    assert str(bytecode) not in stamped  # never listed: the walk does not enter it
    (ws / "pkg" / "sub" / "c.txt").write_text("")
    again = run(ws, ("//pkg:all",))
    assert again.reason == f"listing of directory {ws / 'pkg' / 'sub'} changed"
    assert files(again) == ("pkg/a.txt", "pkg/sub/b.txt", "pkg/sub/c.txt")


def test_only_the_most_recently_used_entries_are_kept(
    ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(analysis_cache, "KEEP_ENTRIES", 2)
    entries = ws.parent / "ob" / "analysis"
    run(ws, ("//pkg:all",))
    (first,) = entries.iterdir()
    run(ws, ("//pkg:gen",))
    old = time.time() - 60
    for entry in entries.iterdir():  # both written a minute ago
        os.utime(entry, (old, old))
    assert run(ws, ("//pkg:all",)).reused  # used now: the newest
    run(ws, ("//...",))  # a third request: the least recently used entry goes
    assert len(list(entries.iterdir())) == 2
    assert first.exists()
    assert run(ws, ("//pkg:all",)).reused
    assert not run(ws, ("//pkg:gen",)).reused


def test_every_builtins_file_is_part_of_the_engine_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rule API is Starlark in loading/builtins/: editing any of it edits the engine."""
    engine = tmp_path / "engine"
    shutil.copytree(
        analysis_cache._ENGINE_DIR, engine, ignore=shutil.ignore_patterns("__pycache__")
    )
    monkeypatch.setattr(analysis_cache, "_ENGINE_DIR", engine)
    stat_cache = StatCache(tmp_path / "stat_cache")
    before = engine_fingerprint(stat_cache)
    builtins = sorted((engine / "loading" / "builtins").glob("*.bzl"))
    assert {p.name for p in builtins} >= {"exports.bzl", "bridge.bzl", "ctx.bzl"}
    for path in builtins:
        text = path.read_text()
        path.write_text(text.replace('"""', '""" ', 1))
        assert engine_fingerprint(stat_cache) != before, path.name
        path.write_text(text)
    assert engine_fingerprint(stat_cache) == before
