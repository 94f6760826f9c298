"""What a .bzl file says in its source: its top-level names, loads and macros.

Evaluation cannot show which names a file exports (its top-level names
without a leading `_`; loaded names are not re-exported, as in Bazel), what
each is bound to through `load()` and assignments, or a macro's parameters
and docstring (Google style: an `Args:` section of `name (type): text`).
The source does. Starlark's syntax is a subset of Python's, so Python's
`ast` reads it.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.engine.loading.labels import Label
from strata.errors import UserError


@dataclass(frozen=True)
class Binding:
    kind: str
    """"load", "alias", "def", "call" or "other"."""
    node: ast.AST | None = None
    target: tuple[str, str] | None = None
    """For "load" and "alias": the (module, name) it names."""


def module_key(text: str, current: str) -> str:
    """A load() label as the loader keys modules (`//pkg:file.bzl`), relative to `current`."""
    package = current[2:].split(":", 1)[0]
    label = Label.parse(text, repo="", package=package, where=current)
    if label.repo not in ("", "strata"):
        raise UserError(f"{current}: load of another repository (got {text}); document strata only")
    return f"//{label.package}:{label.name}"


def _path(root: Path, module: str) -> Path:
    package, _, name = module[2:].partition(":")
    return root / package / name


class Sources:
    """The parsed .bzl files and what each top-level name is bound to."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.trees: dict[str, ast.Module] = {}
        self.bindings: dict[str, dict[str, Binding]] = {}

    def tree(self, module: str) -> ast.Module:
        if module not in self.trees:
            path = _path(self.root, module)
            try:
                self.trees[module] = ast.parse(path.read_text(), filename=str(path))
            except SyntaxError as err:
                raise UserError(
                    f"{module}:{err.lineno}: cannot read as Starlark ({err.msg}); fix the file"
                ) from None
        return self.trees[module]

    def names(self, module: str) -> dict[str, Binding]:
        if module in self.bindings:
            return self.bindings[module]
        out: dict[str, Binding] = {}
        for stmt in self.tree(module).body:
            if isinstance(stmt, ast.FunctionDef):
                out[stmt.name] = Binding("def", stmt)
            elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target = stmt.targets[0]
                if not isinstance(target, ast.Name):
                    continue
                value = stmt.value
                if isinstance(value, ast.Name):
                    out[target.id] = Binding("alias", value, (module, value.id))
                elif isinstance(value, ast.Call):
                    out[target.id] = Binding("call", value)
                else:
                    out[target.id] = Binding("other", value)
            elif (
                isinstance(stmt, ast.Expr)
                and isinstance(stmt.value, ast.Call)
                and isinstance(stmt.value.func, ast.Name)
                and stmt.value.func.id == "load"
            ):
                call = stmt.value
                first = call.args[0] if call.args else None
                if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                    continue
                source = module_key(first.value, module)
                for arg in call.args[1:]:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        out[arg.value] = Binding("load", arg, (source, arg.value))
                for kw in call.keywords:
                    if kw.arg and isinstance(kw.value, ast.Constant):
                        out[kw.arg] = Binding("load", kw.value, (source, str(kw.value.value)))
        self.bindings[module] = out
        return out

    def resolve(self, module: str, name: str) -> tuple[str, str, Binding]:
        """Follow loads and `a = b` to where `name` is defined."""
        seen: set[tuple[str, str]] = set()
        while (module, name) not in seen:
            seen.add((module, name))
            binding = self.names(module).get(name)
            if binding is None:
                raise UserError(f"{module}: no top-level name '{name}' (got a reference to it)")
            if binding.target is None:
                return module, name, binding
            module, name = binding.target
        raise UserError(f"{module}: '{name}' is defined in terms of itself")


def starlark(value: Any) -> str:
    """A default value as Starlark source."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(starlark(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{starlark(k)}: {starlark(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Label):
        return json.dumps(str(value))
    return json.dumps(str(value))


def source_default(node: ast.expr) -> str:
    try:
        return starlark(ast.literal_eval(node))
    except ValueError:
        return ast.unparse(node)


_ARG = re.compile(r"^(\w+)(?:\s*\(([^)]*)\))?:\s*(.*)$")


def split_docstring(text: str) -> tuple[str, dict[str, tuple[str, str]]]:
    """(description, {parameter: (type, doc)}) of a Google-style docstring."""
    lines = text.splitlines()
    body: list[str] = []
    args: dict[str, tuple[str, str]] = {}
    i = 0
    while i < len(lines):
        if lines[i].strip() != "Args:":
            body.append(lines[i])
            i += 1
            continue
        i += 1
        indent = -1
        current = ""
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
            line = lines[i]
            depth = len(line) - len(line.lstrip())
            m = _ARG.match(line.strip())
            if m and (indent < 0 or depth == indent):
                indent = depth
                current = m.group(1)
                args[current] = (m.group(2) or "", m.group(3))
            elif line.strip() and current:
                kind, doc = args[current]
                args[current] = (kind, f"{doc} {line.strip()}")
            i += 1
    return "\n".join(body).strip(), args


@dataclass
class Macro:
    params: list[tuple[str, ast.expr | None]]
    kwargs: str
    docstring: str


def macro_signature(fn: ast.FunctionDef) -> Macro:
    a = fn.args
    positional = a.posonlyargs + a.args
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(a.defaults))
    defaults += list(a.defaults)
    params = list(zip([p.arg for p in positional], defaults, strict=True))
    params += list(zip([p.arg for p in a.kwonlyargs], a.kw_defaults, strict=True))
    return Macro(params, a.kwarg.arg if a.kwarg else "", ast.get_docstring(fn) or "")
