"""Loading: WORKSPACE chunks, load(), glob, attribute checks, and their errors (select,
settings and labels: test_engine_loader_configured.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from loaderkit import BIN, build, workspace
from strata.engine.loading.loader import STRATA_ROOT
from strata.engine.loading.workspace_chunks import split_workspace
from strata.errors import UserError

ECHO_RULE = """
def _impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name + ".out")
    ctx.actions.write(out, ctx.attr.text)
    return [DefaultInfo(files = depset([out]))]

echo = rule(implementation = _impl, attrs = {
    "text": attr.string(),
    "n": attr.int(),
    "deps": attr.label_list(),
})
"""


def test_split_workspace_keeps_line_numbers() -> None:
    src = (
        'workspace(name = "w")\nlocal_repository(\n  name = "x",\n)\nload("@x//:a.bzl", "f")\nf()\n'
    )
    chunks = split_workspace(src)
    assert len(chunks) == 2
    assert chunks[1].splitlines()[4] == 'load("@x//:a.bzl", "f")'
    assert "".join(c.lstrip("\n") for c in chunks) == src


def test_glob_excludes_and_stops_at_subpackages(tmp_path: Path) -> None:
    ws = workspace(
        tmp_path,
        {
            "p/BUILD": 'filegroup(name = "g", srcs = glob(["**/*.txt"], exclude = ["x/skip.txt"]))',
            "p/a.txt": "",
            "p/x/b.txt": "",
            "p/x/skip.txt": "",
            "p/sub/BUILD": "",
            "p/sub/c.txt": "",
        },
    )
    assert build(ws, "//p:g").targets["//p:g"].files == ("p/a.txt", "p/x/b.txt")


def test_only_a_build_file_makes_a_subpackage_under_a_recursive_glob(tmp_path: Path) -> None:
    """A directory named BUILD or a dangling BUILD link is no package; BUILD.bazel is."""
    ws = workspace(
        tmp_path,
        {
            "p/BUILD": 'filegroup(name = "g", srcs = glob(["**/*.txt"]))',
            "p/d/BUILD/x.txt": "",
            "p/e/BUILD.bazel": "",
            "p/e/y.txt": "",
            "p/f/z.txt": "",
            "p/g/h/BUILD": "",
            "p/g/h/w.txt": "",
            "p/g/v.txt": "",
        },
    )
    (ws / "p" / "f" / "BUILD").symlink_to("nowhere")
    got = build(ws, "//p:g").targets["//p:g"].files
    assert got == ("p/d/BUILD/x.txt", "p/f/z.txt", "p/g/v.txt")


def test_load_relative_and_macro_package_name(tmp_path: Path) -> None:
    ws = workspace(
        tmp_path,
        {
            "defs/BUILD": "",
            "defs/echo.bzl": ECHO_RULE,
            "defs/macro.bzl": 'load(":echo.bzl", "echo")\n'
            "def m(name):\n    echo(name = name, text = native.package_name())\n",
            "p/q/BUILD": 'load("//defs:macro.bzl", "m")\nm(name = "x")\n',
        },
    )
    (act,) = build(ws, "//p/q:x").actions
    assert act.content == b"p/q"
    assert act.outputs == (f"{BIN}/p/q/x.out",)


def test_strata_repository_resolves_to_this_checkout(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"BUILD": ""})
    from strata.engine.analysis.analysis import Analysis

    assert Analysis(ws, tmp_path / "ob").loader.repo_root("strata") == STRATA_ROOT
    assert (STRATA_ROOT / "WORKSPACE").is_file()


def test_attribute_type_error_names_rule_attribute_and_type(tmp_path: Path) -> None:
    ws = workspace(
        tmp_path,
        {
            "defs/BUILD": "",
            "defs/echo.bzl": ECHO_RULE,
            "p/BUILD": 'load("//defs:echo.bzl", "echo")\n\necho(name = "x", n = "3")\n',
        },
    )
    with pytest.raises(UserError) as err:
        build(ws, "//p:x")
    text = str(err.value)
    assert text.startswith(
        "p/BUILD:3:1: //p:x: attribute 'n' of echo must be an integer (got '3' of type string)"
    )
    assert 'echo(name = "x", n = "3")' in text


def test_unknown_attribute_suggests(tmp_path: Path) -> None:
    ws = workspace(
        tmp_path,
        {
            "defs/BUILD": "",
            "defs/echo.bzl": ECHO_RULE,
            "p/BUILD": 'load("//defs:echo.bzl", "echo")\necho(name = "x", txt = "a")\n',
        },
    )
    with pytest.raises(
        UserError, match=r"echo rule has no attribute 'txt' .*did you mean 'text'\?"
    ):
        build(ws, "//p:x")


def test_starlark_error_keeps_span(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"p/BUILD": 'x = 1\ny = x + "a"\n'})
    with pytest.raises(UserError) as err:
        build(ws, "//p:all")
    assert str(err.value).startswith("p/BUILD:2:5: ")
    assert 'y = x + "a"' in str(err.value)


def test_fail_in_rule_implementation_has_span(tmp_path: Path) -> None:
    ws = workspace(
        tmp_path,
        {
            "defs/BUILD": "",
            "defs/bad.bzl": 'def _impl(ctx):\n    fail("bad value for x")\n'
            "bad = rule(implementation = _impl)\n",
            "p/BUILD": 'load("//defs:bad.bzl", "bad")\nbad(name = "b")\n',
        },
    )
    with pytest.raises(
        UserError, match=r"^p/BUILD:2:4: in bad rule //p:b: bad value for x\n  at defs/bad.bzl:2:5"
    ):
        build(ws, "//p:b")


def test_dependency_cycle_is_printed(tmp_path: Path) -> None:
    ws = workspace(
        tmp_path,
        {
            "defs/BUILD": "",
            "defs/echo.bzl": ECHO_RULE,
            "p/BUILD": 'load("//defs:echo.bzl", "echo")\n'
            'echo(name = "a", deps = [":b"])\necho(name = "b", deps = [":c"])\n'
            'echo(name = "c", deps = [":a"])\n',
        },
    )
    with pytest.raises(
        UserError, match=r"dependency cycle \(got //p:a -> //p:b -> //p:c -> //p:a\)"
    ):
        build(ws, "//p:a")


def test_load_cycle_is_printed(tmp_path: Path) -> None:
    ws = workspace(
        tmp_path,
        {
            "d/BUILD": "",
            "d/a.bzl": 'load(":b.bzl", "y")\nx = 1\n',
            "d/b.bzl": 'load(":a.bzl", "x")\ny = 1\n',
            "p/BUILD": 'load("//d:a.bzl", "x")\n',
        },
    )
    with pytest.raises(
        UserError, match=r"cycle in load\(\) statements \(got //d:a.bzl -> //d:b.bzl -> //d:a.bzl\)"
    ):
        build(ws, "//p:all")


def test_unknown_repository_suggests(tmp_path: Path) -> None:
    ws = workspace(
        tmp_path,
        {
            "WORKSPACE": 'local_repository(name = "tools_repo", path = "t")\n',
            "t/WORKSPACE": "",
            "t/BUILD": "",
            "p/BUILD": 'filegroup(name = "g", srcs = ["@tool_repo//:x"])\n',
        },
    )
    with pytest.raises(
        UserError, match=r"no such repository '@tool_repo'.*did you mean @tools_repo\?"
    ):
        build(ws, "//p:g")


def test_select_default_and_missing_default(tmp_path: Path) -> None:
    ws = workspace(
        tmp_path,
        {
            "p/BUILD": 'genrule(name = "g", outs = ["o"], '
            'cmd = select({"//conditions:default": "echo d > $@"}))\n',
            "q/BUILD": 'genrule(name = "h", outs = ["h"], '
            'cmd = select({"@platforms//os:windows": "x"}))\n',
        },
    )
    (act,) = build(ws, "//p:g").actions
    assert act.argv[-1].endswith(f"echo d > {BIN}/p/o")
    with pytest.raises(UserError, match=r"^q/BUILD:1:1: select\(\) has no condition matching"):
        build(ws, "//q:h")


def test_mandatory_and_unknown_make_variable(tmp_path: Path) -> None:
    ws = workspace(
        tmp_path,
        {
            "p/BUILD": 'genrule(name = "g", outs = ["o"], cmd = "echo $(FOO) > $@")\n',
            "q/BUILD": 'alias(name = "a")\n',
        },
    )
    with pytest.raises(UserError, match=r"unknown make variable \(got '\$\(FOO\)'"):
        build(ws, "//p:g")
    with pytest.raises(UserError, match=r"missing value for mandatory attribute 'actual' in alias"):
        build(ws, "//q:a")


def test_target_attribute_access_explains_provider_form(tmp_path: Path) -> None:
    ws = workspace(
        tmp_path,
        {
            "defs/BUILD": "",
            "defs/r.bzl": "def _impl(ctx):\n    return [DefaultInfo(files = ctx.attr.dep.files)]\n"
            'r = rule(implementation = _impl, attrs = {"dep": attr.label()})\n',
            "p/BUILD": 'load("//defs:r.bzl", "r")\nr(name = "x", dep = "f.txt")\n',
            "p/f.txt": "",
        },
    )
    with pytest.raises(
        UserError, match=r"^p/BUILD:2:2: in r rule //p:x: .*write dep\[DefaultInfo\].files"
    ):
        build(ws, "//p:x")


GLOB_FILES = [
    "a.txt",
    "b.md",
    "x/c.txt",
    "x/y/d.txt",
    "x/y/z/e.txt",
    "x/y/z/f.md",
    "w/x/y/g.txt",
    "deep/1/2/3/4/h.txt",
    "sub/i.txt",
    "sub/inner/j.txt",
    "k",
    "x/k",
]


def _reference_glob(root: Path, pattern: str) -> list[str]:
    """The whole-tree walk every glob used to make: match every file outside subpackages."""
    from strata.engine.loading.globbing import glob_regex
    from strata.engine.loading.targets import Package

    rx = glob_regex(pattern, Package.__new__(Package))
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [
            d
            for d in dirnames
            if not (Path(dirpath) / d / "BUILD").exists() and not (Path(dirpath) / d).is_symlink()
        ]
        for name in filenames:
            rel = (Path(dirpath) / name).relative_to(root).as_posix()
            if rx.match(rel):
                out.append(rel)
    return sorted(out)


@pytest.mark.parametrize(
    "pattern",
    [
        "**",
        "*.txt",
        "**/*.txt",
        "x/**",
        "x/*.txt",
        "x/*/d.txt",
        "x/y/**/*.txt",
        "*/y/*",
        "deep/1/**/h.txt",
        "sub/*.txt",
        "link/*",
        "x/y/z/e.txt",
        "nope/**",
        "k",
        "**/k",
        "a.txt/*",
    ],
)
def test_each_glob_walks_only_what_it_can_match_with_the_same_result(
    tmp_path: Path, pattern: str
) -> None:
    files = {f"p/{f}": "" for f in GLOB_FILES}
    body = f'filegroup(name = "g", srcs = glob([{pattern!r}], allow_empty = True))\n'
    ws = workspace(tmp_path, {**files, "p/BUILD": body, "p/sub/BUILD": ""})
    (ws / "p" / "link").symlink_to("x")  # a symlinked directory is not entered
    want = [f"p/{f}" for f in _reference_glob(ws / "p", pattern)]
    assert list(build(ws, "//p:g").targets["//p:g"].files) == want
