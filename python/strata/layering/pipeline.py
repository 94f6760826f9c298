"""A small layering pipeline, modelled on nixpkgs' flatten_references_graph.

A pipeline is a list of steps, each `[name, *args]` (JSON-friendly, as in
nixpkgs' `layeringPipeline`). Steps transform a value that is either a
graph (a set of store paths with their references) or a list of values;
the final value is flattened, and every non-empty graph becomes one layer.

Steps:
  popularity_contest            graph → one graph per path, most popular first
  auto_layer N                  graph → at most N size-aware groups (autolayer.py)
  limit_layers N                list → first N-1 items kept, the rest merged into one
  split_paths [paths]           graph → [main, common, rest]: main is the paths and what
                                only they reach, common what they and others reach
  subcomponent_out [paths]      graph → [paths and what they reference, the rest]
  subcomponent_in [paths]       graph → [paths and what references them, the rest]
  remove_paths [paths]          drop paths anywhere in the value
  reverse                       list → reversed list
  over I [steps]                list → apply steps to item I
  map [steps]                   list → apply steps to every item
  flatten                       nested lists → one flat list

The default (`default_pipeline`) is `popularity_contest` then
`limit_layers available`: it is exactly what dockerTools.buildLayeredImage
has always done, so images moved from nixpkgs keep their layer boundaries
and their cache hits, and it needs no size information. `auto_layer` is the
better choice when NAR sizes are known and a few large paths dominate.
Induced subgraphs cut edges through removed paths, as in nixpkgs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

from strata.errors import UserError
from strata.layering.autolayer import auto_layer
from strata.layering.graph import Graph
from strata.layering.popularity import available_layers, limit, order_by_popularity
from strata.store.closure import Closure

Value: TypeAlias = "Graph | list[Value]"
Step = Sequence[Any]
WHERE = "layering pipeline"


def default_pipeline(available: int) -> list[Step]:
    return [["popularity_contest"], ["limit_layers", available]]


def _fail(step: Step, what: str, fix: str) -> UserError:
    return UserError(f"step {list(step)!r:.80}: {what}; {fix}", where=WHERE)


def _graph(value: Value, step: Step) -> Graph:
    if not isinstance(value, Graph):
        raise _fail(step, "needs a graph (got a list)", "use map or over to reach the graphs")
    return value


def _list(value: Value, step: Step) -> list[Value]:
    if not isinstance(value, list):
        raise _fail(step, "needs a list (got a graph)", "split the graph into a list first")
    return value


def _int_arg(step: Step, i: int) -> int:
    if len(step) <= i or not isinstance(step[i], int) or isinstance(step[i], bool):
        raise _fail(step, "needs an integer argument", f"write [{step[0]!r}, N]")
    n: int = step[i]
    if n < 1:
        raise _fail(step, f"needs a positive number (got {n})", "use 1 or more")
    return n


def _paths_arg(step: Step, i: int, known: frozenset[str]) -> list[str]:
    arg = step[i] if len(step) > i else None
    if not isinstance(arg, list) or not all(isinstance(p, str) for p in arg):
        raise _fail(step, "needs a list of store paths", f"write [{step[0]!r}, [paths]]")
    unknown = sorted(set(arg) - known)
    if unknown:
        raise _fail(step, f"{unknown[0]} is not in the closure", "name a path of the closure")
    return list(arg)


def _steps_arg(step: Step, i: int) -> list[Step]:
    arg = step[i] if len(step) > i else None
    if not isinstance(arg, list) or not all(isinstance(s, list) and s for s in arg):
        raise _fail(step, "needs a list of steps", f"write [{step[0]!r}, ..., [[step], ...]]")
    return arg


def _paths_of(value: Value) -> list[str]:
    if isinstance(value, Graph):
        return list(value.paths)
    return [p for v in value for p in _paths_of(v)]


def _flatten(value: Value) -> list[Graph]:
    if isinstance(value, Graph):
        return [value]
    return [g for v in value for g in _flatten(v)]


def _split(g: Graph, parts: Sequence[set[int]]) -> list[Value]:
    taken: set[int] = set()
    out: list[Value] = []
    for part in parts:
        out.append(g.subgraph(g.paths[i] for i in sorted(part - taken)))
        taken |= part
    out.append(g.subgraph(p for i, p in enumerate(g.paths) if i not in taken))
    return out


def _remove(value: Value, drop: set[str]) -> Value:
    if isinstance(value, Graph):
        return value.subgraph(p for p in value.paths if p not in drop)
    return [_remove(v, drop) for v in value]


class _Runner:
    def __init__(self, full: Graph) -> None:
        self.full = full
        self.known = frozenset(full.paths)
        self.ops: dict[str, Callable[[Value, Step], Value]] = {
            "popularity_contest": self.popularity_contest,
            "auto_layer": lambda v, s: [
                _graph(v, s).subgraph(layer) for layer in auto_layer(_graph(v, s), _int_arg(s, 1))
            ],
            "limit_layers": self.limit_layers,
            "split_paths": self.split_paths,
            "subcomponent_out": lambda v, s: self.subcomponent(v, s, reverse=False),
            "subcomponent_in": lambda v, s: self.subcomponent(v, s, reverse=True),
            "remove_paths": lambda v, s: _remove(v, set(_paths_arg(s, 1, self.known))),
            "reverse": lambda v, s: list(reversed(_list(v, s))),
            "over": self.over,
            "map": lambda v, s: [self.run(item, _steps_arg(s, 1)) for item in _list(v, s)],
            "flatten": lambda v, s: list(_flatten(_list(v, s))),
        }

    def run(self, value: Value, steps: Sequence[Step]) -> Value:
        for step in steps:
            if not isinstance(step, (list, tuple)) or not step or step[0] not in self.ops:
                raise UserError(
                    f"unknown step (got {step!r:.60}); use one of: {', '.join(sorted(self.ops))}",
                    where=WHERE,
                )
            value = self.ops[step[0]](value, step)
        return value

    def popularity_contest(self, value: Value, step: Step) -> Value:
        g = _graph(value, step)
        return [g.subgraph([p]) for p in order_by_popularity(g)]

    def limit_layers(self, value: Value, step: Step) -> Value:
        n = _int_arg(step, 1)
        groups = [g.paths for g in _flatten(_list(value, step))]
        return [self.full.subgraph(paths) for paths in limit([list(p) for p in groups], n)]

    def split_paths(self, value: Value, step: Step) -> Value:
        g = _graph(value, step)
        index = {p: i for i, p in enumerate(g.paths)}
        chosen = {index[p] for p in _paths_arg(step, 1, self.known) if p in index}
        below = g.reachable(chosen)
        # Reachable from the other roots without passing through a chosen path.
        outside = _reachable_avoiding(g, [i for i in g.roots() if i not in chosen], chosen)
        main = below - outside
        common = below & outside
        return _split(g, [main, common])

    def subcomponent(self, value: Value, step: Step, *, reverse: bool) -> Value:
        g = _graph(value, step)
        index = {p: i for i, p in enumerate(g.paths)}
        chosen = [index[p] for p in _paths_arg(step, 1, self.known) if p in index]
        return _split(g, [g.reachable(chosen, reverse=reverse)])

    def over(self, value: Value, step: Step) -> Value:
        items = list(_list(value, step))
        i = step[1] if len(step) > 1 else None
        if not isinstance(i, int) or isinstance(i, bool) or not -len(items) <= i < len(items):
            raise _fail(step, f"needs an index into a list of {len(items)}", "fix the index")
        items[i] = self.run(items[i], _steps_arg(step, 2))
        return items


def _reachable_avoiding(g: Graph, starts: list[int], blocked: set[int]) -> set[int]:
    seen: set[int] = set()
    stack = [s for s in starts if s not in blocked]
    while stack:
        i = stack.pop()
        if i not in seen:
            seen.add(i)
            stack.extend(r for r in g.refs[i] if r not in blocked)
    return seen


def run_pipeline(graph: Graph, steps: Sequence[Step]) -> list[list[str]]:
    """Run `steps` on the whole graph; each non-empty graph of the result is a layer."""
    result = _Runner(graph).run(graph, steps)
    return [sorted(g.paths) for g in _flatten(result) if g.paths]


def plan_layers(
    closure: Closure,
    max_layers: int,
    base_layers: int = 0,
    steps: Sequence[Step] | None = None,
) -> list[list[str]]:
    """Store-path layers for an image: the pipeline's groups, checked against the budget."""
    available = available_layers(max_layers, base_layers)
    layers = run_pipeline(Graph.of(closure), steps or default_pipeline(available))
    if len(layers) > available:
        raise UserError(
            f"the pipeline makes {len(layers)} store path layers but only {available} are left "
            f"after {base_layers} base and 1 customisation layer (got max_layers = {max_layers}); "
            f'end the pipeline with ["limit_layers", {available}]',
            where=WHERE,
        )
    return layers
