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
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from strata import __version__
from strata.cli_build import cmd_build, cmd_clean, cmd_query, cmd_run, cmd_sbom
from strata.cli_options import SETTING_COMMANDS, add_common, with_rc_args
from strata.cli_usage import (
    Parser,
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
    if args.persistent_worker:
        from strata.bazel_worker import serve

        _keep_parser(args)
        return serve(args.mnemonic, sys.stdin.buffer, sys.stdout.buffer, main)
    if args.request is None:
        raise UsageError(
            f"no request (got only {args.mnemonic!r}); run strata action MNEMONIC @request.json"
        )
    req, where = load_request(args.request)
    fn(req, where)
    return 0


def _cmd_pull_digest(args: argparse.Namespace) -> int:
    """Resolve REGISTRY/REPO:TAG to its digest and print a pull_image(...) to paste."""
    from strata.actions.registry_request import platform_from
    from strata.registry.client import RegistryClient
    from strata.registry.endpoint import Options, Registry
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


def _cmd_worker(args: argparse.Namespace) -> int:
    """The engine's action worker (strata.worker); not for people."""
    from strata import worker

    _keep_parser(args)

    return worker.main(args.protocol, main)


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
    add_common(p, build=False)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("action", help="run one build action from a JSON request")
    p.add_argument("mnemonic")
    p.add_argument("request", nargs="?", help="@request.json")
    p.add_argument(
        "--persistent_worker",
        action="store_true",
        help="serve Bazel's work requests for MNEMONIC on stdin (strata.bazel_worker)",
    )
    p.set_defaults(func=_cmd_action)

    p = sub.add_parser("worker")  # no help: not listed
    p.add_argument("--protocol", type=int, default=1)
    p.set_defaults(func=_cmd_worker)

    p = sub.add_parser("build", help="build targets")
    p.add_argument("targets", nargs="*", metavar="TARGET")
    add_common(p, build=True)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("run", help="build an executable target and run it: run TARGET -- ARGS")
    p.add_argument("target", metavar="TARGET")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS")
    add_common(p, build=True)
    p.set_defaults(func=cmd_run)

    add_test_command(sub, add_common)
    add_sbom_command(sub, add_common, cmd_sbom)

    p = sub.add_parser("query", help="list targets matching a pattern, or deps(PATTERN)")
    p.add_argument("expression")
    add_common(p, build=False)
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("clean", help="remove outputs (keeps the disk cache)")
    p.add_argument("--expunge", action="store_true", help="remove the whole output base")
    add_common(p, build=False)
    p.set_defaults(func=cmd_clean)

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


_WORKER_PARSER: argparse.ArgumentParser | None = None
"""In a worker, the parser that read its own command line, for the children it forks:
building the parser was 7 ms of a small action's 18 in each of them."""


def _keep_parser(args: argparse.Namespace) -> None:
    """A worker's children (forked, one per action) parse with this process's parser."""
    global _WORKER_PARSER
    _WORKER_PARSER = args.parser


def parse_command_line(argv: Sequence[str]) -> argparse.Namespace:
    """`strata [startup options] COMMAND [options] [arguments]`, rc-file defaults included."""
    parser = _WORKER_PARSER if _WORKER_PARSER is not None else build_parser()
    startup, words = split_startup(argv)
    words = with_rc_args(words)
    setting_flags: tuple[Any, ...] = ()
    if words and words[0] in SETTING_COMMANDS:
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
