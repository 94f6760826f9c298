"""The reference graph of a closure, in the shape layering algorithms want.

Paths are numbered in sorted order and edges kept as index lists, with
self-references dropped (Nix paths often refer to themselves; that is not a
dependency). A closure's graph must be acyclic apart from self-references,
which Nix guarantees; anything else is a broken closure and reported. All
orders here are derived from sorted paths, so every algorithm built on this
is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from strata.errors import UserError
from strata.store.closure import Closure, PathInfo


@dataclass(frozen=True)
class Graph:
    """Paths (sorted), their NAR sizes and reference edges between them (by index)."""

    paths: tuple[str, ...]
    sizes: tuple[int, ...]
    refs: tuple[tuple[int, ...], ...]
    referrers: tuple[tuple[int, ...], ...]

    @staticmethod
    def of(closure: Closure | Iterable[PathInfo]) -> Graph:
        infos = closure.paths if isinstance(closure, Closure) else tuple(closure)
        return Graph.from_edges(
            {i.path: [r for r in i.references if r != i.path] for i in infos},
            {i.path: i.nar_size for i in infos},
        )

    @staticmethod
    def from_edges(edges: Mapping[str, Sequence[str]], sizes: Mapping[str, int]) -> Graph:
        """Build from path → references; references outside `edges` are dropped."""
        paths = tuple(sorted(edges))
        index = {p: i for i, p in enumerate(paths)}
        refs = tuple(
            tuple(sorted({index[r] for r in edges[p] if r in index and r != p})) for p in paths
        )
        back: list[list[int]] = [[] for _ in paths]
        for i, rs in enumerate(refs):
            for r in rs:
                back[r].append(i)
        return Graph(paths, tuple(sizes.get(p, 0) for p in paths), refs, tuple(map(tuple, back)))

    def subgraph(self, keep: Iterable[str]) -> Graph:
        """The graph induced by `keep`: edges through removed paths are cut, as in nixpkgs."""
        wanted = set(keep)
        return Graph.from_edges(
            {
                p: [self.paths[r] for r in self.refs[i]]
                for i, p in enumerate(self.paths)
                if p in wanted
            },
            dict(zip(self.paths, self.sizes, strict=True)),
        )

    def roots(self) -> list[int]:
        """Paths nothing else in the graph refers to."""
        return [i for i, back in enumerate(self.referrers) if not back]

    def topological(self) -> list[int]:
        """Referrers before references (Kahn's algorithm, lowest index first)."""
        import heapq

        pending = [len(b) for b in self.referrers]
        ready = [i for i, n in enumerate(pending) if n == 0]
        heapq.heapify(ready)
        order: list[int] = []
        while ready:
            i = heapq.heappop(ready)
            order.append(i)
            for r in self.refs[i]:
                pending[r] -= 1
                if pending[r] == 0:
                    heapq.heappush(ready, r)
        if len(order) != len(self.paths):
            stuck = min(self.paths[i] for i, n in enumerate(pending) if n > 0)
            raise UserError(
                f"reference graph has a cycle through {stuck} (got {len(self.paths) - len(order)} "
                "paths on or behind cycles); store paths may only refer to themselves",
                where="closure",
            )
        return order

    def reachable(self, starts: Iterable[int], *, reverse: bool = False) -> set[int]:
        """`starts` and everything they refer to (or, reversed, everything referring to them)."""
        edges = self.referrers if reverse else self.refs
        seen: set[int] = set()
        stack = list(starts)
        while stack:
            i = stack.pop()
            if i not in seen:
                seen.add(i)
                stack.extend(edges[i])
        return seen
