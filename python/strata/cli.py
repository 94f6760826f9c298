"""The `strata` command line.

This is the only place (with `actions/*` and the other `cli_*` modules) that
parses arguments, prints and chooses exit codes, Bazel's: a `UserError`
becomes one line on stderr and exit 1, a `UsageError` (a command-line
mistake, see cli_usage.py) one line and exit 2, a failed test exit 3, no test
to run exit 4; any other exception is a bug, shown with its traceback and
exit 37.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from strata import __version__
from strata.cli_usage import (
    Parser,
    Startup,
    enum_option,
    float_option,
    int_option,
    normalise_booleans,
    split_startup,
    subparser,
    unrecognized,
)
from strata.engine.redact import redact_text
from strata.errors import UsageError, UserError, environment_error, format_error

Command = Callable[[argparse.Namespace], int]


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"strata {__version__}")
    return 0


def _cmd_action(args: argparse.Namespace) -> int:
    from strata.actions import lookup
    from strata.actions.request import load_request

    fn = lookup(args.mnemonic)
    req, where = load_request(args.request)
    fn(req, where)
    return 0


def _cmd_pull_digest(args: argparse.Namespace) -> int:
    """Resolve REGISTRY/REPO:TAG to its digest and print a pull_image(...) to paste."""
    from strata.actions.registry_request import platform_from
    from strata.registry.client import Options, Registry, RegistryClient
    from strata.registry.prefetch import parse_remote_ref, pin, pull_image_snippet

    where = "strata pull-digest"
    ref = parse_remote_ref(args.image, where=where)
    plain = args.plain_http and "://" not in ref.registry
    host = "http://" + ref.registry if plain else ref.registry
    registry = Registry.parse(host, where=where)
    # Absolute: the printed pull_image(...) runs from the repository rule's directory.
    ca_file = os.path.abspath(args.ca_file) if args.ca_file else ""
    options = Options(tls_verify=args.tls_verify, ca_file=ca_file)
    platform = platform_from(
        {"architecture": args.arch, "os": args.os, "variant": args.variant}, where
    )
    pinned = pin(RegistryClient(registry, options, where=where), ref, platform, where)
    print(pull_image_snippet(pinned, registry, args.tls_verify, ca_file), end="")
    return 0


# -- build, run, query, clean ----------------------------------------------------

_BUILD_COMMANDS = ("build", "run", "test", "sbom", "query", "clean", "info")
_SETTING_COMMANDS = ("build", "run", "test", "sbom")
"""Commands that take build-setting flags (`--//pkg:flag=value`, `--no//pkg:flag`)."""


def _output_base(args: argparse.Namespace, workspace: Path) -> Any:
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


def _cwd_package(workspace: Path) -> str:
    rel = Path.cwd().resolve().relative_to(workspace)
    return "" if rel == Path(".") else rel.as_posix()


@contextlib.contextmanager
def _locked_output_base(args: argparse.Namespace) -> Iterator[tuple[Any, Any]]:
    """The output base, locked for the whole command, and its stat cache (saved at the end).

    Analysis and execution share one lock and one stat cache: analysis may fetch
    repositories into the output base, and its cache check stats the same files.
    """
    from strata.engine.build import LOCK_WAIT_MESSAGE
    from strata.engine.digests import StatCache
    from strata.engine.outputbase import find_workspace

    base = _output_base(args, find_workspace(Path.cwd()))
    with base.locked(on_wait=LOCK_WAIT_MESSAGE):
        stat_cache = StatCache(base.stat_cache_file)
        try:
            yield base, stat_cache
        finally:
            try:
                stat_cache.save()
            except OSError as e:  # a full disk must not hide the error on its way out
                print(
                    f"warning: cannot save {base.stat_cache_file} (got {e.strerror or e}); "
                    "the next build reads the sources again",
                    file=sys.stderr,
                )


def _analyze(
    args: argparse.Namespace, patterns: Sequence[str], base: Any, stat_cache: Any
) -> tuple[Any, Any]:
    """Load and analyse `patterns` (or reuse the stored analysis); returns (base, result)."""
    from strata.engine.analysis.analysis_cache import analyze_cached

    workspace = base.workspace
    outcome = analyze_cached(
        workspace,
        list(patterns),
        cwd_package=_cwd_package(workspace),
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


def _reporter(args: argparse.Namespace) -> Any:
    from strata.engine.execution.report import Reporter

    return Reporter(sys.stderr, explain=bool(getattr(args, "explain", False)))


def _execute(
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
    reporter = reporter or _reporter(args)
    graph = getattr(result, "graph", None) if actions is result.actions else None
    return execute(base, actions, wanted, config, reporter, stat_cache=stat_cache, graph=graph)


def _top_level(args: argparse.Namespace, info: Any) -> Any:
    """The files `--output_groups` asks of a requested target (built, and listed)."""
    from strata.engine.analysis.output_groups import requested_groups, top_level_files

    return top_level_files(info, requested_groups(getattr(args, "output_groups", None) or []))


def _lay_out_runfiles(base: Any, result: Any, info: Any) -> Path:
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


def _cmd_build(args: argparse.Namespace) -> int:
    if not args.targets:
        raise UserError(
            "no targets to build (got none); name one, e.g. strata build //pkg:target",
            where="strata build",
        )
    _no_flags_among(args.targets, "strata build")
    _check_options(args)  # a bad flag fails now, not after analysis
    with _locked_output_base(args) as (base, stat_cache):
        base, result = _analyze(args, args.targets, base, stat_cache)
        # The requested output groups: by default a target's files, and (Bazel's hidden
        # top-level group) its runfiles, and an executable's runfiles tree.
        top = {label: _top_level(args, info) for label, info in result.targets.items()}
        wanted = sorted({f for t in top.values() for f in t.built})
        _execute(args, base, result, wanted, stat_cache)
        for label, info in result.targets.items():
            exe = getattr(info, "executable", None)
            if exe and exe in top[label].built:
                _lay_out_runfiles(base, result, info)
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
    return _not_all_analysed(result)


def _cmd_sbom(args: argparse.Namespace) -> int:
    """Build the target's `sbom` output group and print a summary of each document."""
    from strata.cli_sbom import cyclonedx_files, print_summaries

    _no_flags_among([args.target], "strata sbom")
    args.output_groups = ["sbom"]
    _check_options(args)
    with _locked_output_base(args) as (base, stat_cache):
        base, result = _analyze(args, [args.target], base, stat_cache)
        if len(result.targets) != 1:
            raise UserError(
                f"names {len(result.targets)} targets (got {args.target!r}); name one image",
                where="strata sbom",
            )
        ((label, info),) = result.targets.items()
        built = sorted(_top_level(args, info).built)
        docs = cyclonedx_files(built, str(label))
        _execute(args, base, result, built, stat_cache)
        if _not_all_analysed(result):
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


