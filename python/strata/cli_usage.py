"""Bazel's command-line shape, and its words for a mistake in one.

    strata [STARTUP OPTIONS] COMMAND [OPTIONS] [ARGUMENTS]

Startup options (`--output_base=DIR`, `--output_user_root=DIR`, `--batch`)
come before the command, as Bazel's do; `--output_base` is also taken after
the command, as strata always took it. Options are spelt in full (Bazel takes
no abbreviations, so neither does argparse here), booleans also as
`--flag=true|false|yes|no|1|0` and `--noflag`.

A mistake is one line and exit status 2 (`UsageError`), worded as Bazel
4.2.3 words it (checked against `bazel` itself):

    Command 'bulid' not found. Try 'strata help'.
    --jbos=2 :: Unrecognized option: --jbos=2
    While parsing option --jobs=many: 'many' is not an int
    While parsing option --keep_going=maybe: 'maybe' is not a boolean
    Expected value after --disk_cache
    Unknown startup option: '--foo'. For more info, run 'strata help startup_options'.

Text that may hold a credential (a mistyped `--remote_cache=http://user:pw@...`)
is redacted before it is quoted back.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from strata.engine.redact import redact_text
from strata.errors import UsageError

STARTUP_OPTIONS = {
    "output_base": "where outputs and state live (default ~/.cache/strata/<hash of the workspace>)",
    "output_user_root": "the default output base is DIR/<hash of the workspace>",
    "batch": "accepted for Bazel's sake; strata never keeps a server",
}
_STARTUP_VALUES = ("output_base", "output_user_root")
_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0")


@dataclass(frozen=True)
class Startup:
    output_base: str | None = None
    output_user_root: str | None = None


def split_startup(argv: Sequence[str]) -> tuple[Startup, list[str]]:
    """The startup options before the command, and the rest (command first)."""
    values: dict[str, str] = {}
    i = 0
    while i < len(argv) and argv[i].startswith("--") and argv[i] not in ("--help", "--version"):
        tok = argv[i]
        i += 1
        name, eq, value = tok[2:].partition("=")
        if name in _STARTUP_VALUES:
            if not eq:
                if i >= len(argv):
                    raise UsageError(f"Expected value after {tok}")
                value = argv[i]
                i += 1
            values[name] = value
        elif name not in ("batch", "nobatch") or eq:
            shown = redact_text(tok)
            raise UsageError(
                f"Unknown startup option: '{shown}'. "
                "For more info, run 'strata help startup_options'."
            )
    rest = list(argv[i:])
    if rest[:1] == ["--version"]:
        rest[0] = "version"
    return Startup(**values), rest


def unrecognized(token: str) -> UsageError:
    shown = redact_text(token)
    return UsageError(f"{shown} :: Unrecognized option: {shown}")


def bad_value(flag: str, value: str, what: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"While parsing option --{flag}={redact_text(value)}: {what}")


def int_option(flag: str, minimum: int | None = None) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise bad_value(flag, text, f"'{redact_text(text)}' is not an int") from None
        if minimum is not None and value < minimum:
            raise bad_value(flag, text, f"Value '{value}' must be at least {minimum}.")
        return value

    return convert


def float_option(flag: str) -> Callable[[str], float]:
    def convert(text: str) -> float:
        try:
            value = float(text.removesuffix("s"))
        except ValueError:
            value = -1.0
        if value <= 0:
            raise bad_value(flag, text, f"Illegal duration '{redact_text(text)}'.")
        return value

    return convert


def enum_option(flag: str, what: str, choices: Sequence[str]) -> Callable[[str], str]:
    """Bazel's enum converter: `Not a valid test output: 'x' (should be a, b or c)`."""

    def convert(text: str) -> str:
        if text in choices:
            return text
        should = ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]
        raise bad_value(
            flag, text, f"Not a valid {what}: '{redact_text(text)}' (should be {should})"
        )

    return convert


class Parser(argparse.ArgumentParser):
    """argparse with Bazel's rules: no abbreviations, one error line, exit 2 (`UsageError`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(_bazel_words(message, self.prog))


def _bazel_words(message: str, prog: str) -> str:
    m = re.match(r"argument COMMAND: invalid choice: '([^']*)'", message)
    if m:
        return f"Command '{redact_text(m[1])}' not found. Try 'strata help'."
    m = re.match(r"argument [^:]+: (While parsing option .*)", message, re.DOTALL)
    if m:
        return m[1]
    m = re.match(r"argument (--\w+)(?:/[^:]*)?: expected one argument", message)
    if m:
        return f"Expected value after {m[1]}"
    m = re.match(r"argument (--\w+)(?:/[^:]*)?: ignored explicit argument '(.*)'", message)
    if m:
        value = redact_text(m[2])
        return f"While parsing option {m[1]}={value}: '{value}' is not a boolean"
    command = prog.split(" ", 1)[1] if " " in prog else ""
    return f"{redact_text(message)}; see 'strata help{' ' + command if command else ''}'"


def subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found = action.choices.get(command)
            return found if isinstance(found, argparse.ArgumentParser) else None
    return None


def commands(parser: argparse.ArgumentParser) -> dict[str, str]:
    """{command: one-line help} of the commands `strata help` lists (hidden ones left out)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: a.help or "" for a in action._choices_actions}
    return {}


def normalise_booleans(sub: argparse.ArgumentParser, words: list[str]) -> list[str]:
    """`--flag=true|false|yes|no|1|0` of a boolean option as `--flag` / `--noflag` (Bazel's);
    an option whose value is optional (`--cache_test_results`) takes one only after `=`."""
    flags: set[str] = set()
    optional: dict[str, str] = {}
    for action in sub._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
            flags.update(o[2:] for o in longs)
        elif action.nargs == "?" and action.const is not None:
            optional.update((o, f"{o}={action.const}") for o in longs)
    out: list[str] = []
    for i, word in enumerate(words):
        if word == "--":
            return out + words[i:]
        if word in optional:
            out.append(optional[word])
            continue
        name, eq, value = word[2:].partition("=") if word.startswith("--") else ("", "", "")
        if eq and name in flags:
            if value.lower() in _TRUE:
                word = f"--{name}"
            elif value.lower() in _FALSE:
                word = f"--no{name}" if f"no{name}" in flags else f"--{name[2:]}"
            else:
                shown = redact_text(value)
                raise UsageError(
                    f"While parsing option --{name}={shown}: '{shown}' is not a boolean"
                )
        out.append(word)
    return out
