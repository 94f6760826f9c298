"""Size-aware grouping, after nixpkgs' auto-layer (pkgs/build-support/docker/auto-layer.py).

Most closures hold a few large paths and many small ones. To share the most
bytes between images, the largest paths should sit in layers of their own,
together with whatever only they need; small shared dependencies can be
grouped by *who* needs them, so that two images with the same large paths
share those groups too.

Algorithm (our implementation of the description in nixpkgs' auto-layer.py):

1. Take the N largest paths by NAR size (ties by path) as *primaries*.
2. A primary's layer is the primary plus every path it dominates: paths that
   can only be reached from the closure's roots through that primary (the
   dominator tree of the reference graph, computed once). A dominated path
   goes to its nearest dominating primary.
3. Every other path is grouped with the paths depended on by exactly the same
   set of primaries; paths no primary depends on form one last group.
4. N grows from 0 while the layer count stays within the limit; the largest
   N that fits wins.

Layer order, bottom first: shared groups (needed by more primaries first),
primary layers (largest first), then the group no primary needs, which holds
the roots and so changes most often. Paths inside a layer are sorted.
"""

from __future__ import annotations

from strata.errors import UserError
from strata.layering.graph import Graph


def dominators(graph: Graph) -> list[int]:
    """Immediate dominator of each path; `len(paths)` is the virtual root above all roots."""
    n = len(graph.paths)
    top = n
    idom = [top] * (n + 1)
    depth = [0] * (n + 1)
    for v in graph.topological():
        preds = graph.referrers[v]
        if not preds:
            d = top
        else:
            d = preds[0]
            for p in preds[1:]:
                a, b = d, p
                while a != b:
                    while depth[a] > depth[b]:
                        a = idom[a]
                    while depth[b] > depth[a]:
                        b = idom[b]
                    if a != b:
                        a, b = idom[a], idom[b]
                d = a
        idom[v] = d
        depth[v] = depth[d] + 1
    return idom[:n]


class _State:
    """Primaries chosen so far, with the per-path facts that make adding one cheap."""

    def __init__(self, graph: Graph, dom_children: list[list[int]]) -> None:
        self.graph = graph
        self.dom_children = dom_children
        n = len(graph.paths)
        self.primaries: list[int] = []
        self.is_primary = [False] * n
        self.owner = [-1] * n  # nearest dominating primary, or -1
        self.mask = [0] * n  # bit k set: primary k depends on the path (or is it)

    def add(self, p: int) -> None:
        bit = 1 << len(self.primaries)
        self.primaries.append(p)
        self.is_primary[p] = True
        for v in self.graph.reachable([p]):
            self.mask[v] |= bit
        stack = [p]
        while stack:
            v = stack.pop()
            self.owner[v] = p
            stack.extend(c for c in self.dom_children[v] if not self.is_primary[c])

    def groups(self) -> dict[int, list[int]]:
        """Free paths by the set (bit mask) of primaries depending on them."""
        out: dict[int, list[int]] = {}
        for v, owner in enumerate(self.owner):
            if owner < 0:
                out.setdefault(self.mask[v], []).append(v)
        return out

    def layer_count(self) -> int:
        free = {m for m, owner in zip(self.mask, self.owner, strict=True) if owner < 0}
        return len(self.primaries) + len(free)


def auto_layer(graph: Graph, max_layers: int) -> list[list[str]]:
    """Group `graph` into at most `max_layers` layers (the layers for store paths)."""
    if max_layers < 1:
        raise UserError(
            f"layer limit must be at least 1 (got {max_layers}); raise it", where="auto_layer"
        )
    n = len(graph.paths)
    dom_children: list[list[int]] = [[] for _ in range(n)]
    for v, d in enumerate(dominators(graph)):
        if d < n:
            dom_children[d].append(v)
    by_size = sorted(range(n), key=lambda i: (-graph.sizes[i], graph.paths[i]))
    chosen = n  # never more layers than paths: all fit when n <= max_layers
    if n > max_layers:
        probe = _State(graph, dom_children)
        for k, p in enumerate(by_size):
            probe.add(p)
            if probe.layer_count() > max_layers:
                chosen = k
                break
    state = _State(graph, dom_children)
    for p in by_size[:chosen]:
        state.add(p)
    return _layers(state, graph)


def _layers(state: _State, graph: Graph) -> list[list[str]]:
    owned: dict[int, list[str]] = {p: [] for p in state.primaries}
    for v, owner in enumerate(state.owner):
        if owner >= 0:
            owned[owner].append(graph.paths[v])
    groups = state.groups()
    shared = sorted(
        (m for m in groups if m), key=lambda m: (-bin(m).count("1"), graph.paths[groups[m][0]])
    )
    layers = [sorted(graph.paths[v] for v in groups[m]) for m in shared]
    layers += [sorted(owned[p]) for p in state.primaries]
    if 0 in groups:
        layers.append(sorted(graph.paths[v] for v in groups[0]))
    return layers
