"""Bazel's Starlark API for the embedded engine: the export table.

Every .bzl, BUILD and WORKSPACE module first runs a short per-module prelude
(see `loader.py`) that loads the names loaded below, and only those: the
engine reads them from this file's `load` statements, and a loaded name is
exported again (starlark-pyo3's dialect re-exports loads). The prelude also
defines each module's own `rule`, `repository_rule` and `Label`, because
those need to know which file they were called from.

Why Starlark and not Python: starlark-pyo3 cannot hand a Starlark function to
Python, so everything that holds user functions (rule implementations,
provider constructors, depsets with `to_list`, Args with `map_each`) lives in
these files. Python is reached only through `strata`, the one bridge object
(bridge.bzl), always with plain data.

One file a concept, as in Bazel's builtins_bzl:

    bridge.bzl          `strata`: the `_strata_*` hooks the engine registers
    providers.bzl       provider(), DefaultInfo, OutputGroupInfo; Targets
    depset.bzl          depset and its orders
    values.bzl          Label and File structs, plain data for Python, dir()
    attrs.bzl           attr.*, config.* (build settings), attribute schemas
    rule.bzl            rule() and repository_rule()
    args.bzl            ctx.actions.args()
    actions.bzl         ctx.actions
    ctx.bzl             ctx, runfiles, a dependency's Target
    analysis.bzl        analyze__: the analysis driver
    repository_ctx.bzl  run_repository_rule__: repository_ctx
    natives.bzl         BUILD and WORKSPACE functions, `native`

Names: `_name` is private to its file, as anywhere in Starlark; `name__` is
the engine's own, shared between these files or loaded by code the engine
generates (the prelude, and the drivers, which load `analyze__` and
`run_repository_rule__` from their files); the API users call has neither shape.
"""

load(":providers.bzl", "DefaultInfo", "OutputGroupInfo", "provider")
load(":depset.bzl", "depset")
load(":types.bzl", "type__")
load(":values.bzl", "dir__", "label_string__", "make_label__")
load(":attrs.bzl", "attr", "config")
load(":rule.bzl", "make_repository_rule__", "make_rule__")
load(
    ":natives.bzl",
    "alias",
    "bind",
    "config_setting",
    "existing_rule",
    "existing_rules",
    "exports_files",
    "filegroup",
    "genrule",
    "glob",
    "licenses",
    "local_repository",
    "native",
    "new_local_repository",
    "package",
    "package_group",
    "package_name",
    "py_binary",
    "register_execution_platforms",
    "register_toolchains",
    "repository_name",
    "select",
    "sh_binary",
    "sh_test",
    "workspace",
)
