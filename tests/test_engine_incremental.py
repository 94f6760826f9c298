"""A build redoes exactly what changed: the whole CLI, real analysis, one command at a time.

Each command starts from what the last one left on disk (stored analysis,
stat cache, action records), as a new process does. Which actions ran is
read from `--explain`, which names every action it runs and why.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from strata.cli import main
from strata.engine import digests

BIN = "bazel-out/k8-fastbuild/bin"
DEFS = 'WORD = "one"\n'
BUILD = """load("//rules:defs.bzl", "WORD")

genrule(name = "cat", srcs = glob(["src/**/*.txt"]), outs = ["cat.out"], cmd = "cat $(SRCS) > $@")

genrule(name = "other", srcs = ["other.txt"], outs = ["other.out"], cmd = "cat $< > $@")

genrule(name = "word", outs = ["word.out"], cmd = "echo %s > $@" % WORD)
"""
TARGETS = ["//pkg:cat", "//pkg:other", "//pkg:word"]


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "ws"
    for d in ("rules", "pkg/src/a", "pkg/src/b"):
        (root / d).mkdir(parents=True)
    (root / "WORKSPACE").write_text('workspace(name = "incr")\n')
    (root / "rules" / "BUILD").write_text("")
    (root / "rules" / "defs.bzl").write_text(DEFS)
    (root / "pkg" / "BUILD").write_text(BUILD)
    (root / "pkg" / "src" / "a" / "x.txt").write_text("x\n")
    (root / "pkg" / "src" / "b" / "y.txt").write_text("y\n")
    (root / "pkg" / "other.txt").write_text("other\n")
    monkeypatch.chdir(root)
    # Directory stamps count once a directory is 50 ms old; the workspace is older.
    monkeypatch.setattr(digests, "RACY_NS", 50_000_000)
    time.sleep(0.1)
    return root


class Builds:
    def __init__(self, ws: Path, capfd: pytest.CaptureFixture[str]) -> None:
        self.ws = ws
        self.capfd = capfd
        self.output_base = ws.parent / "ob"

    def __call__(self, *flags: str) -> tuple[list[str], bool]:
        """One `strata build`: the owners of the actions that ran, and whether it analysed."""
        self.capfd.readouterr()
        args = ["build", f"--output_base={self.output_base}", "--explain", *flags, *TARGETS]
        assert main(args) == 0
        err = self.capfd.readouterr().err
        ran = sorted(re.findall(r"^explain: (//\S+) Genrule", err, re.M))
        m = re.search(r"(\d+) actions: (\d+) executed", err)
        assert m is not None and int(m.group(2)) == len(ran), err
        return ran, "strata: analysing:" in err

    def out(self, name: str) -> Path:
        return self.output_base / "execroot" / "incr" / BIN / "pkg" / name


@pytest.fixture
def build(ws: Path, capfd: pytest.CaptureFixture[str]) -> Builds:
    b = Builds(ws, capfd)
    assert b() == (TARGETS, True)
    return b


def test_the_first_noop_after_a_build_analyses_and_runs_nothing(build: Builds) -> None:
    assert (build.ws / "strata-bin").is_symlink()  # new at the root since the last analysis
    assert build() == ([], False)
    assert build() == ([], False)


def test_a_source_edited_in_place_reruns_its_consumer_alone(build: Builds) -> None:
    (build.ws / "pkg" / "src" / "a" / "x.txt").write_text("x, edited\n")
    assert build() == (["//pkg:cat"], False)
    assert build.out("cat.out").read_text() == "x, edited\ny\n"
    (build.ws / "pkg" / "other.txt").write_text("other, edited\n")
    assert build() == (["//pkg:other"], False)


def test_a_new_file_under_a_glob_reanalyses_and_reruns_its_consumer(build: Builds) -> None:
    (build.ws / "pkg" / "src" / "b" / "z.txt").write_text("z\n")
    assert build() == (["//pkg:cat"], True)
    assert build.out("cat.out").read_text() == "x\ny\nz\n"
    assert build() == ([], False)


def test_a_deleted_file_under_a_glob_reanalyses_and_reruns_its_consumer(build: Builds) -> None:
    (build.ws / "pkg" / "src" / "a" / "x.txt").unlink()
    assert build() == (["//pkg:cat"], True)
    assert build.out("cat.out").read_text() == "y\n"


def test_a_build_file_change_reruns_the_target_it_changed(build: Builds) -> None:
    (build.ws / "pkg" / "BUILD").write_text(BUILD.replace("cat $< > $@", "cat $< $< > $@"))
    assert build() == (["//pkg:other"], True)
    assert build.out("other.out").read_text() == "other\nother\n"


def test_a_bzl_change_reruns_the_targets_using_it(build: Builds) -> None:
    (build.ws / "rules" / "defs.bzl").write_text('WORD = "two"\n')
    assert build() == (["//pkg:word"], True)
    assert build.out("word.out").read_text() == "two\n"


def test_changed_execution_flags_rerun_nothing(build: Builds) -> None:
    flags = ("--sandbox=directory", "--noworkers", "--action_keys=reapi", "--jobs=1")
    assert build(*flags) == ([], False)
    (build.ws / "pkg" / "other.txt").write_text("other, edited\n")
    assert build(*flags) == (["//pkg:other"], False)


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_deleted_or_modified_output_comes_back_from_the_cache(build: Builds, how: str) -> None:
    out = build.out("cat.out")
    out.unlink()
    if how == "replaced":
        out.write_text("not what cat wrote\n")
    assert build() == ([], False)
    assert out.read_text() == "x\ny\n"


def test_a_changed_disk_cache_reruns_only_what_its_outputs_lack(build: Builds) -> None:
    other = build.ws.parent / "other-cache"
    assert build(f"--disk_cache={other}") == ([], False)  # outputs are current: no cache needed
    build.out("word.out").unlink()
    assert build(f"--disk_cache={other}") == (["//pkg:word"], False)
    shutil.rmtree(build.output_base / "cache")  # the default one, emptied
    os.utime(build.out("cat.out"), ns=(0, 0))  # an output's stamp no longer holds
    assert build() == (["//pkg:cat"], False)
    assert build.out("cat.out").read_text() == "x\ny\n"
