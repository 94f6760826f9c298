"""The action graph: which action produces each generated file, and in what order to run them.

Built from the flat list of `Action`s analysis returns. Every execroot path
under `bazel-out/` must have exactly one producer; anything else is a source
file. We check the whole graph up front (duplicate producers, generated
inputs nobody produces, cycles) so a build never fails half-way for a reason
that was visible before the first action ran.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from strata.engine.action import Action
from strata.errors import UserError

GENERATED_PREFIX = "bazel-out/"


def is_generated(path: str) -> bool:
    return path.startswith(GENERATED_PREFIX)


def action_outputs(action: Action) -> tuple[str, ...]:
    return action.outputs + action.output_dirs


def action_inputs(action: Action) -> tuple[str, ...]:
    """Declared inputs, plus a symlink's target (it must exist before the link is made)."""
    if action.kind == "symlink" and action.symlink_target not in action.inputs:
        return action.inputs + (action.symlink_target,)
    return action.inputs


@dataclass(frozen=True)
class ActionGraph:
    actions: tuple[Action, ...]
    producer: dict[str, int]
    """Generated execroot path (file or tree artifact) → index into `actions`."""
    sources: tuple[tuple[str, ...], ...] = field(default=(), compare=False, repr=False)
    """Each action's source inputs (its `inputs` not under bazel-out/), in order: a
    closure's 235,000 inputs are mostly generated, and a no-op needs the sources only."""
    _deps: dict[int, list[int]] = field(default_factory=dict, compare=False, repr=False)
    """`deps` already computed: a closure's actions have 235,000 inputs between them."""

    def producer_of(self, path: str) -> Action | None:
        i = self.producer.get(path)
        return None if i is None else self.actions[i]

    def sources_of(self, index: int) -> tuple[str, ...]:
        """`actions[index]`'s source inputs (see `sources`)."""
        if self.sources:
            return self.sources[index]
        return tuple(p for p in self.actions[index].inputs if not is_generated(p))

    def deps(self, index: int) -> list[int]:
        """Indices of the actions producing `actions[index]`'s generated inputs (sorted)."""
        known = self._deps.get(index)
        if known is None:
            producer = self.producer
            found = {producer[p] for p in action_inputs(self.actions[index]) if p in producer}
            known = self._deps[index] = sorted(found)
        return list(known)

    def closure(self, paths: Iterable[str]) -> list[int]:
        """Indices of every action needed to produce `paths`, dependencies before dependents."""
        order: list[int] = []
        seen: set[int] = set()
        stack = [
            (i, False) for i in sorted({self.producer[p] for p in paths if p in self.producer})
        ]
        stack.reverse()
        while stack:
            i, expanded = stack.pop()
            if expanded:
                order.append(i)
                continue
            if i in seen:
                continue
            seen.add(i)
            stack.append((i, True))
            stack.extend((d, False) for d in reversed(self.deps(i)) if d not in seen)
        return order


def build_graph(actions: Sequence[Action]) -> ActionGraph:
    producer: dict[str, int] = {}
    for i, action in enumerate(actions):
        for out in action_outputs(action):
            if not is_generated(out):
                raise UserError(
                    f"{action.mnemonic} declares an output outside bazel-out (got {out!r}); "
                    "declare outputs with ctx.actions.declare_file",
                    where=action.owner,
                )
            if out in producer:
                other = actions[producer[out]]
                raise UserError(
                    f"output {out} is produced by two actions (got {other.owner} "
                    f"{other.mnemonic} and {action.owner} {action.mnemonic}); "
                    "give each action its own output file",
                    where=action.owner,
                )
            producer[out] = i
    deps: dict[int, list[int]] = {}
    sources: list[tuple[str, ...]] = []
    for i, action in enumerate(actions):
        sources.append(tuple(p for p in action.inputs if not p.startswith(GENERATED_PREFIX)))
        found: set[int] = set()
        for path in action_inputs(action):
            j = producer.get(path)
            if j is not None:
                found.add(j)
            elif path.startswith(GENERATED_PREFIX):
                raise UserError(
                    f"{action.mnemonic} reads a generated file no action produces (got {path}); "
                    "declare it as an output of some action or depend on the target that does",
                    where=action.owner,
                )
        deps[i] = sorted(found)
    graph = ActionGraph(tuple(actions), producer, tuple(sources), deps)
    cycle = find_cycle(graph)
    if cycle:
        shown = " -> ".join(f"{a.owner} ({a.mnemonic})" for a in (graph.actions[i] for i in cycle))
        raise UserError(
            f"dependency cycle between actions (got {shown}); "
            "break the cycle so no action needs its own output",
            where=graph.actions[cycle[0]].owner,
        )
    return graph


def find_cycle(graph: ActionGraph) -> list[int]:
    """One cycle as action indices, first repeated at the end; empty if the graph is acyclic."""
    white, grey, black = 0, 1, 2
    color = [white] * len(graph.actions)
    for start in range(len(graph.actions)):
        if color[start] != white:
            continue
        path: list[int] = []
        stack: list[tuple[int, list[int]]] = [(start, graph.deps(start))]
        color[start] = grey
        path.append(start)
        while stack:
            node, todo = stack[-1]
            if not todo:
                stack.pop()
                path.pop()
                color[node] = black
                continue
            nxt = todo.pop(0)
            if color[nxt] == grey:
                return path[path.index(nxt) :] + [nxt]
            if color[nxt] == white:
                color[nxt] = grey
                path.append(nxt)
                stack.append((nxt, graph.deps(nxt)))
    return []
