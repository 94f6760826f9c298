"""Loading and analysis of configured values: labels as Bazel prints them, select() on
config_settings and build settings (flags, aliases), new_local_repository, ctx tools and
runfiles, and Starlark values Bazel's way."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from loaderkit import BIN, build, workspace
from strata.engine.analysis.analysis import analyze
from strata.engine.loading.build_settings import split_setting_flags
from strata.errors import UserError

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
    with pytest.raises(UserError, match=r"^p/BUILD:3:2: in r rule //p:y: attribute 'boom' is set"):
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


SETTING_RULES = """
Value = provider(fields = ["value"])

def _setting_impl(ctx):
    return Value(value = ctx.build_setting_value)  # one provider, not a list

flag = rule(implementation = _setting_impl, build_setting = config.string(flag = True))
switch = rule(implementation = _setting_impl, build_setting = config.bool(flag = True))
fixed = rule(implementation = _setting_impl, build_setting = config.int())

def _show_impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name + ".txt")
    ctx.actions.write(out, repr([d[Value].value for d in ctx.attr.deps]))
    return DefaultInfo(files = depset([out]))

show = rule(implementation = _show_impl, attrs = {"deps": attr.label_list()})
"""
SETTINGS_BUILD = """load("//defs:s.bzl", "fixed", "flag", "show", "switch")
flag(name = "color", build_setting_default = "red")
switch(name = "on", build_setting_default = False)
fixed(name = "n", build_setting_default = 2)
config_setting(name = "blue", flag_values = {":color": "blue"})
config_setting(name = "switched", flag_values = {":on": "1"})
show(name = "values", deps = [":color", ":on", ":n"])
genrule(name = "picked", outs = ["picked.txt"], cmd = "echo " + select({
    ":blue": "blue",
    "//conditions:default": "default",
}) + select({":switched": " on", "//conditions:default": " off"}) + " > $@")
genrule(name = "plain", outs = ["plain.txt"], cmd = "true")
"""


def _settings_build(ws: Path, *flags: str) -> dict[str, bytes | str]:
    """What //s:values writes and //s:picked runs, built with `flags`."""
    _, parsed = split_setting_flags(["build", *flags])
    result = analyze(
        ws, ["//s:values", "//s:picked"], output_base=ws.parent / "ob", setting_flags=parsed
    )
    by_mnemonic = {a.mnemonic: a for a in result.actions}
    return {
        "values": by_mnemonic["FileWrite"].content,
        "picked": by_mnemonic["Genrule"].argv[-1].split("; ", 1)[1],
    }


def test_build_settings_take_command_line_flags(tmp_path: Path) -> None:
    ws = workspace(
        tmp_path, {"defs/BUILD": "", "defs/s.bzl": SETTING_RULES, "s/BUILD": SETTINGS_BUILD}
    )
    assert _settings_build(ws) == {
        "values": b'["red", False, 2]',
        "picked": f"echo default off > {BIN}/s/picked.txt",
    }
    assert _settings_build(ws, "--//s:color=blue", "--//s:on") == {
        "values": b'["blue", True, 2]',
        "picked": f"echo blue on > {BIN}/s/picked.txt",
    }
    # the last occurrence wins; `no` and Bazel's boolean spellings
    assert _settings_build(ws, "--//s:on", "--no//s:on", "--//s:color=x")["values"] == (
        b'["x", False, 2]'
    )
    assert _settings_build(ws, "--//s:on=yes")["values"] == b'["red", True, 2]'


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--//s:plain=1", "--//s:plain: Unrecognized option: --//s:plain=1 (got a genrule target)"),
        (
            "--//s:n=3",
            "--//s:n: Unrecognized option: --//s:n=3 (got a build setting that is not a flag)",
        ),
        (
            "--//s:on=maybe",
            "--//s:on=maybe: While parsing option //s:on=maybe: 'maybe' is not a boolean",
        ),
        (
            "--no//s:color",
            "--//s:color: Illegal use of 'no' prefix on non-boolean option: //s:color",
        ),
        (
            "--//s:color",
            "--//s:color: While parsing option //s:color: a string setting needs a value",
        ),
        ("--//s:nope=1", "--//s:nope: Error loading option //s:nope: no such target '//s:nope'"),
    ],
)
def test_bad_build_setting_flags_are_named(tmp_path: Path, flag: str, message: str) -> None:
    ws = workspace(
        tmp_path, {"defs/BUILD": "", "defs/s.bzl": SETTING_RULES, "s/BUILD": SETTINGS_BUILD}
    )
    with pytest.raises(UserError) as err:
        _settings_build(ws, flag)
    assert str(err.value).startswith(message)


