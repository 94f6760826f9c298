"""The public API of strata's rules, as the rules reference documents it.

Rules and repository rules are evaluated by the engine's loader, which keeps
each one's `doc` and attribute schema (every attribute's `doc`, type,
default and whether it is mandatory); which names a file exports, and
macros, come from the source (`bzl_sources`).

A macro that passes `**kwargs` on to a rule takes that rule's attributes too:
they are listed with the rule's documentation, minus those the macro sets
itself. A rule wrapped by exactly one public macro (`layered_image_rule`
under `layered_image`) is a "raw" rule: its entry points at the macro and
lists only the attributes that differ.

An undocumented public attribute or macro parameter is an error, so the
reference cannot silently lose one.
"""

from __future__ import annotations

import ast
import inspect
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strata.engine.loading.bzl_sources import (
    Binding,
    Sources,
    macro_signature,
    source_default,
    split_docstring,
    starlark,
)
from strata.engine.loading.labels import Label
from strata.engine.loading.loader import STRATA_ROOT, RuleDoc
from strata.errors import UserError

PUBLIC_FILES = ("//rules:defs.bzl", "//rules:repositories.bzl")
"""The files users load, in the order their symbols are documented."""

_KINDS = {
    "string": "string",
    "string_list": "list of strings",
    "string_dict": "dict: string → string",
    "string_list_dict": "dict: string → list of strings",
    "int": "int",
    "int_list": "list of ints",
    "bool": "bool",
    "label": "label",
    "label_list": "list of labels",
    "label_keyed_string_dict": "dict: label → string",
    "output": "output file",
    "output_list": "list of output files",
}


@dataclass(frozen=True)
class Attribute:
    name: str
    kind: str
    default: str
    """Starlark source of the default; "" when mandatory."""
    doc: str


@dataclass
class Symbol:
    name: str
    kind: str
    """"rule", "repository rule", "macro" or "provider"."""
    definition: tuple[str, str]
    """(module, name) where it is defined: one entry however many files export it."""
    doc: str
    attributes: list[Attribute]
    loads: list[str] = field(default_factory=list)
    """The public files that export it, as labels."""
    executable: bool = False
    test: bool = False
    wraps: tuple[str, str] | None = None
    """The rule (or macro) a macro passes `**kwargs` to."""
    calls_repository_rule: bool = False
    raw_for: str = ""
    """For a raw rule: the one public macro around it."""
    renamed: dict[str, str] = field(default_factory=dict)
    """A macro's parameters that set a differently typed or named attribute of `wraps`."""


def _kind(spec: dict[str, Any]) -> str:
    kind = _KINDS.get(str(spec.get("type")), str(spec.get("type")))
    values = spec.get("values") or []
    if values:
        kind += ": " + ", ".join(starlark(v) for v in values)
    if spec.get("allow_single_file"):
        kind += " (one file)"
    return kind


def _rule_attributes(rule: RuleDoc) -> list[Attribute]:
    what = "repository" if rule.repository else "target"
    out = [Attribute("name", "name", "", f"A unique name for this {what}.")]
    for name, spec in rule.attrs.items():
        if name.startswith("_"):
            continue
        mandatory = bool(spec.get("mandatory"))
        default = "" if mandatory else starlark(spec.get("default"))
        out.append(Attribute(name, _kind(spec), default, str(spec.get("doc") or "")))
    return out


