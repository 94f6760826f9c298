"""`--output_groups`: which of a requested target's files a build makes and prints, as Bazel does.

A target's files come in named groups: `default` (its `DefaultInfo` files),
the groups of its `OutputGroupInfo`, and groups Bazel adds itself, of which
strata has one: `_hidden_top_level_INTERNAL_`, the runfiles (and executable)
of a requested target. Bazel 4.2.3's rules for the flag
(`OutputGroupInfo.determineOutputGroups`), checked against the real thing:

* the flag takes comma-separated names and may be given several times; all
  its values form one list;
* if every name starts with `+` or `-`, they add to / remove from the default
  set (`default`, `temp_files_INTERNAL_`, `_hidden_top_level_INTERNAL_`);
  if any does not, the default set is dropped and the list is the set
  (`--output_groups=tarball` builds only the tarball, and no runfiles);
* `_validation` is always built (Bazel's `--run_validations`, on by default);
* groups are taken in sorted order; `Target //x up-to-date:` lists the
  generated files of the groups not starting with `_`, each once, in that
  order (source files are not listed), or says `(nothing to build)`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from strata.engine.analysis.graph import is_generated
from strata.engine.analysis.result import TargetInfo

DEFAULT = "default"
HIDDEN_TOP_LEVEL = "_hidden_top_level_INTERNAL_"
TEMP_FILES = "temp_files_INTERNAL_"
VALIDATION = "_validation"
DEFAULT_GROUPS = frozenset({DEFAULT, TEMP_FILES, HIDDEN_TOP_LEVEL})


def requested_groups(values: Sequence[str]) -> tuple[str, ...]:
    """The output groups `--output_groups` values ask for, sorted as Bazel sorts them."""
    names = [name for value in values for name in value.split(",") if name]
    current: set[str] = set()
    if all(name.startswith(("+", "-")) for name in names):
        current |= DEFAULT_GROUPS
    for name in names:
        if name.startswith("+"):
            current.add(name[1:])
        elif name.startswith("-"):
            current.discard(name[1:])
        else:
            current.add(name)
    current.add(VALIDATION)
    return tuple(sorted(current))


def group_files(info: TargetInfo, group: str) -> tuple[str, ...]:
    """The execroot paths of one of a target's output groups (empty if it has none)."""
    if group == DEFAULT:
        return info.files
    if group == HIDDEN_TOP_LEVEL:
        exe = (info.executable,) if info.executable else ()
        return (*info.runfiles, *exe)
    return info.output_groups.get(group, ())


@dataclass(frozen=True)
class TopLevelFiles:
    built: tuple[str, ...]
    """Every file the groups name: what the build makes."""
    shown: tuple[str, ...]
    """The generated files of the groups not starting with `_`: what the build lists."""


def top_level_files(info: TargetInfo, groups: Iterable[str]) -> TopLevelFiles:
    built: dict[str, None] = {}
    shown: dict[str, None] = {}
    for group in groups:
        files = group_files(info, group)
        built.update(dict.fromkeys(files))
        if not group.startswith("_"):
            shown.update(dict.fromkeys(f for f in files if is_generated(f)))
    return TopLevelFiles(tuple(built), tuple(shown))


def every_group_file(info: TargetInfo) -> list[str]:
    """The files of all of a target's groups: what analysis keeps actions for."""
    return [*info.files, *info.runfiles, *(f for fs in info.output_groups.values() for f in fs)]
