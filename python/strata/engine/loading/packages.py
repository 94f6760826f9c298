"""Packages: evaluating BUILD files into checked target declarations.

A package is a directory with a BUILD or BUILD.bazel file. Evaluating it runs
its rule calls (Starlark rules, macros, native rules) which land here through
the `_strata_*` hooks; each call's attributes are type-checked against the
rule's schema right away, so an error points at the BUILD line that made it.
`select()` is resolved at this point too: strata builds for one configuration
(the host), so the branch is known while loading.
"""

from __future__ import annotations

import difflib
import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strata.engine.loading.build_settings import BuildSettings, OptionError, convert
from strata.engine.loading.labels import Label
from strata.engine.loading.loader import Loader, RuleSchema
from strata.engine.loading.reads import Reads
from strata.engine.outputbase import host_cpu
from strata.errors import UserError

BUILD_NAMES = ("BUILD.bazel", "BUILD")

_LABELS = {"label", "label_list", "label_keyed_string_dict"}
_COMMON: dict[str, str] = {
    "name": "string",
    "visibility": "any",
    "tags": "string_list",
    "testonly": "bool",
    "deprecation": "string",
    "features": "string_list",
    "licenses": "any",
    "compatible_with": "any",
    "restricted_to": "any",
    "target_compatible_with": "any",
    "exec_compatible_with": "any",
    "exec_properties": "any",
    "generator_name": "any",
    "generator_function": "any",
    "generator_location": "any",
}
_EXECUTABLE_COMMON = {"args": "string_list", "env": "string_dict"}
_TEST_COMMON = {
    "size": "string",
    "timeout": "string",
    "flaky": "bool",
    "shard_count": "int",
    "local": "bool",
    "env_inherit": "string_list",
}
NATIVE_ATTRS: dict[str, dict[str, str]] = {
    "genrule": {
        "srcs": "label_list",
        "outs": "output_list",
        "cmd": "string",
        "cmd_bash": "string",
        "tools": "label_list",
        "exec_tools": "label_list",
        "executable": "bool",
        "output_to_bindir": "bool",
        "message": "string",
        "local": "bool",
        "stamp": "any",
        "toolchains": "any",
    },
    "filegroup": {"srcs": "label_list", "data": "label_list", "output_group": "string"},
    "alias": {"actual": "label"},
    "sh_binary": {
        "srcs": "label_list",
        "data": "label_list",
        "deps": "label_list",
        **_EXECUTABLE_COMMON,
    },
    "sh_test": {
        "srcs": "label_list",
        "data": "label_list",
        "deps": "label_list",
        **_EXECUTABLE_COMMON,
        **_TEST_COMMON,
    },
    "py_binary": {
        "srcs": "label_list",
        "main": "label",
        "deps": "label_list",
        "data": "label_list",
        "imports": "string_list",
        "python_version": "string",
        "srcs_version": "string",
        "legacy_create_init": "any",
        **_EXECUTABLE_COMMON,
    },
    "config_setting": {
        "constraint_values": "string_list",
        "values": "string_dict",
        "define_values": "string_dict",
        "flag_values": "any",
    },
}
_MANDATORY = {"alias": {"actual"}, "genrule": {"outs"}}
_TYPE_NAMES = {
    "string": "a string",
    "string_list": "a list of strings",
    "string_dict": "a dict of string to string",
    "string_list_dict": "a dict of string to list",
    "int": "an integer",
    "int_list": "a list of integers",
    "bool": "a boolean",
    "label": "a label string",
    "label_list": "a list of label strings",
    "label_keyed_string_dict": "a dict of label string to string",
    "output": "a file name",
    "output_list": "a list of file names",
}


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
            _strata_package_name=lambda: self._pkg("package_name").name,
            _strata_repository_name=lambda: "@" + self._pkg("repository_name").repo,
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

    def _pkg(self, what: str) -> Package:
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
        pkg = self._pkg("glob")
        inc = [(p, _glob_regex(p, pkg)) for p in _strings(include, "glob include")]
        excludes = _strings(exclude, "glob exclude")
        exc = [_glob_regex(p, pkg) for p in excludes]
        # `dir/**` excludes all below a directory `dir` matches: the walk need not enter it
        pruned = [_glob_regex(p[:-3], pkg) for p in excludes if p.endswith("/**")]
        found: set[str] = set()
        for pattern, rx in inc:
            found.update(self._glob_one(pkg, pattern, rx, bool(exclude_directories), pruned))
        return sorted(f for f in found if not any(r.match(f) for r in exc))

    def _glob_one(
        self,
        pkg: Package,
        pattern: str,
        rx: re.Pattern[str],
        exclude_directories: bool,
        pruned: list[re.Pattern[str]],
    ) -> list[str]:
        """One include pattern, walking only the directories it can match below.

        The walk starts at the pattern's literal leading directories and, without
        `**`, stops at the pattern's depth: a BUILD file with hundreds of globs
        over a large tree costs each glob its own subtree, not the whole package.
        Like a whole walk, it never enters a subpackage or a symlinked directory,
        nor a directory whose whole contents an exclude (`**/__pycache__/**`)
        removes: what changes in there (Python writing bytecode beside the
        sources, say) is no reason to analyse again.
        """
        reads = self.loader.reads
        segments = pattern.split("/")
        prefix: list[str] = []
        for seg in segments[:-1]:
            if "*" in seg or "?" in seg:
                break
            prefix.append(seg)
        start = pkg.directory
        for seg in prefix:
            if reads.entry(start / seg) != "d":
                return []  # missing, a file, or a symlink to a directory: not walked
            start = start / seg
            if any(reads.is_file(start / b) for b in BUILD_NAMES):
                return []  # a subpackage's files belong to it
        max_depth = None if "**" in segments else len(segments) - 1 - len(prefix)
        found: list[str] = []
        for dirpath, dirnames, filenames in reads.walk(start):
            rel_dir = dirpath.relative_to(pkg.directory).as_posix()
            rel_dir = "" if rel_dir == "." else rel_dir
            depth = len(dirpath.relative_to(start).parts)
            keep = [
                d
                for d in sorted(dirnames)
                if not any(reads.is_file(dirpath / d / b) for b in BUILD_NAMES)
            ]
            if max_depth is not None and depth >= max_depth:
                dirnames[:] = []
            else:
                prefix_dir = f"{rel_dir}/" if rel_dir else ""
                dirnames[:] = [d for d in keep if not any(r.match(prefix_dir + d) for r in pruned)]
            names = list(filenames) + ([] if exclude_directories else keep)
            for n in names:
                rel = f"{rel_dir}/{n}" if rel_dir else n
                if rx.match(rel):
                    found.append(rel)
        pkg.listed.update(found)
        return found

    def _select(self, conditions: Any, no_match_error: Any) -> Any:
        pkg = self._pkg("select")
        if not isinstance(conditions, dict) or not conditions:
            raise UserError(
                f"select() needs a non-empty dict of condition to value (got {conditions!r}); "
                'e.g. select({"//conditions:default": ...})'
            )
        machine = platform.machine()
        cpu = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(
            machine.lower(), machine
        )
        true_labels = {
            "@platforms//os:linux",
            f"@platforms//cpu:{cpu}",
            "@bazel_tools//src/conditions:linux",
            f"@bazel_tools//src/conditions:linux_{cpu}",
        }
        if cpu == "x86_64":
            true_labels.add("@platforms//cpu:x86_64")
        default = "//conditions:default"
        matched: list[tuple[Any, Any, frozenset[str]]] = []
        for key, value in conditions.items():
            where = f"select key {key!r}"
            lab = Label.parse(key, repo=pkg.repo, package=pkg.name, where=where)
            lab = Label(self.loader.canonical_repo(lab.repo), lab.package, lab.name)
            text = str(lab)
            if key == default or text in (default, "@bazel_tools//conditions:default"):
                continue
            if text in true_labels:
                matched.append((key, value, frozenset()))
            elif text.startswith(("@platforms//", "@bazel_tools//")):
                continue
            else:
                needs = self._config_setting(lab, true_labels, where)
                if needs is not None:
                    matched.append((key, value, needs))
        # Bazel 4 picks the condition whose flag values include every other match's
        # (constraint values do not make a condition more specific).
        best = [m for m in matched if all(other[2] <= m[2] for other in matched)]
        if len(matched) > 1 and len(best) != 1:
            raise UserError(
                f"select() matches more than one condition (got {[k for k, _, _ in matched]}); "
                "make the conditions exclusive, or one a specialization of the other"
            )
        if matched:
            return best[0][1]
        if default in conditions:
            return conditions[default]
        raise UserError(
            no_match_error
            or f"select() has no condition matching this platform (got keys "
            f"{sorted(conditions)}); add a //conditions:default branch"
        )

    def _config_setting(
        self, label: Label, true_labels: set[str], where: str
    ) -> frozenset[str] | None:
        """What a config_setting requires, if strata's one configuration meets it, else None.

        strata builds with Bazel's defaults on the host: `--cpu` is the host's
        (k8, aarch64), `--compilation_mode` is fastbuild, no `--define`.
        """
        decl = self._declared(label, where, "config_setting")
        seen = [str(label)]
        while decl.kind == "alias":  # e.g. skylib's selects.config_setting_group
            label = decl.attrs["actual"]
            if str(label) in seen:
                raise UserError(
                    f"{where}: select() key is an alias cycle (got "
                    f"{' -> '.join([*seen, str(label)])}); point an alias at a config_setting"
                )
            seen.append(str(label))
            decl = self._declared(label, where, "config_setting")
        if decl.kind != "config_setting":
            raise UserError(
                f"{where}: select() keys must be config_setting targets or platform "
                f"constraints (got a {decl.kind} {label}); point the key at a config_setting"
            )
        flags = {"cpu": host_cpu(), "compilation_mode": "fastbuild", "host_cpu": host_cpu()}
        values = decl.attrs.get("values") or {}
        unknown = sorted(set(values) - set(flags) - {"define"} - set(_BOOL_OPTIONS))
        if unknown:
            raise UserError(
                f"{label}: config_setting on {unknown[0]!r} is not supported by strata (got "
                f"{values}); use values with cpu, compilation_mode or stamp, define_values, "
                "flag_values or constraint_values"
            )
        needs = {f"{k}={v}" for k, v in values.items()}
        needs |= {f"define:{k}={v}" for k, v in (decl.attrs.get("define_values") or {}).items()}
        constraints = set()
        for c in decl.attrs.get("constraint_values") or []:
            lab = Label.parse(c, repo=label.repo, package=label.package, where=str(label))
            constraints.add(str(lab))
        ok = all(
            _bool_option(k, v, label) == _BOOL_OPTIONS[k] if k in _BOOL_OPTIONS else flags[k] == v
            for k, v in values.items()
            if k != "define"
        )
        ok = ok and "define" not in values and not decl.attrs.get("define_values")
        ok = ok and constraints <= true_labels
        for flag, wanted in self._flag_values(decl, where):
            needs.add(f"flag:{flag}={wanted!r}")
            ok = ok and self.setting_value(self._declared(flag, where, "build setting")) == wanted
        return frozenset(needs) if ok else None

    def _declared(self, label: Label, where: str, what: str) -> TargetDecl:
        """The declaration of `label`; in the package being loaded, it must come first."""
        current = self._current[-1]
        if (label.repo, label.package) == (current.repo, current.name):
            if label.name not in current.rules:
                raise UserError(
                    f"{where}: {what} {label} is not declared before this select() "
                    "(got a later or missing declaration); strata resolves select() while "
                    f"loading, so declare the {what} above its first use"
                )
            return current.rules[label.name]
        return self.target(label, where=where)

    def _flag_values(self, decl: TargetDecl, where: str) -> list[tuple[Label, Any]]:
        """A config_setting's `flag_values`: (build setting, the value it must have)."""
        raw = decl.attrs.get("flag_values") or {}
        if not isinstance(raw, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
        ):
            raise UserError(
                f"{decl.label}: attribute 'flag_values' of config_setting must be a dict of "
                f"label string to string (got {raw!r}); fix the value in the BUILD file"
            )
        out: list[tuple[Label, Any]] = []
        for text, wanted in raw.items():
            flag = Label.parse(
                text, repo=decl.label.repo, package=decl.label.package, where=str(decl.label)
            )
            flag = Label(self.loader.canonical_repo(flag.repo), flag.package, flag.name)
            setting = self._declared(flag, where, "build setting")
            kind = (setting.schema.build_setting or {}).get("type") if setting.schema else None
            if kind is None:
                raise UserError(
                    f"{decl.label}: flag_values key {text!r} is not a build setting (got a "
                    f"{setting.kind}); use a target of a rule with build_setting = config.*()"
                )
            try:
                out.append((flag, convert(kind, wanted, f"{flag}={wanted}")))
            except OptionError as err:
                raise UserError(f"{decl.label}: attribute 'flag_values': {err.detail}") from None
        return out

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
        types = {**_COMMON, **NATIVE_ATTRS[kind]}
        if kind in ("sh_binary", "sh_test", "py_binary"):
            types = {**types, **_EXECUTABLE_COMMON}
        specs = {
            a: {"type": t, "mandatory": a in _MANDATORY.get(kind, ())} for a, t in types.items()
        }
        self._declare(kind, None, name, kwargs, specs, stack)

    def _add_target(
        self, module: str, index: int, name: Any, kwargs: dict[str, Any], stack: str
    ) -> None:
        schema = self.loader.rule_schemas[(module, index)]
        specs: dict[str, dict[str, Any]] = {a: {"type": t} for a, t in _COMMON.items()}
        if schema.executable or schema.test:
            specs.update({a: {"type": t} for a, t in _EXECUTABLE_COMMON.items()})
        if schema.test:
            specs.update({a: {"type": t} for a, t in _TEST_COMMON.items()})
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
        pkg = self._pkg(kind)
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
            if kind_of in _LABELS or kind_of in ("output", "output_list"):
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
                    value = _EMPTY.get(kind_of)
                base = _module_base(schema, self.loader)
            attrs[attr] = _check(label, kind, attr, spec, value, base, self.loader)
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

