"""Packages: evaluating BUILD files into checked target declarations.

A package is a directory with a BUILD or BUILD.bazel file. Evaluating it runs
its rule calls (Starlark rules, macros, native rules) which land here through
the `_strata_*` hooks; each call's attributes are type-checked against the
rule's schema right away, so an error points at the BUILD line that made it.
`select()` is resolved at this point too: strata builds for one configuration
(the host), so the branch is known while loading. The checks live in
attr_check.py, `glob` in globbing.py, `select` in selects.py and the
declarations this module makes in targets.py.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

from strata.engine.loading.attr_check import (
    COMMON,
    EMPTY,
    EXECUTABLE_COMMON,
    LABEL_TYPES,
    MANDATORY,
    NATIVE_ATTRS,
    TEST_COMMON,
    check,
)
from strata.engine.loading.build_settings import BuildSettings
from strata.engine.loading.globbing import glob
from strata.engine.loading.labels import Label
from strata.engine.loading.loader import Loader, RuleSchema
from strata.engine.loading.reads import Reads
from strata.engine.loading.selects import select
from strata.engine.loading.targets import (
    BUILD_NAMES,
    NoSuchTarget,
    Package,
    TargetDecl,
    output_labels,
)
from strata.errors import UserError


class Packages:
    """Loads packages on demand and answers `target(label)`."""

    def __init__(self, loader: Loader) -> None:
        self.loader = loader
        self._packages: dict[tuple[str, str], Package] = {}
        self._crossing: dict[tuple[str, str], bool] = {}
        """(package directory, subdirectory) -> a BUILD file on the way (see _crosses_package)."""
        self._current: list[Package] = []
        self.settings = BuildSettings((), loader.canonical_repo)
        """The command line's build-setting flags (set by analysis)."""
        loader.hooks.update(
            _strata_glob=self._glob,
            _strata_package_name=lambda: self.current("package_name").name,
            _strata_repository_name=lambda: "@" + self.current("repository_name").repo,
            _strata_existing_rules=self._existing_rules,
            _strata_native_rule=self._native_rule,
            _strata_add_target=self._add_target,
            _strata_exports_files=lambda srcs: None,
            _strata_select=self._select,
        )

    def _existing_rules(self) -> dict[str, dict[str, Any]]:
        """The package's targets; in WORKSPACE (no package), the repositories so far."""
        if not self._current:
            return {n: {"name": n, "kind": "repository"} for n in self.loader.repos}
        return dict(self._current[-1].raw)

    def current(self, what: str) -> Package:
        """The package whose BUILD file is being evaluated; `what` names the caller."""
        if not self._current:
            raise UserError(
                f"{what}() can only be used while loading a BUILD file (got a call from a "
                ".bzl file's top level); call it from a macro used in a BUILD file"
            )
        return self._current[-1]

    # ---- packages ---------------------------------------------------------

    def build_file(self, repo: str, name: str) -> Path | None:
        root = self.loader.repo_root(repo) / name
        for build in BUILD_NAMES:
            if self.loader.reads.is_file(root / build):
                return root / build
        return None

    def package(self, repo: str, name: str, *, where: str = "") -> Package:
        repo = self.loader.canonical_repo(repo)
        key = (repo, name)
        if key in self._packages:
            return self._packages[key]
        path = self.build_file(repo, name)
        prefix = f"@{repo}" if repo else ""
        if path is None:
            raise NoSuchTarget(
                f"no such package '{prefix}//{name}' (got {where or prefix + '//' + name}); "
                "add a BUILD file there or fix the label"
            )
        pkg = Package(repo, name, path.parent, path.name)
        label = Label(repo, name, path.name)
        module, file_loader = self.loader.new_module(str(label), repo, name)
        self._current.append(pkg)
        try:
            from strata.engine.loading.starlark_env import evaluate, parse

            shown = self.loader.display_path(label)
            pkg.source = self.loader.reads.read_text(path, shown)
            ast = parse(shown, pkg.source)
            evaluate(module, ast, file_loader, self.loader.errors)
        finally:
            self._current.pop()
        pkg.raw.clear()  # only native.existing_rules() reads it, while the package loads
        self._packages[key] = pkg
        return pkg

    def target(self, label: Label, *, where: str = "") -> TargetDecl:
        """The declaration of `label`: a rule, a generated file or a source file."""
        pkg = self.package(label.repo, label.package, where=where)
        if label.name in pkg.rules:
            return pkg.rules[label.name]
        if label.name in pkg.outputs:
            return TargetDecl(label, "generated file", generator=pkg.outputs[label.name])
        seen = pkg.sources.get(label.name)
        if seen is not None:
            return seen
        if label.name in pkg.listed:
            decl = pkg.sources[label.name] = TargetDecl(label, "source file")
            return decl
        path = pkg.directory / label.name
        if self.loader.reads.exists(path) and not self._crosses_package(pkg, label.name):
            decl = pkg.sources[label.name] = TargetDecl(label, "source file")
            return decl
        known = sorted([*pkg.rules, *pkg.outputs])
        close = difflib.get_close_matches(label.name, known, n=3)
        build = self.loader.display_path(pkg.label(pkg.build_file))
        source = self.loader.display_path(label)
        hint = (
            f"did you mean {', '.join(':' + c for c in close)}?"
            if close
            else f"declare it in {build}, or create the source file {source}"
        )
        raise NoSuchTarget(
            f"no such target '{label}': target '{label.name}' not declared in package "
            f"'{label.package}' (got {where or label}); {hint}"
        )

    def _crosses_package(self, pkg: Package, name: str) -> bool:
        """Whether a directory between the package and file `name` holds a BUILD file."""
        parent = name.rpartition("/")[0]
        if not parent:
            return False
        key = (os.fspath(pkg.directory), parent)
        known = self._crossing.get(key)
        if known is None:
            here = os.path.join(key[0], parent)
            known = self._crosses_package(pkg, parent) or any(
                self.loader.reads.is_file(Path(here, b)) for b in BUILD_NAMES
            )
            self._crossing[key] = known
        return known

    def targets_under(self, repo: str, base: str, errors: list[str] | None = None) -> list[Label]:
        """Rule targets in every package at or below `base` (for `//base/...`); with
        `errors`, a package that fails to load is reported there and skipped."""
        root = self.loader.repo_root(repo)
        start = root / base if base else root
        reads = self.loader.reads
        ignored = _bazelignore(root, reads)
        labels: list[Label] = []
        for dirpath, dirnames, filenames in reads.walk(start):
            rel = dirpath.relative_to(root)
            dirnames[:] = sorted(
                d
                for d in dirnames
                if not d.startswith((".", "bazel-", "strata-"))
                and (rel / d).as_posix() not in ignored
                and not any(reads.is_file(dirpath / d / w) for w in _WORKSPACE_FILES)
            )
            if any(b in filenames for b in BUILD_NAMES):
                name = Path(dirpath).relative_to(root).as_posix()
                name = "" if name == "." else name
                try:
                    pkg = self.package(repo, name)
                except UserError as err:
                    if errors is None:
                        raise
                    errors.append(str(err))
                    continue
                labels.extend(pkg.label(n) for n in pkg.rules)
        return labels

    # ---- hooks ------------------------------------------------------------

    def _glob(
        self, include: Any, exclude: Any, exclude_directories: Any, allow_empty: Any
    ) -> list[str]:
        return glob(self.current("glob"), self.loader.reads, include, exclude, exclude_directories)

    def _select(self, conditions: Any, no_match_error: Any) -> Any:
        return select(self, conditions, no_match_error)

    def setting_value(self, decl: TargetDecl) -> Any:
        """`ctx.build_setting_value` of build setting `decl`."""
        setting = decl.schema.build_setting if decl.schema is not None else None
        default = decl.attrs.get("build_setting_default")
        return self.settings.value(decl.label, decl.kind, setting, default)

    def location(self, decl: TargetDecl) -> str | None:
        """Where `decl` was declared, as Bazel places a target: `pkg/BUILD:line:column`
        of the BUILD call that made it, the column at its opening parenthesis."""
        if not decl.called_at:
            return None
        file, _, line = decl.called_at.rpartition(":")
        pkg = self._packages.get((decl.label.repo, decl.label.package))
        text = pkg.line(int(line)) if pkg is not None else ""
        call = _CALL.search(text)
        return f"{file}:{line}:{call.end() if call else 1}"

    def _native_rule(self, kind: str, name: Any, kwargs: dict[str, Any], stack: str) -> None:
        types = {**COMMON, **NATIVE_ATTRS[kind]}
        if kind in ("sh_binary", "sh_test", "py_binary"):
            types = {**types, **EXECUTABLE_COMMON}
        specs = {
            a: {"type": t, "mandatory": a in MANDATORY.get(kind, ())} for a, t in types.items()
        }
        self._declare(kind, None, name, kwargs, specs, stack)

    def _add_target(
        self, module: str, index: int, name: Any, kwargs: dict[str, Any], stack: str
    ) -> None:
        schema = self.loader.rule_schemas[(module, index)]
        specs: dict[str, dict[str, Any]] = {a: {"type": t} for a, t in COMMON.items()}
        if schema.executable or schema.test:
            specs.update({a: {"type": t} for a, t in EXECUTABLE_COMMON.items()})
        if schema.test:
            specs.update({a: {"type": t} for a, t in TEST_COMMON.items()})
        specs.update(schema.attrs)
        self._declare(schema.name, schema, name, kwargs, specs, stack)

    def _declare(
        self,
        kind: str,
        schema: RuleSchema | None,
        name: Any,
        kwargs: dict[str, Any],
        specs: dict[str, dict[str, Any]],
        stack: str,
    ) -> None:
        pkg = self.current(kind)
        if not isinstance(name, str) or not name:
            raise UserError(
                f"{kind}: 'name' must be a non-empty string (got {name!r}); add name = \"...\""
            )
        label = pkg.label(name)
        Label.parse(f":{name}", repo=pkg.repo, package=pkg.name, where=str(label))
        if name in pkg.rules or name in pkg.outputs:
            raise UserError(
                f"{label}: target '{name}' is declared twice in package '{pkg.name}' "
                f"(got a second {kind}); rename one of them"
            )
        attrs: dict[str, Any] = {"name": name}
        types: dict[str, str] = {}
        for attr, value in kwargs.items():
            if attr not in specs:
                close = difflib.get_close_matches(
                    attr, [a for a in specs if not a.startswith("_")], n=1
                )
                hint = f"did you mean '{close[0]}'?" if close else "remove it"
                raise UserError(
                    f"{label}: {kind} rule has no attribute '{attr}' "
                    f"(got {attr} = {value!r}); {hint}"
                )
            if attr.startswith("_"):
                raise UserError(
                    f"{label}: attribute '{attr}' of {kind} is private (got {value!r}); "
                    "private attributes take their default"
                )
        for attr, spec in specs.items():
            kind_of = spec["type"]
            if kind_of in LABEL_TYPES or kind_of in ("output", "output_list"):
                types[attr] = kind_of
            if attr == "name":
                continue
            if attr in kwargs and kwargs[attr] is not None:
                value = kwargs[attr]
                base = (pkg.repo, pkg.name)
            elif spec.get("mandatory"):
                raise UserError(
                    f"{label}: missing value for mandatory attribute '{attr}' in {kind} rule "
                    f"(got none); set {attr} = ..."
                )
            else:
                value = spec.get("default")
                if value is None and kind_of in ("label", "output"):
                    attrs[attr] = None
                    continue
                if value is None:
                    value = EMPTY.get(kind_of)
                base = _module_base(schema, self.loader)
            attrs[attr] = check(label, kind, attr, spec, value, base, self.loader)
        if schema is not None:
            for key, template in schema.outputs.items():
                out_name = _expand_output(label, template, attrs)
                attrs.setdefault("__outputs__", {})[key] = Label(pkg.repo, pkg.name, out_name)
            if schema.executable or schema.test:
                attrs["__executable__"] = label
        frame = _OUTER_FRAME.search(stack)
        called_at = f"{frame.group(1)}:{frame.group(2)}" if frame else ""
        decl = TargetDecl(label, kind, schema, attrs, types, called_at=called_at)
        for out in output_labels(decl):
            if out.name in pkg.outputs or (out.name in pkg.rules and out.name != name):
                raise UserError(
                    f"{label}: output '{out.name}' is already declared in package "
                    f"'{pkg.name}' (got it again from {kind}); give it another name"
                )
            if out != label:
                pkg.outputs[out.name] = label
        pkg.rules[name] = decl
        pkg.raw[name] = {
            "kind": kind,
            "name": name,
            **{k: v for k, v in kwargs.items() if k != "name"},
        }


