"""Target declarations and packages: what loading hands to analysis.

A `TargetDecl` is a target as a BUILD file declared it, its attributes checked
and its labels canonical; a `Package` holds one BUILD file's declarations and
the source files found in it so far.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strata.engine.loading.labels import Label
from strata.engine.loading.loader import RuleSchema
from strata.errors import UserError

BUILD_NAMES = ("BUILD.bazel", "BUILD")


class NoSuchTarget(UserError):
    """A label names no package or no target; the referring target can be named by the caller."""


@dataclass(frozen=True, slots=True)
class TargetDecl:
    """A target as loading left it: checked attributes, labels canonical."""

    label: Label
    kind: str
    """Rule name (`genrule`, `my_rule`), or `source file` / `generated file`."""
    schema: RuleSchema | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    generator: Label | None = None
    """For a generated file: the rule that outputs it."""
    called_at: str = ""
    """For a rule: `file:line` of the BUILD statement that declared it (through macros)."""

    def deps(self) -> list[Label]:
        """Labels this target depends on (through label-typed attributes)."""
        out: list[Label] = []
        for name, kind in self.types.items():
            value = self.attrs.get(name)
            if value is None:
                continue
            if kind == "label":
                out.append(value)
            elif kind == "label_list":
                out.extend(value)
            elif kind == "label_keyed_string_dict":
                out.extend(k for k, _ in value)
        if self.generator is not None:
            out.append(self.generator)
        return out


@dataclass
class Package:
    repo: str
    name: str
    directory: Path
    build_file: str
    rules: dict[str, TargetDecl] = field(default_factory=dict)
    outputs: dict[str, Label] = field(default_factory=dict)
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: dict[str, TargetDecl] = field(default_factory=dict)
    """Source files found so far, by name."""
    listed: set[str] = field(default_factory=set)
    """Names `glob` found in the package's own directories: they exist (the listing is
    recorded for the analysis cache) and need no `stat` to become source files."""
    source: str = ""
    _lines: list[str] | None = None

    def label(self, name: str) -> Label:
        return Label(self.repo, self.name, name)

    def line(self, number: int) -> str:
        if self._lines is None:
            self._lines = self.source.splitlines()
        return self._lines[number - 1] if 0 < number <= len(self._lines) else ""


def output_labels(decl: TargetDecl) -> list[Label]:
    """The labels of a rule's declared outputs: `attr.output(_list)` values and `outputs`."""
    out: list[Label] = []
    for name, kind in decl.types.items():
        v = decl.attrs.get(name)
        if kind == "output" and v is not None:
            out.append(v)
        elif kind == "output_list" and v is not None:
            out.extend(v)
    out.extend(decl.attrs.get("__outputs__", {}).values())
    return out
