"""The engine's packages import only downwards (DESIGN.md, "Layout"), with no import cycle,
nor any in the rest of the strata package.

Every import counts, at module level, inside a function or under `TYPE_CHECKING`:
a cycle that only the type checker follows is still two modules that cannot be
understood one at a time.
"""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[1] / "python" / "strata" / "engine"
PACKAGE = "strata.engine"

DRIVERS = {"build", "bzl_api", "bzl_docs"}
"""Top-level modules above every phase; any other top-level module is shared by all."""

MAY_IMPORT = {
    "shared": {"shared"},
    "loading": {"loading", "shared"},
    "analysis": {"analysis", "loading", "shared"},
    "cache": {"cache", "shared"},
    "execution": {"execution", "analysis", "loading", "cache", "shared"},
}


def _modules(root: Path = ENGINE, package: str = PACKAGE) -> dict[str, Path]:
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join([package, *parts])] = path
    return found


def _imports(name: str, path: Path, known: set[str], package: str = PACKAGE) -> set[str]:
    """The `known` modules `name` imports, by any statement anywhere in it."""
    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                prefix = base[: len(base) - node.level + 1]
                module = ".".join(prefix + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets.add(module)
            targets.update(f"{module}.{a.name}" for a in node.names)
    # `from strata.engine import x` names the package too: only x counts
    return {t for t in targets if t in known and t != name and t != package}


def _graph(root: Path = ENGINE, package: str = PACKAGE) -> dict[str, set[str]]:
    modules = _modules(root, package)
    return {name: _imports(name, path, set(modules), package) for name, path in modules.items()}


def _layer(module: str) -> str:
    parts = module.split(".")[2:]
    if not parts:
        return "shared"
    if (ENGINE / parts[0]).is_dir():
        return parts[0]
    return "driver" if parts[0] in DRIVERS else "shared"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each import cycle once, as the path that closes it."""
    done: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            found.append(path[path.index(node) :] + [node])
            return
        if node in done:
            return
        for target in sorted(graph[node]):
            visit(target, [*path, node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])
    return found


def test_cycles_are_found_on_a_small_graph() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_every_phase_package_is_known() -> None:
    packages = {p.name for p in ENGINE.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(MAY_IMPORT) - {"shared"}


def test_no_import_cycle_in_the_engine() -> None:
    graph = _graph()
    assert len(graph) > 40  # the walk found the subpackages' modules
    assert _cycles(graph) == []


def test_no_import_cycle_in_the_strata_package() -> None:
    """The command line, worker, actions, library: a cycle there (cli -> bazel_worker ->
    worker -> cli, registry.pull <-> pull_referrers) was broken by passing the function
    down or by moving what both used below both."""
    graph = _graph(ENGINE.parent, "strata")
    assert len(graph) > 150
    assert _cycles(graph) == []


def test_engine_packages_import_only_downwards() -> None:
    wrong = []
    for module, targets in _graph().items():
        layer = _layer(module)
        if layer == "driver":
            continue
        for target in sorted(targets):
            if _layer(target) not in MAY_IMPORT[layer]:
                wrong.append(f"{module} ({layer}) imports {target} ({_layer(target)})")
    assert wrong == []
