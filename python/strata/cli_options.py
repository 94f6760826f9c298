"""The build commands' flags (Bazel's names and defaults), their checks, and rc-file defaults.

Shared by `strata build|run|test|sbom|query|clean|info` (cli.py, cli_build.py,
cli_test.py, cli_info.py). A flag argparse cannot check (a URL, a header, an
execution-info modifier) is checked by `check_options`, a mistake exit 2.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from strata.cli_usage import (
    enum_option,
    float_option,
    int_option,
)
from strata.errors import UsageError, UserError

BUILD_COMMANDS = ("build", "run", "test", "sbom", "query", "clean", "info")


SETTING_COMMANDS = ("build", "run", "test", "sbom")
"""Commands that take build-setting flags (`--//pkg:flag=value`, `--no//pkg:flag`)."""


def add_common(p: argparse.ArgumentParser, *, build: bool) -> None:
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
        "--profile",
        metavar="FILE",
        help="write a JSON trace of the build's phases and actions, as Bazel's flag does "
        "(chrome://tracing, Perfetto); a name ending in .gz is gzipped",
    )
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
    outputs = enum_option(
        "remote_download_outputs", "download mode", ("all", "toplevel", "minimal")
    )
    p.add_argument(
        "--remote_download_outputs",
        type=outputs,
        default="toplevel",
        help="which outputs of remote hits come down: toplevel (default) those asked for and "
        "those an action here reads; all every one; minimal only those an action here reads",
    )
    for mode in ("toplevel", "minimal"):
        p.add_argument(
            f"--remote_download_{mode}",
            dest="remote_download_outputs",
            action="store_const",
            const=mode,
            help=f"--remote_download_outputs={mode}",
        )
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


def check_options(args: argparse.Namespace) -> None:
    """Check the flags argparse cannot (URLs, headers, modifiers): a mistake is exit 2.

    Sets `args.remote` (RemoteOptions or None), `args.trace` (a TraceProfile for
    `--profile`, or None) and `args.modifier`.
    """
    try:
        args.remote = _remote_options(args)
        args.trace = _trace_profile(args)
        args.modifier = None
        if getattr(args, "modify_execution_info", None):
            from strata.engine.cache.tiered import parse_execution_info_modifier

            args.modifier = parse_execution_info_modifier(args.modify_execution_info)
    except UsageError:
        raise
    except UserError as e:
        raise UsageError(e.detail, where=e.where) from None


def _trace_profile(args: argparse.Namespace) -> Any:
    """`--profile`: a TraceProfile whose file can be written at the end, or None."""
    path = getattr(args, "profile", None)
    if not path:
        return None
    where = Path(path).resolve().parent
    if not where.is_dir():
        raise UserError(
            f"--profile names a file in a directory that does not exist (got {path}); "
            "create the directory or pick another path",
            where="strata",
        )
    from strata.engine.execution.trace_profile import TraceProfile

    args.profile = os.path.abspath(path)  # written at the end, wherever the command is then
    return TraceProfile()


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
        download_outputs=args.remote_download_outputs,
    )


def with_rc_args(argv: list[str]) -> list[str]:
    """Insert `.strata.rc`/`.bazelrc` defaults right after the command, before the user's flags."""
    from strata.engine.loading.rcfile import rc_args
    from strata.engine.outputbase import find_workspace

    command = argv[0] if argv else ""
    if command not in BUILD_COMMANDS:
        return argv
    try:
        workspace = find_workspace(Path.cwd())
    except UserError:
        return argv
    return [command, *rc_args(workspace, command), *argv[1:]]