_BOOL_OPTIONS = {"stamp": False}
"""Boolean options config_setting `values` may name, with Bazel's default."""


def _bool_option(name: str, text: str, label: Label) -> bool:
    low = text.lower()
    if low not in ("true", "1", "yes", "t", "y", "false", "0", "no", "f", "n"):
        raise UserError(
            f"{label}: config_setting value of {name!r} is not a boolean (got {text!r}); use 0 or 1"
        )
    return low in ("true", "1", "yes", "t", "y")


def _bazelignore(root: Path, reads: Reads) -> set[str]:
    """Directories `//...` skips, from .bazelignore (one path a line, # comments)."""
    path = root / ".bazelignore"
    if not reads.is_file(path):
        return set()
    text = reads.read_text(path)
    lines = (line.split("#", 1)[0].strip().strip("/") for line in text.splitlines())
    return {line for line in lines if line}


_EMPTY: dict[str, Any] = {
    "string": "",
    "string_list": [],
    "string_dict": {},
    "int": 0,
    "int_list": [],
    "bool": False,
    "label_list": [],
    "label_keyed_string_dict": {},
    "output_list": [],
    "string_list_dict": {},
}


def _module_base(schema: RuleSchema | None, loader: Loader) -> tuple[str, str]:
    """Defaults written in a .bzl are relative to that .bzl's repository."""
    if schema is None:
        return ("", "")
    mod = Label.parse(schema.module)
    return (loader.canonical_repo(mod.repo), mod.package)


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


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(f'{what} must be a list of strings (got {value!r}); e.g. ["*.txt"]')
    return value


