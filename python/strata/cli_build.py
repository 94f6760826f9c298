"""`strata build`, `run`, `sbom`, `query` and `clean`, Bazel's commands of those names."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from strata.cli_options import check_options
from strata.cli_session import (
    analyze,
    execute_wanted,
    lay_out_runfiles,
    locked_output_base,
    needing_failed,
    no_flags_among,
    not_all_analysed,
    output_base,
    reporter_for,
    top_level,
)
from strata.errors import UserError


def cmd_build(args: argparse.Namespace) -> int:
    if not args.targets:
        raise UserError(
            "no targets to build (got none); name one, e.g. strata build //pkg:target",
            where="strata build",
        )
    no_flags_among(args.targets, "strata build")
    check_options(args)  # a bad flag fails now, not after analysis
    from strata.engine.execution.scheduler import BuildFailed

    with locked_output_base(args) as (base, stat_cache):
        base, result = analyze(args, args.targets, base, stat_cache)
        # The requested output groups: by default a target's files, and (Bazel's hidden
        # top-level group) its runfiles, and an executable's runfiles tree.
        top = {label: top_level(args, info) for label, info in result.targets.items()}
        wanted = sorted({f for t in top.values() for f in t.built})
        reporter = reporter_for(args)
        trees = [
            label
            for label, info in result.targets.items()
            if getattr(info, "executable", None) in top[label].built
        ]
        try:
            execute_wanted(args, base, result, wanted, stat_cache, reporter=reporter)
        except BuildFailed:
            # --keep_going: as Bazel, every executable whose files were built gets its tree
            broken = needing_failed(
                result, reporter.failed, lambda label, info: _built(top, label, info)
            )
            for label in trees:
                if label not in broken:
                    lay_out_runfiles(base, result, result.targets[label])
            raise
        for label in trees:
            lay_out_runfiles(base, result, result.targets[label])
    from strata.engine.outputbase import bin_dir

    prefix = bin_dir() + "/"
    link = base.workspace / "strata-bin"
    # where the link could not be made (a read-only workspace), the real place
    linked = link.is_symlink() and os.readlink(link) == str(base.bin)
    bin_shown = "strata-bin" if linked else str(base.bin)
    for label in sorted(result.targets, key=str):
        shown = [
            f"{bin_shown}/{f[len(prefix) :]}" if f.startswith(prefix) else f
            for f in top[label].shown
        ]
        # stderr, as Bazel does: stdout stays free for what targets print (`run`)
        if shown:
            print(
                f"Target {label} up-to-date:" + "".join(f"\n  {f}" for f in shown), file=sys.stderr
            )
        else:
            print(f"Target {label} up-to-date (nothing to build)", file=sys.stderr)
    return not_all_analysed(result)


def _built(top: dict[Any, Any], label: Any, info: Any) -> list[str]:
    """What a requested target's runfiles tree needs: its files and its runfiles."""
    return [*top[label].built, *(getattr(info, "runfiles", ()) or ())]


def cmd_sbom(args: argparse.Namespace) -> int:
    """Build the target's `sbom` output group and print a summary of each document."""
    from strata.cli_sbom import cyclonedx_files, print_summaries

    no_flags_among([args.target], "strata sbom")
    args.output_groups = ["sbom"]
    check_options(args)
    with locked_output_base(args) as (base, stat_cache):
        base, result = analyze(args, [args.target], base, stat_cache)
        if len(result.targets) != 1:
            raise UserError(
                f"names {len(result.targets)} targets (got {args.target!r}); name one image",
                where="strata sbom",
            )
        ((label, info),) = result.targets.items()
        built = sorted(top_level(args, info).built)
        docs = cyclonedx_files(built, str(label))
        execute_wanted(args, base, result, built, stat_cache)
        if not_all_analysed(result):
            return 1
    from strata.engine.outputbase import bin_dir

    prefix = bin_dir() + "/"
    link = base.workspace / "strata-bin"
    linked = link.is_symlink() and os.readlink(link) == str(base.bin)
    print_summaries(
        [
            (
                base.execroot / f,
                f"strata-bin/{f[len(prefix) :]}" if linked else str(base.execroot / f),
            )
            for f in docs
        ]
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    no_flags_among([args.target], "strata run")
    check_options(args)  # a bad flag fails now, not after analysis
    with locked_output_base(args) as (base, stat_cache):
        base, result = analyze(args, [args.target], base, stat_cache)
        if getattr(result, "errors", ()):
            return not_all_analysed(result)
        if len(result.targets) != 1:
            raise UserError(
                f"strata run needs exactly one target (got {len(result.targets)}); "
                "name a single executable target",
                where=args.target,
            )
        ((label, info),) = result.targets.items()
        executable = getattr(info, "executable", None)
        if not executable:
            raise UserError(
                "target is not executable (got a rule without executable = True); "
                "run a *_binary or a rule that sets executable = True",
                where=str(label),
            )
        # What the output groups ask for, and what running needs: the executable, its runfiles.
        wanted = {*top_level(args, info).built, *info.runfiles, executable}
        execute_wanted(args, base, result, sorted(wanted), stat_cache)
        tree = lay_out_runfiles(base, result, info)
        exe = base.execroot / executable
        cwd = tree / base.workspace_name
    env = {
        **os.environ,
        "RUNFILES_DIR": str(tree),
        "BUILD_WORKSPACE_DIRECTORY": str(base.workspace),
        "BUILD_WORKING_DIRECTORY": str(Path.cwd()),
    }
    sys.stdout.flush()
    sys.stderr.flush()
    extra = args.args[1:] if args.args[:1] == ["--"] else args.args
    return subprocess.run([str(exe), *extra], cwd=cwd, env=env).returncode


def cmd_query(args: argparse.Namespace) -> int:
    expr = args.expression.strip()
    deps = expr.startswith("deps(") and expr.endswith(")")
    pattern = expr[5:-1].strip() if deps else expr
    with locked_output_base(args) as (base, stat_cache):
        _base, result = analyze(args, [pattern], base, stat_cache)
    if not deps:
        labels = set(result.targets)
    else:
        labels = set()
        for label, info in result.targets.items():
            if hasattr(result, "transitive_deps"):
                labels.update(result.transitive_deps(label))
            else:
                labels.add(label)
                labels.update(getattr(info, "deps", ()) or ())
    for label in sorted(str(x) for x in labels):
        print(label)
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    from strata.engine.build import LOCK_WAIT_MESSAGE
    from strata.engine.outputbase import find_workspace

    base = output_base(args, find_workspace(Path.cwd()))
    with base.locked(on_wait=LOCK_WAIT_MESSAGE):
        base.clean(expunge=args.expunge)
    return 0
