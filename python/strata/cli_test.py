"""`strata test [TARGET...]`: build the targets, run the tests among them, as `bazel test`.

Everything the patterns name is built, as `strata build` builds it; the test
targets among them (`test = True` rules, `sh_test`; as with every target, one
tagged `manual` only when named, not through `//...` or `:all`) then run,
`--jobs` at a time, each as strata.engine.execution.test_runner runs it. What is
printed, and where, and the exit code are Bazel 4.2.3's: `FAIL: //pkg:t (see
.../test.log)` on stderr as a test fails; its output on stdout with
`--test_output=errors` (every test's with `all`; `streamed` is `all` one test
at a time); then the summary (strata.engine.execution.test_summary) on stdout.
Exit 0 when every test passed, 3 when one failed or timed out, 1 when the
build (or the analysis of a requested target, with `--keep_going`) failed,
4 when the patterns name no test.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
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
    reporter_for,
    top_level,
)
from strata.cli_usage import enum_option
from strata.errors import UsageError, UserError, format_error

EXIT_TESTS_FAILED = 3
EXIT_NO_TESTS = 4
_RULE = "=" * 80


def parse_test_timeout(text: str) -> tuple[int, ...]:
    """`--test_timeout=N` or `=S,M,L,E` (seconds), as Bazel reads it."""
    parts = text.split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) not in (1, 4) or any(v <= 0 for v in values):
        raise UsageError(
            f"While parsing option --test_timeout={text}: Invalid value: '{text}' "
            "(one positive number of seconds, or four separated by commas)"
        )
    return values


def add_test_command(sub: Any, add_common: Callable[..., None]) -> None:
    p = sub.add_parser("test", help="build targets and run the tests among them")
    p.add_argument("targets", nargs="*", metavar="TARGET")
    add_common(p, build=True)
    p.add_argument(
        "--test_output",
        type=enum_option("test_output", "test output", ("summary", "errors", "all", "streamed")),
        default="summary",
        help="summary (default), errors: output of failing tests, all: of every test",
    )
    p.add_argument("--test_filter", help="passed to the tests as TESTBRIDGE_TEST_ONLY")
    p.add_argument(
        "--test_env", action="append", default=[], help="NAME=value, or NAME to pass it through"
    )
    p.add_argument("--test_arg", action="append", default=[], help="one more test argument")
    p.add_argument(
        "--test_timeout",
        type=parse_test_timeout,
        default=(),
        help="seconds for every test, or four: short,moderate,long,eternal",
    )
    p.add_argument(
        "--cache_test_results",
        nargs="?",
        const="yes",
        type=_tristate,
        default="auto",
        help="auto (default): reuse passes while nothing changed; yes: failures too; no: never",
    )
    p.add_argument(
        "--nocache_test_results",
        dest="cache_test_results",
        action="store_const",
        const="no",
        help=argparse.SUPPRESS,
    )
    p.set_defaults(func=cmd_test)


def _tristate(text: str) -> str:
    value = {"1": "yes", "true": "yes", "0": "no", "false": "no"}.get(text.lower(), text.lower())
    return enum_option("cache_test_results", "tri-state", ("auto", "yes", "no"))(value)


def cmd_test(args: argparse.Namespace) -> int:
    from strata.engine.execution.test_runner import TestFlags

    no_flags_among(args.targets, "strata test")
    check_options(args)
    flags = TestFlags(
        test_filter=args.test_filter,
        test_env=tuple(args.test_env),
        test_args=tuple(args.test_arg),
        test_timeout=args.test_timeout,
        cache_test_results=args.cache_test_results,
    )
    if not args.targets:
        return _no_tests()
    with locked_output_base(args) as (base, stat_cache):
        base, result = analyze(args, args.targets, base, stat_cache)
        tests = {label: info for label, info in result.targets.items() if info.test is not None}
        others = [label for label in result.targets if label not in tests]
        failed, halted = _build(args, base, result, stat_cache)
        broken = _needing_failed(args, result, failed)
        for label in others:
            info = result.targets[label]
            if not halted and label not in broken and getattr(info, "executable", None):
                lay_out_runfiles(base, result, info)
        if not tests:
            return 1 if halted or _not_all(result) else _no_tests()
        results = _run_tests(args, base, result, stat_cache, flags, tests, broken, halted)
        base.link_convenience_symlink("strata-testlogs")
    from strata.engine.execution.test_summary import summary

    print("\n".join(summary(results)), flush=True)
    failed_build = halted is not None or any(r.status == "FAILED TO BUILD" for r in results)
    if _not_all(result) or failed_build:
        return 1
    return EXIT_TESTS_FAILED if any(r.status in ("FAILED", "TIMEOUT") for r in results) else 0


def _build(
    args: argparse.Namespace, base: Any, result: Any, stat_cache: Any
) -> tuple[set[str], UserError | None]:
    """Build every requested target (and the tests' runfiles); (failed actions, why the
    build stopped, or None when it went through or `--keep_going` carried on)."""
    from strata.engine.execution.scheduler import BuildFailed

    wanted = sorted({f for info in result.targets.values() for f in _test_files(args, info)})
    reporter = reporter_for(args)
    try:
        execute_wanted(args, base, result, wanted, stat_cache, reporter=reporter)
    except BuildFailed:
        return reporter.failed, None  # --keep_going: each failure was printed
    except UserError as err:
        if not reporter.failed:
            raise  # not an action's failure: the command's own error
        print(format_error(err), file=sys.stderr)
        return reporter.failed, err
    return reporter.failed, None


def _test_files(args: argparse.Namespace, info: Any) -> list[str]:
    """What `test` builds of a requested target: its `--output_groups` files, and a
    test's executable and runfiles."""

    exe = getattr(info, "executable", None)
    runfiles = getattr(info, "runfiles", ()) or ()
    return [*top_level(args, info).built, *runfiles, *([exe] if exe else [])]


