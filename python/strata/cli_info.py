"""`strata info` and `strata help`, as `bazel info` and `bazel help` answer.

`strata info` prints `key: value` lines for every key, sorted; `strata info
KEY` prints only that value (several keys: `key: value` lines for those).
Keys are Bazel's where Bazel has them (`bazel-bin`, `execution_root`,
`output_base`, ...), with `strata-bin` and `strata-testlogs` beside
`bazel-bin` and `bazel-testlogs`, naming the same directories.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from strata import __version__
from strata.cli_usage import STARTUP_OPTIONS, commands, subparser
from strata.engine.outputbase import OutputBase
from strata.errors import UsageError


def info_values(base: OutputBase) -> dict[str, str]:
    """Every key of `strata info` for the output base `base`."""
    out = {
        "bazel-bin": str(base.bin),
        "bazel-genfiles": str(base.bin),
        "bazel-testlogs": str(base.testlogs),
        "execution_root": str(base.execroot),
        "output_base": str(base.root),
        "output_path": str(base.execroot / "bazel-out"),
        "release": f"strata {__version__}",
        "workspace": str(base.workspace),
    }
    out["strata-bin"] = out["bazel-bin"]
    out["strata-testlogs"] = out["bazel-testlogs"]
    return dict(sorted(out.items()))


def workspace_name(workspace: Path, output_base: Path) -> str:
    """The name `workspace(name = ...)` gives, as the execroot directory is named."""
    from strata.engine.analysis.analysis import Analysis

    return Analysis(workspace, output_base).workspace_name


def cmd_info(args: argparse.Namespace) -> int:
    from strata.cli_session import output_base
    from strata.engine.build import LOCK_WAIT_MESSAGE
    from strata.engine.outputbase import find_workspace

    base = output_base(args, find_workspace(Path.cwd()))
    with base.locked(on_wait=LOCK_WAIT_MESSAGE):
        name = workspace_name(base.workspace, base.root)
    values = info_values(OutputBase(base.root, base.workspace, name))
    unknown = [k for k in args.keys if k not in values]
    if unknown:
        raise UsageError("unknown key(s): " + ", ".join(f"'{k}'" for k in unknown))
    if len(args.keys) == 1:
        print(values[args.keys[0]])
        return 0
    for key in args.keys or values:
        print(f"{key}: {values[key]}")
    return 0


def cmd_help(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.parser
    topic = args.topic
    if topic is None:
        parser.print_help(sys.stdout)
    elif topic == "startup_options":
        print("Startup options, before the command (strata --output_base=DIR build ...):\n")
        for name, text in STARTUP_OPTIONS.items():
            print(f"  --{name}{'=DIR' if name != 'batch' else ''}\n      {text}")
    elif topic in commands(parser) and (sub := subparser(parser, topic)) is not None:
        sub.print_help(sys.stdout)
    else:
        raise UsageError(f"'{topic}' is not a known command")
    return 0
