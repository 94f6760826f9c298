"""Loading: WORKSPACE chunks, load(), glob, select, attribute checks, and their errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from strata.engine.analysis import analyze
from strata.engine.loader import STRATA_ROOT, split_workspace
from strata.errors import UserError

BIN = "bazel-out/k8-fastbuild/bin"


def workspace(tmp_path: Path, files: dict[str, str]) -> Path:
    ws = tmp_path / "ws"
    for name, text in {"WORKSPACE": "", **files}.items():
        (ws / name).parent.mkdir(parents=True, exist_ok=True)
        (ws / name).write_text(text)
    return ws


def build(ws: Path, *patterns: str):  # type: ignore[no-untyped-def]
    return analyze(ws, list(patterns), output_base=ws.parent / "ob")


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
    from strata.engine.analysis import Analysis

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
    with pytest.raises(UserError, match=r"^defs/bad.bzl:2:5: .*bad value for x"):
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
    with pytest.raises(UserError, match=r"^defs/r.bzl:2:33: .*write dep\[DefaultInfo\].files"):
        build(ws, "//p:x")


LABEL_RULE = """
def _impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name + ".out")
    text = "str=%s fmt=%s pct=%s" % (str(ctx.label), "{}".format(ctx.label), ctx.label)
    ctx.actions.write(out, text)
    sh = ctx.actions.declare_file(ctx.label.name + ".sh")
    ctx.actions.run_shell(
        outputs = [sh],
        command = "echo %s > %s" % (ctx.label, sh.path),
        progress_message = "Building %s" % ctx.label,
        env = {"WHO": "%s" % Label("//p:other")},
    )
    if ctx.attr.boom:
        fail("%s: attribute 'boom' is set (got %s); unset it" % (ctx.label, ctx.label.name))
    return [DefaultInfo(files = depset([out, sh]))]

r = rule(implementation = _impl, attrs = {"boom": attr.bool(), "dep": attr.label()})
"""


def test_labels_print_as_bazel_prints_them(tmp_path: Path) -> None:
    ws = workspace(
        tmp_path,
        {
            "defs/BUILD": "",
            "defs/r.bzl": LABEL_RULE,
            "p/BUILD": 'load("//defs:r.bzl", "r")\nr(name = "x")\nr(name = "y", boom = True)\n',
        },
    )
    write, run = build(ws, "//p:x").actions
    assert write.content == b"str=//p:x fmt=//p:x pct=//p:x"
    assert run.argv[-1] == f"echo //p:x > {BIN}/p/x.sh"
    assert run.progress_message == "Building //p:x"
    assert dict(run.env) == {"WHO": "//p:other"}
    with pytest.raises(UserError, match=r"^defs/r.bzl:\d+:\d+: //p:y: attribute 'boom' is set"):
        build(ws, "//p:y")


LINUX_SETTING = "config_setting(name = 'linux', constraint_values = ['@platforms//os:linux'])\n"


def test_select_on_config_settings(tmp_path: Path) -> None:
    ws = workspace(
        tmp_path,
        {
            "conf/BUILD": 'config_setting(name = "k8", values = {"cpu": "k8"})\n'
            'config_setting(name = "k8_fast", values = {"cpu": "k8", '
            '"compilation_mode": "fastbuild"})\n'
            'config_setting(name = "opt", values = {"compilation_mode": "opt"})\n'
            'config_setting(name = "def", define_values = {"x": "1"})\n',
            "p/BUILD": LINUX_SETTING + 'genrule(name = "g", outs = ["o"], cmd = select({\n'
            '    "//conf:k8": "echo k8 > $@",\n'
            '    "//conf:k8_fast": "echo k8_fast > $@",\n'
            '    "//conf:opt": "echo opt > $@",\n'
            '    "//conf:def": "echo def > $@",\n'
            '    "//conditions:default": "echo default > $@",\n'
            "}))\n"
            'genrule(name = "h", outs = ["h"], cmd = select({":linux": "echo l > $@"}))\n',
            "q/BUILD": 'genrule(name = "late", outs = ["late"], cmd = select({":later": "x"}))\n'
            'config_setting(name = "later", values = {"cpu": "k8"})\n',
        },
    )
    (act,) = build(ws, "//p:g").actions
    assert act.argv[-1].endswith(f"echo k8_fast > {BIN}/p/o")
    (act,) = build(ws, "//p:h").actions
    assert act.argv[-1].endswith(f"echo l > {BIN}/p/h")
    with pytest.raises(UserError, match=r"config_setting //q:later is not declared before"):
        build(ws, "//q:late")


def test_select_ambiguous_config_settings(tmp_path: Path) -> None:
    ws = workspace(
        tmp_path,
        {
            "p/BUILD": 'config_setting(name = "linux", values = {"cpu": "k8"}, '
            'constraint_values = ["@platforms//os:linux"])\n'
            'config_setting(name = "k8", values = {"cpu": "k8"})\n'
            'genrule(name = "amb", outs = ["amb"], cmd = select({":linux": "a", ":k8": "b"}))\n',
        },
    )
    with pytest.raises(UserError, match=r"select\(\) matches more than one condition"):
        build(ws, "//p:amb")


def test_new_local_repository_with_build_file_content_and_build_file(tmp_path: Path) -> None:
    ws = workspace(
        tmp_path,
        {
            "WORKSPACE": 'new_local_repository(name = "a", path = "../dir", '
            'build_file_content = \'filegroup(name = "t", srcs = glob(["*.txt"]))\')\n'
            'new_local_repository(name = "b", path = "../dir", build_file = "//:dir.BUILD")\n',
            "BUILD": "",
            "dir.BUILD": 'filegroup(name = "one", srcs = ["one.txt"])\n',
        },
    )
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "one.txt").write_text("1\n")
    (tmp_path / "dir" / "two.txt").write_text("2\n")
    result = build(ws, "@a//:t", "@b//:one")
    assert result.targets["@a//:t"].files == ("external/a/one.txt", "external/a/two.txt")
    assert result.targets["@b//:one"].files == ("external/b/one.txt",)
    assert result.source_path("external/a/two.txt").read_text() == "2\n"
    (ws / "WORKSPACE").write_text('new_local_repository(name = "c", path = "../dir")\n')
    with pytest.raises(UserError, match=r"new_local_repository 'c': needs exactly one of"):
        build(ws, "@c//:x")


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
    from strata.engine.packages import Package, _glob_regex

    rx = _glob_regex(pattern, Package.__new__(Package))
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
