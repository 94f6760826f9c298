"""One command's session with the engine: output base and lock, analysis, execution.

What the commands that build (`strata build|run|test|sbom|query`) share:
the output base, locked for the whole command, with its stat cache; the
(reused) analysis of the patterns; the execution of the wanted files; the
requested output groups of a target; an executable's runfiles tree.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from strata.cli_usage import (
    Startup,
    unrecognized,
)
from strata.errors import UserError, format_error


def output_base(args: argparse.Namespace, workspace: Path) -> Any:
    from strata.engine.outputbase import OutputBase, default_output_base

    startup: Startup = getattr(args, "startup", None) or Startup()
    chosen = getattr(args, "output_base", None) or startup.output_base
    if chosen:
        root = Path(chosen).resolve()
    elif startup.output_user_root:
        root = default_output_base(workspace, Path(startup.output_user_root).resolve())
    else:
        root = default_output_base(workspace)
    return OutputBase(root, workspace, getattr(args, "workspace_name", "__main__"))


def cwd_package(workspace: Path) -> str:
    rel = Path.cwd().resolve().relative_to(workspace)
    return "" if rel == Path(".") else rel.as_posix()


@contextlib.contextmanager
def locked_output_base(args: argparse.Namespace) -> Iterator[tuple[Any, Any]]:
    """The output base, locked for the whole command, and its stat cache (saved at the end).

    Analysis and execution share one lock and one stat cache: analysis may fetch
    repositories into the output base, and its cache check stats the same files.
    """
    from strata.engine.build import LOCK_WAIT_MESSAGE
    from strata.engine.digests import StatCache
    from strata.engine.outputbase import find_workspace

    base = output_base(args, find_workspace(Path.cwd()))
    with base.locked(on_wait=LOCK_WAIT_MESSAGE):
        stat_cache = StatCache(base.stat_cache_file)
        try:
            yield base, stat_cache
        finally:
            _write_trace(args)
            try:
                stat_cache.save()
            except OSError as e:  # a full disk must not hide the error on its way out
                print(
                    f"warning: cannot save {base.stat_cache_file} (got {e.strerror or e}); "
                    "the next build reads the sources again",
                    file=sys.stderr,
                )


def _write_trace(args: argparse.Namespace) -> None:
    """`--profile`: the trace file, written even when the build failed (as Bazel does)."""
    trace = getattr(args, "trace", None)
    if trace is None:
        return
    from strata.fsutil import write_bytes_atomic

    path = args.profile
    try:
        write_bytes_atomic(path, trace.to_bytes(compress=path.endswith(".gz")), durable=False)
    except OSError as e:
        print(f"warning: cannot write --profile {path} (got {e.strerror or e})", file=sys.stderr)


def _phase(args: argparse.Namespace, name: str) -> contextlib.AbstractContextManager[None]:
    trace = getattr(args, "trace", None)
    return trace.phase(name) if trace is not None else contextlib.nullcontext()


def analyze(
    args: argparse.Namespace, patterns: Sequence[str], base: Any, stat_cache: Any
) -> tuple[Any, Any]:
    """Load and analyse `patterns` (or reuse the stored analysis); returns (base, result)."""
    from strata.engine.analysis.analysis_cache import analyze_cached

    workspace = base.workspace
    with _phase(args, "analysis"):
        outcome = analyze_cached(
            workspace,
            list(patterns),
            cwd_package=cwd_package(workspace),
            output_base=base.root,
            stat_cache=stat_cache,
            keep_going=bool(getattr(args, "keep_going", False)),
            setting_flags=getattr(args, "setting_flags", ()),
        )
    if getattr(args, "explain", False) and not outcome.reused:
        print(f"strata: analysing: {outcome.reason}", file=sys.stderr)
    result = outcome.result
    for error in getattr(result, "errors", ()):
        print(f"error: {error}", file=sys.stderr)
    name = getattr(result, "workspace_name", "") or base.workspace_name
    if name != base.workspace_name:
        base = type(base)(base.root, base.workspace, name)
    return base, result


def reporter_for(args: argparse.Namespace) -> Any:
    from strata.engine.execution.report import Reporter

    return Reporter(
        sys.stderr,
        explain=bool(getattr(args, "explain", False)),
        profile=getattr(args, "trace", None),
    )


def needing_failed(result: Any, failed: set[str], files_of: Any) -> set[str]:
    """The requested targets for which `files_of(label, info)` needs an action that
    failed (`failed`: `Reporter.failed`)."""
    from strata.engine.analysis.graph import build_graph
    from strata.engine.execution.report import action_identity

    if not failed:
        return set()
    graph = getattr(result, "graph", None) or build_graph(result.actions)
    return {
        label
        for label, info in result.targets.items()
        if any(
            action_identity(graph.actions[i]) in failed
            for i in graph.closure(files_of(label, info))
        )
    }


def execute_wanted(
    args: argparse.Namespace,
    base: Any,
    result: Any,
    wanted: list[str],
    stat_cache: Any,
    reporter: Any = None,
) -> Any:
    from strata.engine.build import ExecutionConfig, execute
    from strata.engine.execution.scheduler import BuildOptions

    options = BuildOptions(
        jobs=args.jobs,
        keep_going=args.keep_going,
        verbose_failures=args.verbose_failures,
        action_keys=args.action_keys,
        workers=args.workers,
        download_outputs=getattr(args, "remote_download_outputs", "all"),
    )
    config = ExecutionConfig(
        options,
        disk_cache=Path(args.disk_cache).resolve() if args.disk_cache else None,
        source_path=getattr(result, "source_path", None),
        repo_roots=tuple(getattr(result, "repo_roots", {}).values()),
        remote=args.remote,
        sandbox=args.sandbox,
    )
    actions = result.actions
    if getattr(args, "modifier", None) is not None:
        from strata.engine.cache.tiered import modify_execution_info

        actions = modify_execution_info(list(actions), args.modifier)
    reporter = reporter or reporter_for(args)
    graph = getattr(result, "graph", None) if actions is result.actions else None
    with _phase(args, "execution"):
        return execute(base, actions, wanted, config, reporter, stat_cache=stat_cache, graph=graph)


def top_level(args: argparse.Namespace, info: Any) -> Any:
    """The files `--output_groups` asks of a requested target (built, and listed)."""
    from strata.engine.analysis.output_groups import requested_groups, top_level_files

    return top_level_files(info, requested_groups(getattr(args, "output_groups", None) or []))


def lay_out_runfiles(base: Any, result: Any, info: Any) -> Path:
    from strata.engine.analysis.runfiles import lay_out_runfiles
    from strata.engine.outputbase import bin_dir

    return lay_out_runfiles(
        base.execroot,
        info.executable,
        getattr(info, "runfiles", ()) or (),
        base.workspace_name,
        bin_dir(),
        getattr(result, "source_path", None) or base.source_path,
    )


def no_flags_among(targets: list[str], where: str) -> None:
    """argparse takes an unknown `--flag=a b` (with a space) for a target; say it is a flag.

    Its text is redacted: a mistyped `--remote_header=Authorization: Bearer ...` is
    exactly such an argument."""
    for target in targets:
        if target.startswith("-"):
            raise unrecognized(target)


def not_all_analysed(result: Any) -> int:
    """1 after `--keep_going` left targets out (their errors were printed), as Bazel exits."""
    errors = getattr(result, "errors", ())
    if not errors:
        return 0
    err = UserError(
        f"command succeeded, but not all targets were analyzed (got {len(errors)} "
        "analysis errors); fix the errors reported above",
        where="strata build",
    )
    print(format_error(err), file=sys.stderr)
    return 1
