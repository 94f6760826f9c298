"""Loading .bzl modules and the WORKSPACE file; where each repository lives.

Every Starlark file is evaluated in a fresh module that first runs a short
prelude (`_prelude`): it loads Bazel's API, the names builtins/exports.bzl
exports, and defines the module's own `rule`, `repository_rule` and `Label`,
which must know the file they are written in (a rule is identified by
`(module, index)`, and a label string in a .bzl is relative to that .bzl's
repository).

WORKSPACE is evaluated in chunks split before each `load` that follows other
statements, as Bazel does, so `local_repository(name = "x")` can be followed
by `load("@x//:defs.bzl", ...)`.

`@strata` always means a strata checkout: the one the WORKSPACE names, else
the checkout this engine runs from, so other workspaces can use our rules.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import starlark as sl

from strata.engine.loading.labels import Label
from strata.engine.loading.reads import Reads
from strata.engine.loading.starlark_env import CallableErrors, evaluate, parse
from strata.engine.loading.workspace_chunks import split_workspace
from strata.errors import UserError


def _strata_root() -> Path:
    """The strata repository `@strata` names: the checkout around this file, or, in a
    single-file strata.pex, the copy of the rules tools/build-pex puts in the package."""
    checkout = Path(__file__).resolve().parents[4]
    if (checkout / "rules" / "defs.bzl").is_file():
        return checkout
    return Path(__file__).resolve().parents[2] / "_repo"


STRATA_ROOT = _strata_root()
BUILTINS_PREFIX = "@strata_builtins__//:"
"""Loads of `@strata_builtins__//:<file>` get the builtins file `<file>` (drivers use it)."""
BUILTINS_DIR = Path(__file__).with_name("builtins")
"""Bazel's Starlark API for the engine, one .bzl file a concept (see its exports.bzl)."""


def _prelude() -> str:
    """Each module's prelude: it loads what builtins/exports.bzl loads (the export table),
    then defines the module's own registry and the functions that must know the module."""
    exports = parse("<builtins/exports.bzl>", (BUILTINS_DIR / "exports.bzl").read_text())
    names = ", ".join(repr(name) for load in exports.loads() for name in load.symbols)
    return (
        f'load("{BUILTINS_PREFIX}exports.bzl", {names})\n'
        'strata_registry__ = {"rules": [], "repo_rules": [], "module": strata_module__}\n'
        "def rule(implementation, attrs = None, **kwargs):\n"
        "    return make_rule__(strata_registry__, implementation, attrs, kwargs)\n"
        "def repository_rule(implementation, attrs = None, **kwargs):\n"
        "    return make_repository_rule__(strata_registry__, implementation, attrs, kwargs)\n"
        "def Label(label_string):\n"
        "    return make_label__(strata_module__, label_string)\n"
        "def str(x):\n"
        "    return label_string__(x)\n"
        "def dir(x):\n"
        "    return dir__(x)\n"
        "def type(x):\n"
        "    return type__(x)\n"
    )


_RULE_ASSIGN = re.compile(r"^([A-Za-z_]\w*)\s*=\s*rule\s*\(", re.M)
_REPOSITORY_RULE_ASSIGN = re.compile(r"^([A-Za-z_]\w*)\s*=\s*repository_rule\s*\(", re.M)


@dataclass(frozen=True)
class RuleSchema:
    """What `rule()` declared, minus the Starlark functions (kept in its module's registry)."""

    module: str
    index: int
    name: str
    attrs: dict[str, dict[str, Any]]
    executable: bool
    test: bool
    outputs: dict[str, str]
    build_setting: dict[str, Any] | None = None
    """`{"type": "bool" | "int" | "string" | "string_list", "flag": bool}` of a
    `rule(build_setting = config.*(...))`; None for other rules."""


@dataclass(frozen=True)
class RuleDoc:
    """What a rule or repository rule documents about itself (for the rules reference)."""

    module: str
    name: str
    repository: bool
    doc: str
    attrs: dict[str, dict[str, Any]]
    executable: bool = False
    test: bool = False


@dataclass(frozen=True)
class RepoSpec:
    """A repository: a directory on disk, or a repository rule to run."""

    name: str
    path: Path | None = None
    rule_module: str = ""
    rule_index: int = -1
    attrs: dict[str, Any] = field(default_factory=dict)
    where: str = ""
    environ: tuple[str, ...] = ()
    """Client environment variables the repository rule declared (`environ = [...]`)."""