def _no_flags_among(targets: list[str], where: str) -> None:
    """argparse takes an unknown `--flag=a b` (with a space) for a target; say it is a flag.

    Its text is redacted: a mistyped `--remote_header=Authorization: Bearer ...` is
    exactly such an argument."""
    for target in targets:
        if target.startswith("-"):
            raise unrecognized(target)


def _not_all_analysed(result: Any) -> int:
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


def _cmd_run(args: argparse.Namespace) -> int:
    _no_flags_among([args.target], "strata run")
    _check_options(args)  # a bad flag fails now, not after analysis
    with _locked_output_base(args) as (base, stat_cache):
        base, result = _analyze(args, [args.target], base, stat_cache)
        if getattr(result, "errors", ()):
            return _not_all_analysed(result)
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
        wanted = {*_top_level(args, info).built, *info.runfiles, executable}
        _execute(args, base, result, sorted(wanted), stat_cache)
        tree = _lay_out_runfiles(base, result, info)
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


def _cmd_query(args: argparse.Namespace) -> int:
    expr = args.expression.strip()
    deps = expr.startswith("deps(") and expr.endswith(")")
    pattern = expr[5:-1].strip() if deps else expr
    with _locked_output_base(args) as (base, stat_cache):
        _base, result = _analyze(args, [pattern], base, stat_cache)
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