def test_select_key_may_be_an_alias_of_a_config_setting(tmp_path: Path) -> None:
    """skylib's selects.config_setting_group makes chains of aliases to config_settings."""
    ws = workspace(
        tmp_path,
        {
            "p/BUILD": 'config_setting(name = "k8", values = {"cpu": "k8"})\n'
            'config_setting(name = "opt", values = {"compilation_mode": "opt"})\n'
            'config_setting(name = "unstamped", values = {"stamp": "0"})\n'
            'alias(name = "is_k8", actual = ":k8")\n'
            'alias(name = "via", actual = select({":opt": ":opt", '
            '"//conditions:default": ":is_k8"}))\n'
            'alias(name = "is_opt", actual = ":opt")\n'
            'genrule(name = "g", outs = ["g"], cmd = select({":via": "echo a > $@", '
            '"//conditions:default": "echo b > $@"}))\n'
            'genrule(name = "h", outs = ["h"], cmd = select({":is_opt": "echo a > $@", '
            '":unstamped": "echo unstamped > $@"}))\n',
            "q/BUILD": 'alias(name = "loop1", actual = ":loop2")\n'
            'alias(name = "loop2", actual = ":loop1")\n'
            'genrule(name = "l", outs = ["l"], cmd = select({":loop1": "x"}))\n',
        },
    )
    (act,) = build(ws, "//p:g").actions
    want = "echo a" if os.uname().machine == "x86_64" else "echo b"
    assert act.argv[-1].endswith(f"{want} > {BIN}/p/g")
    (act,) = build(ws, "//p:h").actions
    assert act.argv[-1].endswith(f"echo unstamped > {BIN}/p/h")
    with pytest.raises(
        UserError,
        match=r"select\(\) key is an alias cycle \(got //q:loop1 -> //q:loop2 -> //q:loop1\)",
    ):
        build(ws, "//q:l")


CTX_RULES = """
def _tool_impl(ctx):
    exe = ctx.actions.declare_file(ctx.label.name + ".sh")
    ctx.actions.write(exe, "#!/bin/sh\\n", is_executable = True)
    return DefaultInfo(executable = exe, runfiles = ctx.runfiles(files = ctx.files.data))

tool = rule(
    implementation = _tool_impl,
    executable = True,
    attrs = {"data": attr.label_list(allow_files = True)},
)

def _use_impl(ctx):
    inputs, manifests = ctx.resolve_tools(tools = [ctx.attr.tool, ctx.attr.script])
    out = ctx.actions.declare_file(ctx.label.name + ".out")
    ctx.actions.run(
        outputs = [out],
        executable = ctx.executable.tool,
        tools = inputs,
        arguments = [out.path, ctx.expand_location("$(location run.sh)")],
        env = ctx.configuration.default_shell_env,
    )
    runfiles = ctx.runfiles(files = [out], collect_data = True)
    return [DefaultInfo(files = depset([out]), runfiles = runfiles)]

use = rule(implementation = _use_impl, attrs = {
    "tool": attr.label(executable = True, cfg = "host"),
    "script": attr.label(executable = True, allow_single_file = True, cfg = "host"),
    "data": attr.label_list(allow_files = True),
})
"""


def test_ctx_resolve_tools_configuration_and_collected_runfiles(tmp_path: Path) -> None:
    ws = workspace(
        tmp_path,
        {
            "defs/BUILD": "",
            "defs/c.bzl": CTX_RULES,
            "p/BUILD": 'load("//defs:c.bzl", "tool", "use")\n'
            'tool(name = "t", data = ["t.txt"])\n'
            'filegroup(name = "fg", srcs = ["a.txt"], data = ["b.txt"])\n'
            'use(name = "u", tool = ":t", script = "run.sh", data = [":fg", "c.txt"])\n',
            **{f"p/{n}": "" for n in ("t.txt", "a.txt", "b.txt", "c.txt", "run.sh")},
        },
    )
    result = build(ws, "//p:u")
    run = next(a for a in result.actions if a.mnemonic == "Action")
    host = "bazel-out/host/bin"
    assert run.argv == (f"{host}/p/t.sh", f"{BIN}/p/u.out", "p/run.sh")
    assert run.env == ()
    # the tool, its runfiles tree (as Bazel stages it) and the source script
    assert f"{host}/p/t.sh" in run.inputs and "p/run.sh" in run.inputs
    assert f"{host}/p/t.sh.runfiles/__main__/p/t.txt" in run.inputs
    # collect_data: the data attribute's runfiles (a filegroup's srcs and data, a file)
    assert result.targets["//p:u"].runfiles == ("p/a.txt", "p/b.txt", "p/c.txt", f"{BIN}/p/u.out")