_WORKSPACE_FILES = ("WORKSPACE", "WORKSPACE.bazel")


_OUTER_FRAME = re.compile(r"^  \* (\S+):(\d+), in ", re.M)
"""The outermost frame of Starlark's `call_stack()`: the BUILD file's statement."""
_CALL = re.compile(r"[A-Za-z_][\w.]*\s*\(")
"""The first call on a line, up to its parenthesis (Bazel's column of a rule call)."""


def _bazelignore(root: Path, reads: Reads) -> set[str]:
    """Directories `//...` skips, from .bazelignore (one path a line, # comments)."""
    path = root / ".bazelignore"
    if not reads.is_file(path):
        return set()
    text = reads.read_text(path)
    lines = (line.split("#", 1)[0].strip().strip("/") for line in text.splitlines())
    return {line for line in lines if line}


def _module_base(schema: RuleSchema | None, loader: Loader) -> tuple[str, str]:
    """Defaults written in a .bzl are relative to that .bzl's repository."""
    if schema is None:
        return ("", "")
    mod = Label.parse(schema.module)
    return (loader.canonical_repo(mod.repo), mod.package)


def _expand_output(label: Label, template: str, attrs: dict[str, Any]) -> str:
    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        value = attrs.get(key)
        if isinstance(value, Label):
            return value.name
        if not isinstance(value, str):
            raise UserError(
                f"{label}: output template {template!r} uses %{{{key}}} (got {value!r}); "
                "only string and label attributes can be substituted"
            )
        return value

    return re.sub(r"%\{(\w+)\}", sub, template)