def _cmd_clean(args: argparse.Namespace) -> int:
    from strata.engine.build import LOCK_WAIT_MESSAGE
    from strata.engine.outputbase import find_workspace

    base = _output_base(args, find_workspace(Path.cwd()))
    with base.locked(on_wait=LOCK_WAIT_MESSAGE):
        base.clean(expunge=args.expunge)
    return 0


def _add_common(p: argparse.ArgumentParser, *, build: bool) -> None:
    p.add_argument("--output_base", help="where outputs and state live (default ~/.cache/strata)")
    if not build:
        return
    p.add_argument(
        "--jobs",
        type=int_option("jobs", minimum=1),
        default=os.cpu_count() or 2,
        help="parallel actions (and tests)",
    )
    for name, helptext in (
        ("keep_going", "build as much as possible after a failure"),
        ("explain", "say why each action ran"),
        ("verbose_failures", "show the environment of failing actions and keep their sandbox"),
    ):
        p.add_argument(f"--{name}", action="store_true", default=False, help=helptext)
        p.add_argument(f"--no{name}", dest=name, action="store_false", help=argparse.SUPPRESS)
    p.add_argument("--disk_cache", help="directory of the local action cache")
    p.add_argument(
        "--output_groups",
        action="append",
        default=[],
        metavar="[+-]GROUP,...",
        help="output groups of the requested targets to build, as Bazel's flag: "
        "'+tarball' adds to the default set, '-default' removes, 'a,b' replaces it",
    )
    p.add_argument(
        "--workers",
        action="store_true",
        default=True,
        help="run strata's own actions in a preloaded worker process (default on)",
    )
    p.add_argument("--noworkers", dest="workers", action="store_false", help=argparse.SUPPRESS)
    p.add_argument(
        "--sandbox",
        type=enum_option("sandbox", "sandbox", ("auto", "namespace", "directory")),
        default="auto",
        help="namespace: actions run in bubblewrap (read-only host, private /tmp, no network), "
        "an error if it cannot run; directory: a directory of input links only; "
        "auto (default): namespace when bubblewrap works, else directory with a warning",
    )
    _add_remote_flags(p)


def _add_remote_flags(p: argparse.ArgumentParser) -> None:
    """Bazel's remote-cache flags, with Bazel's names and defaults (timeout, connections)."""
    p.add_argument("--remote_cache", help="http(s)://[user:pw@]host[:port][/prefix] cache server")
    for name, helptext in (
        ("remote_upload_local_results", "upload results of locally run actions (default on)"),
        ("remote_accept_cached", "use results found in the remote cache (default on)"),
    ):
        p.add_argument(f"--{name}", action="store_true", default=True, help=helptext)
        p.add_argument(f"--no{name}", dest=name, action="store_false", help=argparse.SUPPRESS)
    p.add_argument(
        "--remote_timeout",
        type=float_option("remote_timeout"),
        default=60.0,
        help="seconds per request",
    )
    p.add_argument(
        "--remote_header", action="append", default=[], help="Name=Value sent with every request"
    )
    p.add_argument(
        "--remote_max_connections",
        type=int_option("remote_max_connections", minimum=1),
        default=8,
        help="concurrent requests",
    )
    p.add_argument(
        "--modify_execution_info",
        help="REGEX=[+-]KEY,...: change execution info (tags) by mnemonic, as Bazel does; "
        "e.g. ImageAssemble=-no-remote-cache uploads image actions",
    )
    p.add_argument(
        "--action_keys",
        type=enum_option("action_keys", "action key scheme", ("strata", "reapi")),
        default="strata",
        help="reapi: key actions by their REAPI Action digest to share entries with Bazel",
    )


