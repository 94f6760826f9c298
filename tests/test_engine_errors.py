"""User mistakes in BUILD, .bzl and WORKSPACE files: one error line with a place, exit 1.

Each case is a small workspace given to `strata build`; the first stderr line
is checked by its text, and no case may print a traceback (exit 2).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from strata.cli import main

RULES = """
def _impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name + ".out")
    ctx.actions.write(out, ctx.attr.text)
    return [DefaultInfo(files = depset([out]))]

echo = rule(implementation = _impl, attrs = {
    "text": attr.string(),
    "deps": attr.label_list(allow_files = True),
    "n": attr.int(),
})

def _not_a_provider(ctx):
    return ["not a provider"]

not_a_provider = rule(implementation = _not_a_provider)

def _not_a_list(ctx):
    return 42

not_a_list = rule(implementation = _not_a_list)

def _unwritten(ctx):
    out = ctx.actions.declare_file(ctx.label.name + ".out")
    return [DefaultInfo(files = depset([out]))]

unwritten = rule(implementation = _unwritten)

def _no_executable(ctx):
    return []

no_executable = rule(implementation = _no_executable, executable = True)
"""
LOAD = (
    'load("//defs:r.bzl", "echo", "not_a_provider", "not_a_list", "unwritten", "no_executable")\n'
)

CASES = {
    "syntax error": (
        LOAD + 'echo(name = "a", text = "x"\necho(name = "b")\n',
        "//p:a",
        "error: p/BUILD:3:1: Parse error: unexpected identifier 'echo' here",
    ),
    "load of a missing .bzl": (
        'load("//defs:nope.bzl", "echo")\n',
        "//p:all",
        "error: p/BUILD:1:1: cannot load //defs:nope.bzl: file not found (got ",
    ),
    "load of a missing symbol": (
        'load("//defs:r.bzl", "ecko")\n',
        "//p:all",
        "error: p/BUILD:1:22: Module has no symbol `ecko`, did you mean `echo`?",
    ),
    "load from an unknown repository": (
        'load("@nope//defs:r.bzl", "echo")\n',
        "//p:all",
        "error: p/BUILD:1:1: no such repository '@nope' (got @nope//defs:r.bzl); "
        "declare it in WORKSPACE",
    ),
    "unknown attribute": (
        LOAD + 'echo(name = "a", txt = "x")\n',
        "//p:a",
        "error: p/BUILD:2:1: //p:a: echo rule has no attribute 'txt' (got txt = 'x'); "
        "did you mean 'text'?",
    ),
    "missing name": (
        LOAD + 'echo(text = "x")\n',
        "//p:all",
        "error: p/BUILD:2:1: echo: 'name' must be a non-empty string (got None); "
        'add name = "..."',
    ),
    "label to an unknown repository in an attribute": (
        LOAD + 'echo(name = "a")\necho(name = "b", deps = [":a", "@nope//x"])\n',
        "//p:a",  # //p:b is not even asked for: the BUILD line that names @nope is wrong
        "error: p/BUILD:3:1: //p:b: attribute 'deps': no such repository '@nope' "
        "(got @nope//x); declare it in WORKSPACE",
    ),
    "int attribute beyond 32 bits (as in Bazel)": (
        LOAD + 'echo(name = "a", n = 4294967296)\n',
        "//p:a",
        "error: p/BUILD:2:1: //p:a: attribute 'n' of echo must be in the signed 32-bit range "
        "(got 4294967296); use a number from -2147483648 to 2147483647",
    ),
    "label to a missing package": (
        LOAD + 'echo(name = "a", deps = ["//nope:x"])\n',
        "//p:a",
        "error: p/BUILD:2:5: in echo rule //p:a: no such package '//nope' (got //nope:x); "
        "add a BUILD file there or fix the label",
    ),
    "pattern without targets": (
        LOAD,
        "//nope/...",
        "error: //nope/...: no targets found beneath 'nope' (got //nope/...); check the directory",
    ),
    "pattern naming a missing package": (
        LOAD,
        "//nope:x",
        "error: //nope:x: no such package '//nope' (got //nope:x); "
        "add a BUILD file there or fix the label",
    ),
    "pattern with two colons": (
        LOAD + 'echo(name = "a")\n',
        "//p:a:b",
        "error: //p:a:b: invalid target name 'a:b' in label (got '//p:a:b'); "
        "target names may not contain ':'",
    ),
    "label with two colons": (
        LOAD + 'echo(name = "a", deps = [":x:y"])\n',
        "//p:a",
        "error: p/BUILD:2:1: //p:a: attribute 'deps': invalid target name 'x:y' in label",
    ),
    "dependency cycle": (
        LOAD + 'echo(name = "a", deps = [":b"])\necho(name = "b", deps = [":a"])\n',
        "//p:a",
        "error: p/BUILD:3:5: in echo rule //p:b: dependency cycle (got //p:a -> //p:b -> //p:a); "
        "remove one of these dependencies",
    ),
    "missing source file": (
        LOAD + 'echo(name = "a", deps = ["nofile.txt"])\n',
        "//p:a",
        "error: p/BUILD:2:5: in echo rule //p:a: no such target '//p:nofile.txt': target "
        "'nofile.txt' not declared in "
        "package 'p' (got //p:nofile.txt); declare it in p/BUILD, or create the source file "
        "p/nofile.txt",
    ),
    "implementation returns a non-provider": (
        LOAD + 'not_a_provider(name = "a")\n',
        "//p:a",
        "error: p/BUILD:2:15: in not_a_provider rule //p:a: rule implementation returned a "
        "non-provider (got string); "
        "return provider instances",
    ),
    "implementation returns a non-list": (
        LOAD + 'not_a_list(name = "a")\n',
        "//p:a",
        "error: p/BUILD:2:11: in not_a_list rule //p:a: rule implementation must return a "
        "provider or a list of providers (got int); "
        "return [DefaultInfo(...), ...]",
    ),
    "declared output without an action": (
        LOAD + 'unwritten(name = "a")\n',
        "//p:a",
        "error: p/BUILD:2:10: in unwritten rule //p:a: declared output p/a.out has no "
        "generating action",
    ),
    "executable rule that never writes its executable": (
        LOAD + 'no_executable(name = "a")\n',
        "//p:a",
        "error: p/BUILD:2:14: in no_executable rule //p:a: declared output p/a has no "
        "generating action",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_user_mistake_is_one_line_with_a_place(
    case: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    build, pattern, expected = CASES[case]
    ws = tmp_path / "ws"
    (ws / "p").mkdir(parents=True)
    (ws / "defs").mkdir()
    (ws / "WORKSPACE").write_text('workspace(name = "w")\n')
    (ws / "defs" / "BUILD").write_text("")
    (ws / "defs" / "r.bzl").write_text(RULES)
    (ws / "p" / "BUILD").write_text(build)
    monkeypatch.chdir(ws)
    assert main(["build", f"--output_base={tmp_path / 'ob'}", pattern]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[0].startswith(expected), err
    assert "<builtins" not in err


KEEP_GOING_RULES = """
def _ok(ctx):
    out = ctx.actions.declare_file(ctx.label.name + ".out")
    ctx.actions.write(out, "ok\\n")
    return [DefaultInfo(files = depset([out]))]

