"""The builtins (engine/loading/builtins/*.bzl): the export table, the bridge, their errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from casekit import workspace
from strata.engine.analysis.analysis import Analysis, analyze
from strata.engine.loading.loader import BUILTINS_DIR
from strata.errors import UserError

API = [
    "provider",
    "DefaultInfo",
    "OutputGroupInfo",
    "depset",
    "select",
    "attr",
    "native",
    "package",
    "licenses",
    "package_group",
    "glob",
    "package_name",
    "repository_name",
    "exports_files",
    "genrule",
    "filegroup",
    "alias",
    "sh_binary",
    "sh_test",
    "py_binary",
    "config_setting",
    "existing_rules",
    "existing_rule",
    "workspace",
    "local_repository",
    "new_local_repository",
    "bind",
    "register_toolchains",
    "register_execution_platforms",
    "config",
    # the prelude's own, and what it wraps
    "rule",
    "repository_rule",
    "Label",
    "str",
    "dir",
    "make_rule__",
    "make_repository_rule__",
    "make_label__",
    "label_string__",
    "dir__",
]
"""Every name a module sees without a load(), as before the builtins were split."""


def test_every_module_sees_the_api_without_a_load(tmp_path: Path) -> None:
    names = "".join(f"    {name},\n" for name in API)
    ws = workspace(
        tmp_path / "ws",
        {
            "defs/BUILD": "",
            "defs/all.bzl": f"EVERY = [\n{names}]\n",
            "p/BUILD": f'load("//defs:all.bzl", "EVERY")\nHERE = [\n{names}]\n'
            'filegroup(name = "x")\n',
        },
    )
    assert "//p:x" in analyze(ws, ["//p:x"], output_base=tmp_path / "ob").targets


def test_the_bridge_holds_every_hook_the_engine_registers(tmp_path: Path) -> None:
    registered = Analysis(workspace(tmp_path / "ws", {}), tmp_path / "ob").loader.hooks
    bridge = (BUILTINS_DIR / "bridge.bzl").read_text()
    bridged = re.findall(r"^    (\w+)=(_strata_\w+),$", bridge, re.M)
    assert sorted(hook for _, hook in bridged) == sorted(registered)
    assert all(hook == f"_strata_{field}" for field, hook in bridged)


def test_no_builtins_file_is_over_400_lines_without_a_reason() -> None:
    """Small files, one a concept; a longer one says why in its docstring."""
    files = sorted(BUILTINS_DIR.glob("*.bzl"))
    assert len(files) > 1
    for path in files:
        text = path.read_text()
        assert text.startswith('"""'), f"{path.name}: no module docstring"
        assert text.count("\n") <= 400 or "over 400 lines" in text.split('"""')[1], path.name


def test_loading_an_unknown_builtins_file_is_an_error(tmp_path: Path) -> None:
    ws = workspace(tmp_path / "ws", {"p/BUILD": 'load("@strata_builtins__//:nope.bzl", "glob")\n'})
    with pytest.raises(UserError, match=r"no such builtins file \(got @strata_builtins__//:nope"):
        analyze(ws, ["//p:all"], output_base=tmp_path / "ob")


RULES = """
def _bad_order(ctx):
    return [DefaultInfo(files = depset([], order = "bad"))]

bad_order = rule(implementation = _bad_order)

def _files_list(ctx):
    return [DefaultInfo(files = [])]

files_list = rule(implementation = _files_list)

def _mixed_orders(ctx):
    pre = depset(order = "preorder")
    return [DefaultInfo(files = depset(order = "postorder", transitive = [pre]))]

mixed_orders = rule(implementation = _mixed_orders)

def _mixed_types(ctx):
    strings = depset(["a"])
    return [DefaultInfo(files = depset([1], transitive = [strings]))]

mixed_types = rule(implementation = _mixed_types)

def _mutable(ctx):
    return [DefaultInfo(files = depset([["a"]]))]

mutable = rule(implementation = _mutable)

def _a_string(ctx):
    return [DefaultInfo(files = depset("abc"))]

a_string = rule(implementation = _a_string)

def _symlink(ctx):
    ctx.actions.symlink(output = ctx.actions.declare_file("out"))
    return []

symlink = rule(implementation = _symlink)

def _no_package(ctx):
    native.package_name()

no_package = rule(implementation = _no_package)
"""


@pytest.mark.parametrize(
    ("kind", "line", "message"),
    [
        ("bad_order", 3, 'depset: unknown order (got "bad")'),  # depset.bzl
        ("files_list", 8, "DefaultInfo: 'files' must be a depset (got list)"),  # providers.bzl
        # depset.bzl, Bazel's message (postorder over preorder fails there too)
        ("mixed_orders", 14, "depset: Order 'postorder' is incompatible with order 'preorder'"),
        # Bazel's words too, each checked against Bazel 4.2.3
        ("mixed_types", 20, "depset: cannot add an item of type 'string' to a depset of 'int'"),
        ("mutable", 25, "depset: depset elements must not be mutable values"),
        ("a_string", 30, "depset: got value of type 'string', want depset or sequence"),
        ("symlink", 35, "ctx.actions.symlink: target_file is required"),  # actions.bzl
        ("no_package", 41, "package_name() can only be used while loading"),  # a hook's error
    ],
)
def test_an_error_inside_the_builtins_points_at_the_users_line(
    tmp_path: Path, kind: str, line: int, message: str
) -> None:
    ws = workspace(
        tmp_path / "ws",
        {
            "defs/BUILD": "",
            "defs/r.bzl": RULES,
            "p/BUILD": f'load("//defs:r.bzl", "{kind}")\n{kind}(name = "a")\n',
        },
    )
    with pytest.raises(UserError) as err:
        analyze(ws, ["//p:a"], output_base=tmp_path / "ob")
    text = str(err.value)
    assert text.startswith(f"p/BUILD:2:{len(kind) + 1}: in {kind} rule //p:a: {message}"), text
    assert f"\n  at defs/r.bzl:{line}:5\n" in text, text
    assert "<builtins" not in text