def _glob_regex(pattern: str, pkg: Package) -> re.Pattern[str]:
    if pattern.startswith("/") or "//" in pattern or ".." in pattern.split("/"):
        raise UserError(
            f"glob pattern is not a relative path (got {pattern!r}) in "
            f"package '{pkg.name}'; write paths relative to the package"
        )
    parts = []
    segments = pattern.split("/")
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == "**":
            parts.append("(?:.*/)?" if not last else ".*")
            continue
        rx = "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in seg)
        parts.append(rx + ("" if last else "/"))
    return re.compile("^" + "".join(parts) + "$")


def _type_error(label: Label, kind: str, attr: str, kind_of: str, value: Any) -> UserError:
    return UserError(
        f"{label}: attribute '{attr}' of {kind} must be {_TYPE_NAMES.get(kind_of, kind_of)} "
        f"(got {value!r} of type {_starlark_type(value)}); fix the value in the BUILD file"
    )


def _starlark_type(value: Any) -> str:
    return {
        bool: "bool",
        int: "int",
        str: "string",
        list: "list",
        dict: "dict",
        type(None): "NoneType",
    }.get(type(value), type(value).__name__)


def _as_label(value: Any, base: tuple[str, str], where: str, loader: Loader) -> Label | None:
    if isinstance(value, dict) and "canonical" in value:
        text = value["canonical"]
    elif isinstance(value, str):
        text = value
    else:
        return None
    lab = Label.parse(text, repo=base[0], package=base[1], where=where)
    repo = loader.canonical_repo(lab.repo)
    if not loader.knows_repo(repo):
        # now, while the BUILD line that names it is known (analysis would only know the target)
        raise loader.no_such_repository(repo, text, where)
    return lab if repo == lab.repo else Label(repo, lab.package, lab.name)


