"""The `strata` command line.

This is the only place (with `actions/*`) that parses arguments, prints and
chooses exit codes: a `UserError` becomes one line on stderr and exit 1; any
other exception is a bug, shown with its traceback and exit 2.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence

from strata import __version__
from strata.errors import UserError, format_error

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="strata", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=_cmd_version)

    p = sub.add_parser("action", help="run one build action from a JSON request")
    p.add_argument("mnemonic")
    p.add_argument("request", help="@request.json")
    p.set_defaults(func=_cmd_action)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 1
    try:
        return func(args)
    except UserError as e:
        print(format_error(e), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception:
        traceback.print_exc()
        print(
            f"strata {__version__}: internal error (a bug in strata, not in your input); "
            "please report it with the traceback above",
            file=sys.stderr,
        )
        return 2
