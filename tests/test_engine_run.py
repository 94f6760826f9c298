"""`strata run`: the runfiles tree of an executable, laid out as `bazel run` lays it out."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from strata.cli import main
from strata.engine.analysis.runfiles import lay_out, runfiles_paths

FIXTURES = Path(__file__).parent / "fixtures" / "engine"
BIN = "bazel-out/k8-fastbuild/bin"


def tree_listing(tree: Path) -> list[str]:
    """Every entry below `tree` (links not followed), relative, sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in dirnames + filenames:
            out.append((Path(dirpath) / name).relative_to(tree).as_posix())
    return sorted(out)


@pytest.fixture
def conformance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("conformance", "conformance_local", "conformance_new_local"):
        shutil.copytree(FIXTURES / name, tmp_path / name, symlinks=True)
    monkeypatch.chdir(tmp_path / "conformance")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "conformance"


RUN_LOCAL_TREE = [
    "MANIFEST",
    "conformance",
    "conformance/app",
    "conformance/app/input.txt",
    "conformance/app/run_local.sh",
    "conformance/external",
    "conformance/external/local_lib",
    "conformance/external/local_lib/message.txt",
    "conformance/external/local_lib/show",
    "conformance/external/local_lib/show.sh",
    "local_lib",
    "local_lib/message.txt",
    "local_lib/show",
    "local_lib/show.sh",
]


def test_run_a_local_repository_tool_through_runfiles(
    conformance: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "//app:run_local"]) == 0
    assert capfd.readouterr().out == "cwd: conformance\na message from @local_lib\ninput line\n"
    tree = conformance / "strata-bin" / "app" / "run_local.sh.runfiles"
    assert tree_listing(tree) == RUN_LOCAL_TREE
    local = (conformance.parent / "conformance_local").resolve()
    assert (tree / "local_lib" / "show.sh").resolve() == local / "show.sh"
    manifest = (tree / "MANIFEST").read_text().splitlines()
    assert f"local_lib/message.txt {local}/message.txt" in manifest
    files = [p for p in RUN_LOCAL_TREE if (tree / p).is_symlink()]
    assert [line.split(" ")[0] for line in manifest] == files
    assert (tree.parent / "run_local.sh.runfiles_manifest").read_text() == (
        tree / "MANIFEST"
    ).read_text()


def test_run_sets_bazel_run_environment_and_cwd(
    conformance: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (conformance / "app" / "env.sh").write_text(
        '#!/bin/sh\necho "$RUNFILES_DIR"\necho "$BUILD_WORKSPACE_DIRECTORY"\n'
        'echo "$BUILD_WORKING_DIRECTORY"\npwd\n'
    )
    (conformance / "app" / "env.sh").chmod(0o755)
    with (conformance / "app" / "BUILD").open("a") as f:
        f.write('\nscript(name = "env", src = "env.sh")\n')
    os.chdir(conformance / "lib")
    assert main(["run", "//app:env"]) == 0
    tree = (conformance / "strata-bin").resolve() / "app" / "env.runfiles"
    assert capfd.readouterr().out.splitlines() == [
        str(tree),
        str(conformance.resolve()),
        str((conformance / "lib").resolve()),
        str(tree / "conformance"),
    ]


def test_lay_out_replaces_stale_entries(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    for name in ("a", "b", "c"):
        (real / name).write_text(name)
    tree = tmp_path / "x.runfiles"
    lay_out(tree, {"ws/a": real / "a", "ws/sub/b": real / "b", "repo/c": real / "c"})
    (tree / "ws" / "junk").write_text("left over")
    lay_out(tree, {"ws/a": real / "b", "repo/c": real / "c"})
    assert tree_listing(tree) == ["MANIFEST", "repo", "repo/c", "ws", "ws/a"]
    assert (tree / "ws" / "a").read_text() == "b"
    assert (tree / "MANIFEST").read_text() == f"repo/c {real}/c\nws/a {real}/b\n"


def test_runfiles_paths_of_main_external_and_generated_files() -> None:
    assert runfiles_paths("pkg/f.txt", "ws", BIN) == ["ws/pkg/f.txt"]
    assert runfiles_paths(f"{BIN}/pkg/out", "ws", BIN) == ["ws/pkg/out"]
    assert runfiles_paths("external/r/f", "ws", BIN) == ["r/f", "ws/external/r/f"]
    assert runfiles_paths(f"{BIN}/external/r/o", "ws", BIN) == ["r/o", "ws/external/r/o"]


def test_query_deps_lists_the_transitive_closure(
    conformance: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["query", "deps(//app:run_local)"]) == 0
    assert capsys.readouterr().out.split() == [
        "//app:input.txt",
        "//app:run_local",
        "@local_lib//:message.txt",
        "@local_lib//:show",
        "@local_lib//:show.sh",
    ]


def test_keep_going_lays_out_the_trees_of_executables_that_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As Bazel 4.2.3 does (checked by hand): an action failing elsewhere does not keep a
    built executable from its runfiles tree; one whose runfiles need that action gets none."""
    ws = tmp_path / "ws"
    (ws / "pkg").mkdir(parents=True)
    (ws / "WORKSPACE").write_text('workspace(name = "w")\n')
    (ws / "pkg" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (ws / "pkg" / "run.sh").chmod(0o755)
    (ws / "pkg" / "BUILD").write_text(
        'genrule(name = "bad", outs = ["bad.txt"], cmd = "exit 1")\n'
        'genrule(name = "good", outs = ["good.txt"], cmd = "echo ok > $@")\n'
        'sh_binary(name = "fine", srcs = ["run.sh"], data = [":good"])\n'
        'sh_binary(name = "broken", srcs = ["run.sh"], data = [":bad"])\n'
    )
    monkeypatch.chdir(ws)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    argv = ["build", f"--output_base={tmp_path / 'ob'}", "--keep_going", "//pkg:all"]
    assert main(argv) == 1
    assert "build did not complete (got 1 failed actions)" in capsys.readouterr().err
    bin_pkg = tmp_path / "ob" / "execroot" / "w" / BIN / "pkg"
    assert (bin_pkg / "fine.runfiles" / "w" / "pkg" / "good.txt").read_text() == "ok\n"
    assert not (bin_pkg / "broken.runfiles").exists()