class Loader:
    """Evaluates Starlark files for one analysis; state lives here, not in globals."""

    def __init__(self, workspace_root: Path, output_base: Path, reads: Reads | None = None) -> None:
        self.workspace_root = workspace_root.resolve()
        self.output_base = output_base
        self.reads = reads if reads is not None else Reads()
        """Every file-system read that can change the result goes through here."""
        self.errors = CallableErrors()
        self.hooks: dict[str, Callable[..., Any]] = {
            "_strata_label": self._label_info_for_module,
            "_strata_rule_schema": self._rule_schema,
            "_strata_repository_rule_schema": self._repository_rule_schema,
        }
        """The `_strata_*` callables of builtins/bridge.bzl; the other phases add theirs."""
        self.workspace_name = "__main__"
        self.repos: dict[str, RepoSpec] = {}
        self.repo_roots: dict[str, Path] = {"": self.workspace_root}
        self.rule_schemas: dict[tuple[str, int], RuleSchema] = {}
        self.rule_docs: dict[tuple[str, str], RuleDoc] = {}
        """Every rule and repository rule declared so far, by (module, exported name)."""
        self.fetch_repo: Callable[[RepoSpec], Path] | None = None
        self._modules: dict[str, sl.FrozenModule] = {}
        self._sources: dict[str, str] = {}
        self._loading: list[str] = []
        self._prelude_ast = parse("<prelude>", _prelude())
        self._builtins: dict[str, sl.FrozenModule] = {}
        self.errors.source = self._read_display

    # ---- builtins ---------------------------------------------------------

    def builtins(self, name: str) -> sl.FrozenModule:
        """The frozen builtins file `name` (e.g. "exports.bzl"), evaluated on first use.

        Only bridge.bzl gets the hooks, so it must be evaluated after every part of
        the engine has registered its own (the first load of a builtins file, from
        the WORKSPACE's prelude, comes after that).
        """
        frozen = self._builtins.get(name)
        if frozen is not None:
            return frozen
        path = BUILTINS_DIR / name
        if "/" in name or not path.is_file():
            raise UserError(
                f"no such builtins file (got {BUILTINS_PREFIX}{name}); "
                "Bazel's API needs no load(): use its names directly"
            )
        module = sl.Module()
        if name == "bridge.bzl":
            for hook, fn in self.hooks.items():
                module.add_callable(hook, self.errors.wrap(fn))
        file_loader = sl.FileLoader(lambda text: self.builtins(text.removeprefix(":")))
        evaluate(module, parse(f"<builtins/{name}>", path.read_text()), file_loader, self.errors)
        frozen = self._builtins[name] = module.freeze()
        return frozen

    # ---- modules ----------------------------------------------------------

    def new_module(self, key: str, repo: str, package: str) -> tuple[sl.Module, sl.FileLoader]:
        """A module with the prelude evaluated, and a loader resolving relative loads."""
        module = sl.Module()
        module["strata_module__"] = key
        file_loader = sl.FileLoader(lambda text: self._load_from(repo, package, key, text))
        evaluate(module, self._prelude_ast, file_loader, self.errors)
        return module, file_loader

    def _load_from(self, repo: str, package: str, loading: str, text: str) -> sl.FrozenModule:
        if text.startswith(BUILTINS_PREFIX):
            return self.builtins(text.removeprefix(BUILTINS_PREFIX))
        if text in self._modules:
            return self._modules[text]
        label = Label.parse(text, repo=repo, package=package, where=loading)
        if not label.name.endswith(".bzl"):
            raise UserError(
                f"load() of a file that is not a .bzl file (got {text!r}); "
                "only .bzl files can be loaded"
            )
        return self.module(label)

    def canonical_repo(self, repo: str) -> str:
        return "" if repo in (self.workspace_name, "__main__") else repo

    def module(self, label: Label) -> sl.FrozenModule:
        """Evaluate (once) and return the .bzl file `label`."""
        label = Label(self.canonical_repo(label.repo), label.package, label.name)
        key = str(label)
        if key in self._modules:
            return self._modules[key]
        if key in self._loading:
            cycle = " -> ".join([*self._loading[self._loading.index(key) :], key])
            raise UserError(f"cycle in load() statements (got {cycle}); break the cycle")
        path = self.repo_root(label.repo, where=key) / label.package / label.name
        if not self.reads.is_file(path):
            raise UserError(
                f"cannot load {key}: file not found (got {path}); check the label and the path",
            )
        source = self.reads.read_text(path, self.display_path(label))
        self._sources[key] = source
        self._loading.append(key)
        try:
            module, file_loader = self.new_module(key, label.repo, label.package)
            evaluate(module, parse(self.display_path(label), source), file_loader, self.errors)
        finally:
            self._loading.pop()
        frozen = module.freeze()
        self._modules[key] = frozen
        return frozen

    def display_path(self, label: Label) -> str:
        """A file's path as shown in errors: workspace-relative, or external/<repo>/..."""
        rel = f"{label.package}/{label.name}" if label.package else label.name
        return f"external/{label.repo}/{rel}" if label.repo else rel

    def _read_display(self, name: str) -> str | None:
        """The text of a file given its display path (see `display_path`)."""
        if name.startswith("external/"):
            repo, _, rest = name[len("external/") :].partition("/")
            root = self.repo_roots.get(repo)
            path = root / rest if root else None
        else:
            path = self.workspace_root / name
        if path is None or not path.is_file():
            return None
        return path.read_bytes().decode(errors="replace")

    def rule_name(self, module: str, index: int) -> str:
        """The name a rule was exported as (`foo = rule(...)`), for messages."""
        names = _RULE_ASSIGN.findall(self._sources.get(module, ""))
        return names[index] if index < len(names) else f"rule #{index} of {module}"

    def _rule_schema(
        self, module: str, index: int, schema: dict[str, Any], opts: dict[str, Any]
    ) -> None:
        name = self.rule_name(module, index)
        self.rule_docs[(module, name)] = RuleDoc(
            module=module,
            name=name,
            repository=False,
            doc=str(opts.get("doc") or ""),
            attrs=schema,
            executable=bool(opts.get("executable")),
            test=bool(opts.get("test")),
        )
        self.rule_schemas[(module, index)] = RuleSchema(
            module=module,
            index=index,
            name=name,
            attrs=schema,
            executable=bool(opts.get("executable")),
            test=bool(opts.get("test")),
            outputs=dict(opts.get("outputs") or {}),
            build_setting=opts.get("build_setting"),
        )

    def _repository_rule_schema(
        self, module: str, index: int, schema: dict[str, Any], opts: dict[str, Any]
    ) -> None:
        names = _REPOSITORY_RULE_ASSIGN.findall(self._sources.get(module, ""))
        name = names[index] if index < len(names) else f"repository rule #{index} of {module}"
        self.rule_docs[(module, name)] = RuleDoc(
            module=module, name=name, repository=True, doc=str(opts.get("doc") or ""), attrs=schema
        )

    def label_info(self, label: Label) -> dict[str, Any]:
        """The fields of a Starlark Label struct."""
        repo = label.repo
        return {
            "canonical": str(label),
            "name": label.name,
            "package": label.package,
            "workspace_name": repo,
            "workspace_root": f"external/{repo}" if repo else "",
        }

    def _label_info_for_module(self, module: str, text: Any) -> dict[str, Any]:
        if isinstance(text, dict) and "canonical" in text:
            return text
        base = Label.parse(module) if module.startswith(("//", "@")) else Label("", "", "x")
        label = Label.parse(text, repo=base.repo, package=base.package, where=module)
        return self.label_info(Label(self.canonical_repo(label.repo), label.package, label.name))

    # ---- repositories -----------------------------------------------------

    def repo_root(self, repo: str, *, where: str = "") -> Path:
        """Directory of repository `repo`, fetching a repository rule on first use."""
        repo = self.canonical_repo(repo)
        if repo in self.repo_roots:
            return self.repo_roots[repo]
        spec = self.repos.get(repo)
        if spec is None:
            if repo == "strata":
                self.repo_roots[repo] = STRATA_ROOT
                return STRATA_ROOT
            raise self.no_such_repository(repo, where or "@" + repo)
        if spec.path is not None:
            root = spec.path
        elif self.fetch_repo is None:
            raise UserError(f"repository '@{repo}' cannot be fetched here; run a build")
        else:
            root = self.fetch_repo(spec)
        self.repo_roots[repo] = root
        return root

    def knows_repo(self, repo: str) -> bool:
        """Whether `repo` (canonical) is declared, without fetching it."""
        return repo in ("", "strata") or repo in self.repos or repo in self.repo_roots

    def no_such_repository(self, repo: str, got: str, where: str | None = None) -> UserError:
        close = difflib.get_close_matches(repo, sorted([*self.repos, "strata"]), n=1)
        hint = f"did you mean @{close[0]}?" if close else "declare it in WORKSPACE"
        return UserError(f"no such repository '@{repo}' (got {got}); {hint}", where=where)

    def add_repo(self, spec: RepoSpec) -> None:
        if spec.name in self.repos or spec.name in ("", self.workspace_name):
            raise UserError(
                f"repository '{spec.name}' is declared twice (got a second declaration at "
                f"{spec.where or 'WORKSPACE'}); give each repository one name"
            )
        self.repos[spec.name] = spec

    # ---- WORKSPACE --------------------------------------------------------

    def load_workspace(self) -> None:
        """Evaluate WORKSPACE (or WORKSPACE.bazel), chunk by chunk."""
        path = self.workspace_root / "WORKSPACE"
        if not self.reads.is_file(path):
            path = self.workspace_root / "WORKSPACE.bazel"
        if not self.reads.is_file(path):
            raise UserError(
                f"no WORKSPACE file in {self.workspace_root} (got none); "
                "run strata in a Bazel workspace or create an empty WORKSPACE"
            )
        source = self.reads.read_text(path, path.name)
        module, file_loader = self.new_module("//:WORKSPACE", "", "")
        for chunk in split_workspace(source):
            evaluate(module, parse(path.name, chunk), file_loader, self.errors)