def _check_options(args: argparse.Namespace) -> None:
    """Check the flags argparse cannot (URLs, headers, modifiers): a mistake is exit 2.

    Sets `args.remote` (RemoteOptions or None) and `args.modifier`.
    """
    try:
        args.remote = _remote_options(args)
        args.modifier = None
        if getattr(args, "modify_execution_info", None):
            from strata.engine.cache.tiered import parse_execution_info_modifier

            args.modifier = parse_execution_info_modifier(args.modify_execution_info)
    except UsageError:
        raise
    except UserError as e:
        raise UsageError(e.detail, where=e.where) from None


def _remote_options(args: argparse.Namespace) -> Any:
    """The checked remote-cache options (None without --remote_cache); errors hide secrets."""
    if not getattr(args, "remote_cache", None):
        return None
    from strata.engine.cache.http import RemoteOptions, parse_remote_cache  # urllib3: when used
    from strata.engine.redact import redact_header

    headers = []
    for h in args.remote_header:
        name, eq, value = h.partition("=")
        if not eq or not name:
            raise UserError(
                f"--remote_header must be Name=Value (got {redact_header(h)!r}); "
                "write e.g. --remote_header=X-Token=SECRET",
                where="strata",
            )
        headers.append((name, value))
    parse_remote_cache(args.remote_cache, tuple(headers))
    return RemoteOptions(
        url=args.remote_cache,
        upload_local_results=args.remote_upload_local_results,
        accept_cached=args.remote_accept_cached,
        timeout=args.remote_timeout,
        headers=tuple(headers),
        max_connections=args.remote_max_connections,
    )


def _with_rc_args(argv: list[str]) -> list[str]:
    """Insert `.strata.rc`/`.bazelrc` defaults right after the command, before the user's flags."""
    from strata.engine.loading.rcfile import rc_args
    from strata.engine.outputbase import find_workspace

    command = argv[0] if argv else ""
    if command not in _BUILD_COMMANDS:
        return argv
    try:
        workspace = find_workspace(Path.cwd())
    except UserError:
        return argv
    return [command, *rc_args(workspace, command), *argv[1:]]


def _cmd_worker(args: argparse.Namespace) -> int:
    """The engine's action worker (strata.worker); not for people."""
    from strata import worker

    return worker.main(args.protocol)


def build_parser() -> argparse.ArgumentParser:
    from strata.cli_info import cmd_help, cmd_info
    from strata.cli_sbom import add_sbom_command
    from strata.cli_test import add_test_command

    parser = Parser(
        prog="strata",
        usage="strata [startup options] COMMAND [options] [arguments]",
        description=__doc__.splitlines()[0],
        epilog="Startup options: see 'strata help startup_options'.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", prog="strata")

    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=_cmd_version)

    p = sub.add_parser("help", help="print help: help [COMMAND | startup_options]")
    p.add_argument("topic", nargs="?", metavar="COMMAND")
    p.set_defaults(func=cmd_help)

    p = sub.add_parser("info", help="print where the workspace's state lives: info [KEY...]")
    p.add_argument("keys", nargs="*", metavar="KEY")
    _add_common(p, build=False)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("action", help="run one build action from a JSON request")
    p.add_argument("mnemonic")
    p.add_argument("request", help="@request.json")
    p.set_defaults(func=_cmd_action)

    p = sub.add_parser("worker")  # no help: not listed
    p.add_argument("--protocol", type=int, default=1)
    p.set_defaults(func=_cmd_worker)

    p = sub.add_parser("build", help="build targets")
    p.add_argument("targets", nargs="*", metavar="TARGET")
    _add_common(p, build=True)
    p.set_defaults(func=_cmd_build)

    p = sub.add_parser("run", help="build an executable target and run it: run TARGET -- ARGS")
    p.add_argument("target", metavar="TARGET")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS")
    _add_common(p, build=True)
    p.set_defaults(func=_cmd_run)

    add_test_command(sub, _add_common)
    add_sbom_command(sub, _add_common, _cmd_sbom)

    p = sub.add_parser("query", help="list targets matching a pattern, or deps(PATTERN)")
    p.add_argument("expression")
    _add_common(p, build=False)
    p.set_defaults(func=_cmd_query)

    p = sub.add_parser("clean", help="remove outputs (keeps the disk cache)")
    p.add_argument("--expunge", action="store_true", help="remove the whole output base")
    _add_common(p, build=False)
    p.set_defaults(func=_cmd_clean)

    p = sub.add_parser("pull-digest", help="pin REGISTRY/REPO:TAG: print a pull_image(...)")
    p.add_argument("image", metavar="REGISTRY/REPO:TAG")
    p.add_argument("--os", default="linux")
    p.add_argument("--arch", default="x86_64", help="architecture (x86_64, aarch64, arm64, ...)")
    p.add_argument("--variant", default="", help="e.g. v7 for 32-bit arm")
    p.add_argument("--plain-http", action="store_true", help="the registry speaks HTTP, not HTTPS")
    p.add_argument("--no-tls-verify", dest="tls_verify", action="store_false")
    p.add_argument("--ca-file", help="PEM file of CAs to trust for the registry")
    p.set_defaults(func=_cmd_pull_digest)
    return parser


