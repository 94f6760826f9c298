#!/usr/bin/env python3
"""Generate the engine benchmark workspace: 1,000 targets in 100 packages.

Each package `pkgNN` has ten targets of a small Starlark rule (a provider and a
depset through the deps, one write and one shell action each); target i
depends on target i-1 of its package and on the same target of the previous
package, so analysis walks real depsets. The same workspace builds with
`bazel build //...` and `strata build //...`.

    python3 tools/benchmarks/engine_gen.py OUT_DIR [--packages 100] [--targets 10]
"""

from __future__ import annotations

import argparse
from pathlib import Path

RULE = '''"""Benchmark rule: a provider, a depset, two actions."""

ChainInfo = provider(fields = {"files": "depset of Files"})

def _node_impl(ctx):
    own = ctx.actions.declare_file(ctx.label.name + ".txt")
    ctx.actions.write(own, ctx.attr.text + "\\n")
    deps = depset([own], transitive = [d[ChainInfo].files for d in ctx.attr.deps])
    out = ctx.actions.declare_file(ctx.label.name + ".sum")
    ctx.actions.run_shell(
        outputs = [out],
        inputs = [own] + [d[DefaultInfo].files.to_list()[0] for d in ctx.attr.deps],
        command = "cat %s | wc -c > %s" % (own.path, out.path),
        mnemonic = "BenchSum",
    )
    return [DefaultInfo(files = depset([out])), ChainInfo(files = deps)]

node = rule(
    implementation = _node_impl,
    attrs = {"text": attr.string(), "deps": attr.label_list(providers = [ChainInfo])},
)
'''


def generate(out: Path, packages: int, targets: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "WORKSPACE").write_text('workspace(name = "bench")\n')
    (out / "rules").mkdir(exist_ok=True)
    (out / "rules" / "BUILD").write_text("")
    (out / "rules" / "node.bzl").write_text(RULE)
    for p in range(packages):
        lines = [
            'load("//rules:node.bzl", "node")',
            "",
            'package(default_visibility = ["//visibility:public"])',
            "",
        ]
        for t in range(targets):
            deps = []
            if t:
                deps.append(f":t{t - 1}")
            if p:
                deps.append(f"//pkg{p - 1:03d}:t{t}")
            lines.append(f'node(name = "t{t}", text = "package {p} target {t}", deps = {deps!r})')
        pkg = out / f"pkg{p:03d}"
        pkg.mkdir(exist_ok=True)
        (pkg / "BUILD").write_text("\n".join(lines).replace("'", '"') + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--packages", type=int, default=100)
    parser.add_argument("--targets", type=int, default=10)
    args = parser.parse_args()
    generate(args.out, args.packages, args.targets)


if __name__ == "__main__":
    main()