ok = rule(implementation = _ok, attrs = {"deps": attr.label_list()})

def _broken(ctx):
    fail("broken on purpose")

broken = rule(implementation = _broken)
"""

KEEP_GOING_BUILD = """load("//defs:r.bzl", "broken", "ok")
ok(name = "good")
broken(name = "bad")
ok(name = "needs_bad", deps = [":bad"])
"""


@pytest.mark.parametrize("keep_going", [True, False])
def test_keep_going_builds_the_targets_that_analysed(
    keep_going: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ws = tmp_path / "ws"
    (ws / "p").mkdir(parents=True)
    (ws / "defs").mkdir()
    (ws / "WORKSPACE").write_text("")
    (ws / "defs" / "BUILD").write_text("")
    (ws / "defs" / "r.bzl").write_text(KEEP_GOING_RULES)
    (ws / "p" / "BUILD").write_text(KEEP_GOING_BUILD)
    monkeypatch.chdir(ws / "p")
    flags = ["--keep_going"] if keep_going else []
    argv = ["build", f"--output_base={tmp_path / 'ob'}", *flags, "//p:good", ":bad", ":needs_bad"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    failing = [line for line in err.splitlines() if line.startswith("error: ")]
    bad = "error: p/BUILD:3:7: in broken rule //p:bad: broken on purpose"
    if keep_going:
        # One analysis error (//p:needs_bad is left out with it), the good target built.
        assert failing[0] == bad
        assert failing[1:] == [
            "error: strata build: command succeeded, but not all targets were analyzed "
            "(got 1 analysis errors); fix the errors reported above"
        ]
        assert (ws / "strata-bin" / "p" / "good.out").read_text() == "ok\n"
        assert "Target //p:good up-to-date:" in err
        assert "needs_bad" not in err
    else:
        assert failing == [bad]
        assert not (ws / "strata-bin" / "p" / "good.out").exists()
    assert not (ws / "strata-bin" / "p" / "needs_bad.out").exists()