EXIT_USAGE = 2
"""A command-line mistake (Bazel's exit code 2)."""
EXIT_BUG = 37
"""A bug in strata (Bazel's exit code 37, an internal error)."""


def parse_command_line(argv: Sequence[str]) -> argparse.Namespace:
    """`strata [startup options] COMMAND [options] [arguments]`, rc-file defaults included."""
    parser = build_parser()
    startup, words = split_startup(argv)
    words = _with_rc_args(words)
    setting_flags: tuple[Any, ...] = ()
    if words and words[0] in _SETTING_COMMANDS:
        from strata.engine.loading.build_settings import split_setting_flags

        words, setting_flags = split_setting_flags(words)
    sub = subparser(parser, words[0]) if words else None
    if sub is not None:
        words = [words[0], *normalise_booleans(sub, words[1:])]
    args, extra = parser.parse_known_args(words)
    for word in extra:
        if word.startswith("-"):
            raise unrecognized(word)
    if extra:
        raise UsageError(
            f"unexpected argument (got {redact_text(extra[0])!r}); see 'strata help {words[0]}'"
        )
    args.startup = startup
    args.parser = parser
    args.setting_flags = setting_flags
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_command_line(list(sys.argv[1:] if argv is None else argv))
    except UserError as e:
        print(format_error(e), file=sys.stderr)
        return EXIT_USAGE
    func: Command | None = getattr(args, "func", None)
    if func is None:
        args.parser.print_help(sys.stdout)
        return 0
    previous = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return func(args)
    except UsageError as e:
        print(format_error(e), file=sys.stderr)
        return EXIT_USAGE
    except UserError as e:
        print(format_error(e), file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        signum = e.signum if isinstance(e, Stopped) else signal.SIGINT
        name = signal.Signals(signum).name
        print(
            f"error: strata {args.command}: interrupted (got {name}); running actions were "
            "stopped and nothing half-written was kept: run it again to finish",
            file=sys.stderr,
        )
        return 128 + signum
    except BrokenPipeError:
        return 1
    except OSError as e:
        env = environment_error(e)
        if env is None:
            return _internal_error()
        print(format_error(env), file=sys.stderr)
        return 1
    except Exception:
        return _internal_error()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGINT, raised where the main thread is, so every `finally` on the way
    out runs: the scheduler kills the running actions and removes their sandboxes, the
    workers are closed, half-written files are deleted."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, _frame: object) -> None:
    # A second signal must not cut the clean-up short (kill -9 still can; the next
    # build then removes what is left, see strata.engine.leftovers).
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, signal.SIG_IGN)
    raise Stopped(signum)


def _internal_error() -> int:
    """A bug: the traceback of the exception being handled, and a line asking for a report."""
    traceback.print_exc()
    print(
        f"strata {__version__}: internal error (a bug in strata, not in your input); "
        "please report it with the traceback above",
        file=sys.stderr,
    )
    return EXIT_BUG
