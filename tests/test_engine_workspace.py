"""Repository rules: the client environment they see, and when they are fetched again."""

from __future__ import annotations

from pathlib import Path

import pytest

from strata.cli import main
from strata.engine.analysis.analysis import analyze
from strata.engine.analysis.analysis_cache import analyze_cached
from strata.engine.digests import StatCache
from strata.errors import UserError

REPO_BZL = """
def _impl(rctx):
    env = rctx.os.environ
    res = rctx.execute(
        ["/bin/sh", "-c", 'echo "$STRATA_T_UNDECLARED $STRATA_T_ARG ${STRATA_T_UNSET:-unset}"'],
        environment = {"STRATA_T_ARG": "from-argument"},
    )
    rctx.file("values.txt", "%s %s %s|%s" % (
        env["STRATA_T_DECLARED"],
        env.get("STRATA_T_UNDECLARED", "none"),
        "PATH" in env,
        res.stdout,
    ), executable = False)
    rctx.file("BUILD.bazel", 'exports_files(["values.txt"])\\n', executable = False)

env_repo = repository_rule(implementation = _impl, environ = ["STRATA_T_DECLARED"])
"""


def workspace(tmp_path: Path, build: str = "") -> Path:
    ws = tmp_path / "ws"
    (ws / "defs").mkdir(parents=True)
    (ws / "WORKSPACE").write_text(
        'workspace(name = "envtest")\n'
        'load("//defs:repo.bzl", "env_repo")\n'
        'env_repo(name = "envrepo")\n'
    )
    (ws / "defs" / "BUILD").write_text("")
    (ws / "defs" / "repo.bzl").write_text(REPO_BZL)
    (ws / "BUILD").write_text(build)
    return ws


def values(tmp_path: Path) -> str:
    return (tmp_path / "ob" / "external" / "envrepo" / "values.txt").read_text()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("STRATA_T_DECLARED", "d1")
    monkeypatch.setenv("STRATA_T_UNDECLARED", "u1")
    monkeypatch.delenv("STRATA_T_UNSET", raising=False)
    return monkeypatch


def test_repository_rule_sees_the_client_environment(tmp_path: Path, env: object) -> None:
    ws = workspace(tmp_path)
    analyze(ws, ["@envrepo//:values.txt"], output_base=tmp_path / "ob")
    assert values(tmp_path) == "d1 u1 True|u1 from-argument unset\n"


def test_only_declared_environ_variables_fetch_again(
    tmp_path: Path, env: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path)
    stat_cache = StatCache(tmp_path / "stat.json")

    def again() -> str:
        out = analyze_cached(
            ws, ["@envrepo//:values.txt"], output_base=tmp_path / "ob", stat_cache=stat_cache
        )
        return "reused" if out.reused else out.reason

    assert again() == "no earlier analysis of this request"
    assert values(tmp_path).startswith("d1 u1 ")
    env.setenv("STRATA_T_UNDECLARED", "u2")  # read, but not declared: Bazel keeps the repository
    assert again() == "reused"
    assert values(tmp_path).startswith("d1 u1 ")
    env.setenv("STRATA_T_DECLARED", "d2")
    assert again() == "environment variable STRATA_T_DECLARED changed"
    assert values(tmp_path).startswith("d2 u2 ")
    env.delenv("STRATA_T_DECLARED")
    with pytest.raises(
        UserError, match=r'^defs/repo.bzl:9:9: Key `"STRATA_T_DECLARED"` was not found'
    ):
        again()


def test_environ_must_be_a_list_of_names(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    (ws / "defs" / "repo.bzl").write_text(
        REPO_BZL.replace('environ = ["STRATA_T_DECLARED"]', 'environ = "HOME"')
    )
    with pytest.raises(
        UserError, match=r"@envrepo: repository_rule environ must be a list of variable names"
    ):
        analyze(ws, ["@envrepo//:values.txt"], output_base=tmp_path / "ob")


def test_actions_still_run_with_a_scrubbed_environment(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = workspace(
        tmp_path,
        'genrule(name = "g", srcs = ["@envrepo//:values.txt"], outs = ["env.txt"],\n'
        '        cmd = "cat $< > $@ && env | sort >> $@")\n',
    )
    env.chdir(ws)
    assert main(["build", f"--output_base={tmp_path / 'ob'}", "//:g"]) == 0
    lines = (ws / "strata-bin" / "env.txt").read_text().splitlines()
    assert lines[0] == "d1 u1 True|u1 from-argument unset"
    assert not [x for x in lines[1:] if x.startswith(("STRATA_T_", "HOME="))]
    assert "PATH=/bin:/usr/bin:/usr/local/bin" in lines  # genrule's, not the client's


NESTED_BZL = """
def _inner(rctx):
    rctx.file("BUILD.bazel", 'exports_files(["f.txt"])\\n', executable = False)
    rctx.file("f.txt", "inner", executable = False)

inner_repo = repository_rule(implementation = _inner)

def _outer(rctx):
    # The label's repository is fetched now, in the middle of this rule.
    inner = rctx.read(rctx.path(Label("@inner//:f.txt")))
    res = rctx.execute(["/bin/sh", "-c", "pwd"])
    rctx.file("values.txt", "%s|%s" % (inner, res.stdout), executable = False)
    rctx.file("BUILD.bazel", 'exports_files(["values.txt"])\\n', executable = False)

outer_repo = repository_rule(implementation = _outer)
"""


def test_a_fetch_inside_a_fetch_leaves_the_outer_rule_its_directory(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    (ws / "defs" / "repo.bzl").write_text(NESTED_BZL)
    (ws / "WORKSPACE").write_text(
        'workspace(name = "envtest")\n'
        'load("//defs:repo.bzl", "inner_repo", "outer_repo")\n'
        'outer_repo(name = "envrepo")\n'
        'inner_repo(name = "inner")\n'
    )
    analyze(ws, ["@envrepo//:values.txt"], output_base=tmp_path / "ob")
    assert values(tmp_path) == f"inner|{tmp_path / 'ob' / 'external' / 'envrepo'}\n"
