"""User-defined build settings: `rule(build_setting = config.*(...))` and their flags.

A build setting is a target whose rule declares `build_setting = config.bool(flag
= True)` (or int, string, string_list); its value is `build_setting_default`
unless the command line sets it: `--//pkg:flag=value`, `--//pkg:flag` and
`--no//pkg:flag` for a bool. The value reaches the setting's implementation as
`ctx.build_setting_value`, and `config_setting(flag_values = {...})` compares
against it. Values are parsed as Bazel 4.2.3 parses them (its boolean, integer
and comma-separated list converters), and its wording is kept for bad flags.
https://bazel.build/extending/config#user-defined-build-settings
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from strata.engine.loading.labels import Label
from strata.errors import UsageError

_FLAG = re.compile(r"^--(?P<no>no)?(?P<label>@[^/\s]*//\S*|//\S*)$")
_TRUE = ("true", "1", "yes", "t", "y")
_FALSE = ("false", "0", "no", "f", "n")


class OptionError(UsageError):
    """A bad build-setting flag: reported as the flag, wherever it was first needed; exit 2,
    as every mistake in a flag."""


@dataclass(frozen=True)
class SettingFlag:
    """One `--//pkg:flag[=value]` or `--no//pkg:flag` as written."""

    label: str
    value: str | None
    """The text after `=`; None for `--//pkg:flag` (true) and `--no//pkg:flag` (false)."""
    negated: bool = False

    def __str__(self) -> str:
        if self.value is not None:
            return f"--{self.label}={self.value}"
        return f"--{'no' if self.negated else ''}{self.label}"


def is_setting_flag(arg: str) -> bool:
    """Whether `arg` is `--//pkg:flag[=value]`, `--@repo//...` or `--no//pkg:flag`."""
    return _FLAG.match(arg.partition("=")[0]) is not None


def split_setting_flags(argv: Sequence[str]) -> tuple[list[str], tuple[SettingFlag, ...]]:
    """(the other arguments, the build-setting flags) of a command line; `--` ends flags."""
    rest: list[str] = []
    flags: list[SettingFlag] = []
    for i, arg in enumerate(argv):
        if arg == "--":
            rest.extend(argv[i:])
            break
        head, eq, value = arg.partition("=")
        m = _FLAG.match(head)
        if m is None:
            rest.append(arg)
            continue
        flags.append(
            SettingFlag(m.group("label"), value if eq else None, negated=bool(m.group("no")))
        )
    return rest, tuple(flags)


def convert(kind: str, text: str, option: str) -> Any:
    """`text` as a value of a `kind` build setting, or Bazel's complaint about `option`."""
    if kind == "bool":
        low = text.lower()
        if low in _TRUE or low in _FALSE:
            return low in _TRUE
        raise OptionError(
            f"While parsing option {option}: '{text}' is not a boolean (got {text!r}); "
            "use true or false",
            where=f"--{option}",
        )
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            raise OptionError(
                f"While parsing option {option}: '{text}' is not a int (got {text!r}); "
                "use an integer",
                where=f"--{option}",
            ) from None
    if kind == "string_list":
        return [] if text == "" else text.split(",")
    return text


class BuildSettings:
    """The command line's build-setting flags, checked against the targets they name."""

    def __init__(self, flags: Sequence[SettingFlag], canonical_repo: Callable[[str], str]) -> None:
        self.flags = tuple(flags)
        self._given: dict[str, SettingFlag] = {}
        for flag in self.flags:  # the last occurrence wins, as for any Bazel option
            lab = Label.parse(flag.label, where=f"--{flag.label}")
            lab = Label(canonical_repo(lab.repo), lab.package, lab.name)
            self._given[str(lab)] = flag
        self._values: dict[str, Any] = {}

    def labels(self) -> list[Label]:
        """The targets the flags name (to be checked with `check`)."""
        return [Label.parse(text) for text in self._given]

    def check(self, label: Label, kind: str, setting: dict[str, Any] | None) -> None:
        """Parse the flag naming `label` (a `kind` target, `setting` its rule's build_setting)."""
        flag = self._given[str(label)]
        if setting is None or not setting.get("flag"):
            what = "a build setting that is not a flag" if setting else f"a {kind} target"
            raise OptionError(
                f"Unrecognized option: {flag} (got {what}); only a rule with build_setting = "
                "config.*(flag = True) can be set on the command line",
                where=f"--{flag.label}",
            )
        if flag.value is None:
            if setting["type"] != "bool":
                if flag.negated:
                    raise OptionError(
                        f"Illegal use of 'no' prefix on non-boolean option: {flag.label} "
                        f"(got {flag}); write --{flag.label}=VALUE",
                        where=f"--{flag.label}",
                    )
                raise OptionError(
                    f"While parsing option {flag.label}: a {setting['type']} setting needs "
                    f"a value (got {flag}); write --{flag.label}=VALUE",
                    where=f"--{flag.label}",
                )
            self._values[str(label)] = not flag.negated
            return
        if flag.negated:
            raise OptionError(
                f"Illegal use of 'no' prefix with a value (got {flag}); write "
                f"--{flag.label}={flag.value}",
                where=f"--{flag.label}",
            )
        option = f"{flag.label}={flag.value}"
        self._values[str(label)] = convert(setting["type"], flag.value, option)

    def value(self, label: Label, kind: str, setting: dict[str, Any] | None, default: Any) -> Any:
        """The value of setting `label`: from the command line, else `default`."""
        key = str(label)
        if key in self._given and key not in self._values:
            self.check(label, kind, setting)
        return self._values.get(key, default)

    def key(self) -> list[str]:
        """The flags as written, for the analysis cache key."""
        return [str(f) for f in self.flags]