class Reference:
    """The documented symbols of the public files of a strata checkout."""

    def __init__(self, root: Path = STRATA_ROOT, public: tuple[str, ...] = PUBLIC_FILES) -> None:
        self.root = root
        self.public = public
        self.sources = Sources(root)
        self.rules = _evaluate(root, public)
        self.module_docs: dict[str, str] = {
            m: inspect.cleandoc(ast.get_docstring(self.sources.tree(m)) or "") for m in public
        }
        self.symbols: list[Symbol] = []
        self._by_definition: dict[tuple[str, str], Symbol] = {}
        problems: list[str] = []
        for module in public:
            for name in self.sources.names(module):
                if name.startswith("_") or self.sources.names(module)[name].kind == "load":
                    continue
                symbol = self._symbol(module, name, problems)
                if symbol is not None:
                    symbol.loads.append("@strata" + module)
        self._mark_raw_rules()
        for s in self.symbols:
            problems += [
                f"{s.definition[0]}: {s.name}: attribute '{a.name}' has no doc"
                + (" (a macro parameter: document it under Args:)" if s.kind == "macro" else "")
                for a in s.attributes
                if not a.doc.strip()
            ]
            if not s.doc.strip():
                problems.append(f"{s.definition[0]}: {s.name} has no doc")
        if problems:
            raise UserError(
                f"undocumented public API (got {len(problems)}: {'; '.join(problems)}); "
                "write the missing doc= strings or docstring Args"
            )

    # ---- extraction -------------------------------------------------------

    def _symbol(self, module: str, name: str, problems: list[str]) -> Symbol | None:
        where, defined, binding = self.sources.resolve(module, name)
        key = (where, defined)
        if key in self._by_definition:
            return self._by_definition[key]
        symbol = self._describe(name, where, defined, binding, problems)
        if symbol is None:
            return None
        self._by_definition[key] = symbol
        self.symbols.append(symbol)
        return symbol

    def _describe(
        self, name: str, module: str, defined: str, binding: Binding, problems: list[str]
    ) -> Symbol | None:
        key = (module, defined)
        if key in self.rules:
            rule = self.rules[key]
            return Symbol(
                name=name,
                kind="repository rule" if rule.repository else "rule",
                definition=key,
                doc=rule.doc,
                attributes=_rule_attributes(rule),
                executable=rule.executable,
                test=rule.test,
            )
        node = binding.node
        if binding.kind == "call" and isinstance(node, ast.Call):
            func = node.func.id if isinstance(node.func, ast.Name) else ""
            if func == "provider":
                return _provider(name, key, node)
            if func in ("rule", "repository_rule"):
                problems.append(f"{module}: {defined}: a {func}() the engine did not evaluate")
            return None
        if binding.kind == "def" and isinstance(node, ast.FunctionDef):
            return self._describe_macro(name, module, node, problems)
        return None

    def _describe_macro(
        self, name: str, module: str, fn: ast.FunctionDef, problems: list[str]
    ) -> Symbol:
        macro = macro_signature(fn)
        description, args = split_docstring(macro.docstring)
        wrapped: Symbol | None = None
        explicit: dict[str, ast.expr] = {}
        calls_repository_rule = False
        for call in ast.walk(fn):
            if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
                continue
            callee = call.func.id
            if callee not in self.sources.names(module):
                continue
            target = self._symbol_at(module, callee)
            if target is None:
                continue
            if target.kind == "repository rule" or target.calls_repository_rule:
                calls_repository_rule = True
            passes_kwargs = any(
                kw.arg is None and isinstance(kw.value, ast.Name) and kw.value.id == macro.kwargs
                for kw in call.keywords
            )
            if macro.kwargs and passes_kwargs:
                wrapped = target
                explicit = {kw.arg: kw.value for kw in call.keywords if kw.arg}
        inherited = {a.name: a for a in wrapped.attributes} if wrapped else {}
        attributes: list[Attribute] = []
        renamed: dict[str, str] = {}
        for param, default in macro.params:
            kind, doc = args.get(param, ("", ""))
            # The attribute this parameter sets, and whether it sets it unchanged.
            sets = [a for a, v in explicit.items() if any(_names(v, param))]
            same = [a for a, v in explicit.items() if isinstance(v, ast.Name) and v.id == param]
            base = inherited.get(same[0]) if same else None
            if param == "name":
                base = base or Attribute("name", "name", "", "A unique name for this target.")
            if sets and sets != [param] or param not in same:
                renamed[param] = sets[0] if sets else param
            if base is not None:
                kind = kind or base.kind
                doc = doc or base.doc
            attributes.append(
                Attribute(param, kind, "" if default is None else source_default(default), doc)
            )
        own = {p for p, _ in macro.params}
        for a in inherited.values():
            if a.name not in explicit and a.name not in own:
                attributes.append(a)
        return Symbol(
            name=name,
            kind="macro",
            definition=(module, fn.name),
            doc=description,
            attributes=attributes,
            executable=wrapped.executable if wrapped else False,
            test=wrapped.test if wrapped else False,
            wraps=wrapped.definition if wrapped else None,
            calls_repository_rule=calls_repository_rule,
            renamed=renamed,
        )

    def _symbol_at(self, module: str, name: str) -> Symbol | None:
        """What a macro calls: a public symbol, or a private helper (whose docs do not count)."""
        where, defined, binding = self.sources.resolve(module, name)
        key = (where, defined)
        if key in self._by_definition:
            return self._by_definition[key]
        return self._describe(defined, where, defined, binding, [])

    def _mark_raw_rules(self) -> None:
        wrappers: dict[tuple[str, str], list[Symbol]] = {}
        for s in self.symbols:
            if s.kind == "macro" and s.wraps is not None:
                wrappers.setdefault(s.wraps, []).append(s)
        for s in self.symbols:
            around = wrappers.get(s.definition, [])
            if s.kind in ("rule", "repository rule") and len(around) == 1:
                s.raw_for = around[0].name

    def group(self, s: Symbol) -> str:
        if s.kind == "provider":
            return "provider"
        if s.raw_for:
            return "raw"
        if s.kind == "repository rule" or s.calls_repository_rule:
            return "workspace"
        return "build"

    def defined(self, key: tuple[str, str]) -> Symbol | None:
        """The public symbol defined at (module, name), if any."""
        return self._by_definition.get(key)

    def named(self, name: str) -> Symbol:
        return next(s for s in self.symbols if s.name == name)

    def doc(self, s: Symbol) -> str:
        """A macro around a raw rule carries that rule's documentation after its own."""
        if s.kind == "macro" and s.wraps is not None:
            rule = self._by_definition.get(s.wraps)
            if rule is not None and rule.raw_for == s.name:
                return f"{rule.doc.strip()}\n\n{s.doc}".strip()
        return s.doc.strip()


def _names(node: ast.AST, name: str) -> list[ast.Name]:
    return [n for n in ast.walk(node) if isinstance(n, ast.Name) and n.id == name]


def _provider(name: str, key: tuple[str, str], call: ast.Call) -> Symbol:
    kw = {k.arg: k.value for k in call.keywords if k.arg}
    doc = ast.literal_eval(kw["doc"]) if "doc" in kw else ""
    fields = ast.literal_eval(kw["fields"]) if "fields" in kw else {}
    if isinstance(fields, list):
        fields = {f: "" for f in fields}
    attributes = [Attribute(str(f), "", "", str(d)) for f, d in fields.items()]
    return Symbol(name=name, kind="provider", definition=key, doc=str(doc), attributes=attributes)


def _evaluate(root: Path, public: tuple[str, ...]) -> dict[tuple[str, str], RuleDoc]:
    """Every rule and repository rule the public files load, as the engine declares them."""
    # Imported here: the analysis package depends on much of the engine, and this
    # module is otherwise only source reading.
    from strata.engine.analysis.analysis import Analysis

    with tempfile.TemporaryDirectory(prefix="strata-docs-") as tmp:
        analysis = Analysis(root, Path(tmp))
        for module in public:
            analysis.loader.module(Label.parse(module))
        return dict(analysis.loader.rule_docs)
