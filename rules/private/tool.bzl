"""The strata tool as an executable with runfiles (used by @strata_tools//:strata).

A Starlark rule rather than `sh_binary`: Bazel 4.2.3's `sh_binary` needs
`@rules_cc` for its launcher, which cannot be fetched offline.
"""

def _strata_tool_impl(ctx):
    exe = ctx.actions.declare_file(ctx.label.name)
    ctx.actions.expand_template(
        template = ctx.file.launcher,
        output = exe,
        substitutions = {},
        is_executable = True,
    )
    runfiles = ctx.runfiles(files = ctx.files.data)
    return [DefaultInfo(executable = exe, files = depset([exe]), runfiles = runfiles)]

strata_tool = rule(
    implementation = _strata_tool_impl,
    executable = True,
    doc = """The strata tool: a launcher script plus its runfiles (pinned packages and sources).

Made by `strata_dependencies()`; rules reach it through their `_strata` attribute:

```starlark
strata_tool(name = "strata", launcher = "strata.sh", data = [":site", "@strata//python:strata"])
```""",
    attrs = {
        "launcher": attr.label(
            allow_single_file = True,
            mandatory = True,
            doc = "The /bin/sh launcher that finds its runfiles and runs `python -m strata`.",
        ),
        "data": attr.label_list(
            allow_files = True,
            doc = "Files the launcher needs at run time, reachable through its runfiles.",
        ),
    },
)