def _check(
    label: Label,
    kind: str,
    attr: str,
    spec: dict[str, Any],
    value: Any,
    base: tuple[str, str],
    loader: Loader,
) -> Any:
    t = spec["type"]

    def err() -> UserError:  # made only when raised: `value` may be a large dict
        return _type_error(label, kind, attr, t, value)

    where = f"{label}: attribute '{attr}'"
    if t == "any":
        return value
    if t == "string":
        if not isinstance(value, str):
            raise err()
    elif t == "bool":
        if not (isinstance(value, bool) or value in (0, 1)):
            raise err()
        value = bool(value)
    elif t == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise err()
        if not -(1 << 31) <= value < 1 << 31:  # as Bazel's attr.int: Java int
            raise UserError(
                f"{where} of {kind} must be in the signed 32-bit range (got {value}); "
                "use a number from -2147483648 to 2147483647"
            )
    elif t in ("string_list", "int_list"):
        want = str if t == "string_list" else int
        if not isinstance(value, list) or not all(
            isinstance(v, want) and not isinstance(v, bool) for v in value
        ):
            raise err()
    elif t == "string_dict":
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise err()
    elif t == "string_list_dict":
        if not isinstance(value, dict):
            raise err()
    elif t == "label":
        lab = _as_label(value, base, where, loader)
        if lab is None:
            raise err()
        return lab
    elif t == "label_list":
        if not isinstance(value, list):
            raise err()
        labs = [_as_label(v, base, where, loader) for v in value]
        if any(lab is None for lab in labs):
            raise err()
        return labs
    elif t == "label_keyed_string_dict":
        if not isinstance(value, dict):
            raise err()
        pairs = []
        for k, v in value.items():
            lab = _as_label(k, base, where, loader)
            if lab is None or not isinstance(v, str):
                raise err()
            pairs.append((lab, v))
        return pairs
    elif t == "output":
        if not isinstance(value, str) or ":" in value.lstrip(":"):
            raise err()
        return label.sibling(value.lstrip(":"))
    elif t == "output_list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise err()
        return [label.sibling(v.lstrip(":")) for v in value]
    values = spec.get("values") or []
    if values and value not in values:
        raise UserError(
            f"{label}: attribute '{attr}' of {kind} must be one of {values} (got {value!r}); "
            "pick one of the allowed values"
        )
    return value