def test_dir_of_a_struct_lists_to_json_but_the_method_is_missing(tmp_path: Path) -> None:
    """A difference from Bazel: structs have no to_json()/to_proto() methods in strata."""
    ws = workspace(
        tmp_path,
        {
            "p/defs.bzl": 'I = provider(fields = ["a"])\n'
            "NAMES = [dir(struct(b = 1, a = 2)), dir(I(a = 1)), dir(depset())]\n"
            "def call():\n    return struct(a = 1).to_json()\n",
            "p/BUILD": 'load(":defs.bzl", "NAMES", "call")\n'
            'genrule(name = "g", outs = ["g"], cmd = "echo %s > $@" % NAMES)\n'
            'genrule(name = "h", outs = ["h"], cmd = "true")\n',
            "q/BUILD": 'load("//p:defs.bzl", "call")\n'
            'genrule(name = "h", outs = ["h"], cmd = call())\n',
        },
    )
    (act,) = build(ws, "//p:g").actions
    names = '[["a", "b", "to_json", "to_proto"], ["a", "to_json", "to_proto"], ["to_list"]]'
    assert act.argv[-1].endswith(f"echo {names} > {BIN}/p/g")
    with pytest.raises(UserError, match=r"has no attribute `to_json`; .*use json.encode\(x\)"):
        build(ws, "//q:h")


def test_raw_strings_keep_a_backslash_before_a_quote(tmp_path: Path) -> None:
    ws = workspace(
        tmp_path,
        {
            "p/BUILD": 'genrule(name = "g", outs = ["g"], cmd = r"""echo \\"a\\" > $@""" + '
            'r\'\\\'\' + r"\\\\" + "\\"")\n',
        },
    )
    (act,) = build(ws, "//p:g").actions
    assert act.argv[-1].endswith(f'echo \\"a\\" > {BIN}/p/g\\\'\\\\"')


def test_select_is_a_plain_value_while_loading(tmp_path: Path) -> None:
    """A difference from Bazel: strata resolves select() at once, so a string can format
    it (Bazel refuses `"%s" % select(...)`: a select is not a string there)."""
    ws = workspace(
        tmp_path,
        {
            "p/BUILD": 'genrule(name = "g", outs = ["g"], cmd = "echo %s > $@" % '
            'select({"//conditions:default": "chosen"}))\n'
        },
    )
    (act,) = build(ws, "//p:g").actions
    assert act.argv[-1].endswith(f"echo chosen > {BIN}/p/g")


KEYED_RULE = """
def _impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name + ".txt")
    pairs = ctx.attr.named.items()
    ctx.actions.write(out, repr([(t[DefaultInfo].files.to_list()[0].path, v) for t, v in pairs]))
    return [DefaultInfo(files = depset([out]))]

keyed = rule(
    implementation = _impl,
    attrs = {"named": attr.label_keyed_string_dict(allow_files = True)},
)
"""


def test_label_keyed_string_dict_and_unchecked_visibility(tmp_path: Path) -> None:
    """Differences from Bazel: a label_keyed_string_dict value is an object with items(),
    keys() and values(), not a dict; and visibility is not checked."""
    ws = workspace(
        tmp_path,
        {
            "defs/BUILD": "",
            "defs/k.bzl": KEYED_RULE,
            "q/BUILD": 'filegroup(name = "secret", srcs = ["s.txt"], '
            'visibility = ["//visibility:private"])\n',
            "q/s.txt": "",
            "p/BUILD": 'load("//defs:k.bzl", "keyed")\n'
            'keyed(name = "k", named = {"//q:secret": "one"})\n',
        },
    )
    (act,) = build(ws, "//p:k").actions
    assert act.content == b'[("q/s.txt", "one")]'


def test_query_deps_of_a_genrule_lack_bazel_tools(tmp_path: Path) -> None:
    """A difference from Bazel: its deps() of a genrule also lists
    @bazel_tools//tools/genrule:genrule-setup.sh; strata's lists the attributes' targets."""
    ws = workspace(
        tmp_path,
        {"p/BUILD": 'genrule(name = "g", srcs = ["in.txt"], outs = ["g"], cmd = "cp $< $@")\n'},
    )
    (ws / "p" / "in.txt").write_text("")
    assert build(ws, "//p:g").transitive_deps("//p:g") == {"//p:g", "//p:in.txt"}