def _needing_failed(args: argparse.Namespace, result: Any, failed: set[str]) -> set[str]:
    """The requested targets whose files or runfiles need an action that failed."""
    return needing_failed(result, failed, lambda _label, info: _test_files(args, info))


def _run_tests(
    args: argparse.Namespace,
    base: Any,
    result: Any,
    stat_cache: Any,
    flags: Any,
    tests: dict[str, Any],
    broken: set[str],
    halted: UserError | None,
) -> list[Any]:
    from strata.engine.analysis.runfiles import runfiles_entries
    from strata.engine.execution.sandbox import choose
    from strata.engine.execution.test_logs import FAILED_TO_BUILD, NO_STATUS
    from strata.engine.execution.test_runner import TestResult, TestRunner
    from strata.engine.execution.test_runner import TestTarget as Target
    from strata.engine.outputbase import bin_dir

    results: list[Any] = []
    targets: list[Any] = []
    for label, info in sorted(tests.items()):
        if label in broken:
            results.append(TestResult(label, FAILED_TO_BUILD))
        elif halted is not None:
            results.append(TestResult(label, NO_STATUS))
        else:
            tree = lay_out_runfiles(base, result, info)
            source = getattr(result, "source_path", None) or base.source_path
            files = sorted({*info.runfiles, info.executable})
            entries = runfiles_entries(files, base.workspace_name, bin_dir(), base.execroot, source)
            targets.append(Target(label, info.executable, info.test, tree, entries))
    if not targets:
        return results
    namespace, _why = choose(args.sandbox)  # the build warned already when there is none
    roots = tuple(getattr(result, "repo_roots", {}).values())
    runner = TestRunner(base, stat_cache, flags, namespace, roots)
    jobs = 1 if args.test_output == "streamed" else max(1, args.jobs)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(runner.run, t) for t in targets]
        for future in as_completed(futures):
            done = future.result()
            _report(args.test_output, done)
            results.append(done)
    return results


def _report(mode: str, r: Any) -> None:
    """What Bazel prints as a test ends: `FAIL` on stderr and, as --test_output asks, the
    test's output between two rules on stdout (a cached test's, after a `PASSED` line)."""
    failed = r.status in ("FAILED", "TIMEOUT")
    show = mode in ("all", "streamed") or (mode == "errors" and failed)
    if r.status == "TIMEOUT":
        print(f"\nTIMEOUT: {r.label} (Summary)\n      {r.log}", file=sys.stderr)
    elif failed:
        print(f"FAIL: {r.label} (see {r.log})", file=sys.stderr)
    if not show:
        return
    lines: list[str] = []
    if r.cached:
        lines += [f"{r.status}: {r.label} (see {r.log})", f"INFO: From Testing {r.label}"]
    else:
        print(f"INFO: From Testing {r.label}:", file=sys.stderr)
    sys.stderr.flush()
    lines.append(f"==================== Test output for {r.label}:")
    if r.output.strip():
        lines.append(r.output.rstrip("\n"))
    lines.append(_RULE)
    print("\n".join(lines), flush=True)


def _not_all(result: Any) -> int:
    """1 (and Bazel's line) when `--keep_going` left requested targets out of the analysis."""

    return not_all_analysed(result) if getattr(result, "errors", ()) else 0


def _no_tests() -> int:
    print("error: No test targets were found, yet testing was requested", file=sys.stderr)
    return EXIT_NO_TESTS
