"""referencesByPopularity: order store paths by how much the closure leans on them.

This is nixpkgs' `closure-graph.py` (pkgs/build-support/references-by-popularity,
Graham Christensen, https://grahamc.com/blog/nix-and-layered-docker-images).
Its popularity of a path is the number of times the path appears when the
reference graph is unrolled into a tree from every root (a path referenced
by nothing), self-references dropped; that is, the number of distinct
reference chains from any root down to the path, the root counting once for
itself. nixpkgs computes it by materialising the tree; we count the same
number by dynamic programming over a topological order, so a 10,000-path
closure takes milliseconds rather than exponential time.

Order: most popular first; equal popularity ordered by nixpkgs'
`package_name` key (the path with its hash part moved to the end, so
`bash-5.2` sorts by name, hash last), ascending. Every path has a distinct
key, so the order is total and deterministic.

Grouping (`group_by_popularity`), as dockerTools.buildLayeredImage does:
`max_layers` counts every layer of the image, so the store paths get
`available = max_layers - base_layers - 1` (the 1 is the customisation
layer); the first `available - 1` paths in popularity order get a layer
each and all the rest share the last one.
"""

from __future__ import annotations

from strata.errors import UserError
from strata.layering.graph import Graph

CUSTOMISATION_LAYERS = 1


def popularity(graph: Graph) -> dict[str, int]:
    counts = [0] * len(graph.paths)
    for i in graph.roots():
        counts[i] = 1
    for i in graph.topological():
        c = counts[i]
        for r in graph.refs[i]:
            counts[r] += c
    return dict(zip(graph.paths, counts, strict=True))


def package_name(path: str) -> str:
    """nixpkgs' tie-break key: `/nix/store/abc-foo-1.0` → `foo-1.0-/nix/store/abc`."""
    parts = path.split("-")
    return "-".join([*parts[1:], parts[0]])


def order_by_popularity(graph: Graph) -> list[str]:
    pop = popularity(graph)
    return sorted(graph.paths, key=lambda p: (-pop[p], package_name(p)))


def available_layers(max_layers: int, base_layers: int = 0, where: str = "max_layers") -> int:
    """Layers left for store paths after the base image and the customisation layer."""
    if base_layers < 0:
        raise UserError(f"base layer count is negative (got {base_layers}); fix it", where=where)
    available = max_layers - base_layers - CUSTOMISATION_LAYERS
    if available < 1:
        raise UserError(
            f"no layer is left for store paths: the base image uses {base_layers} and the "
            f"customisation layer uses {CUSTOMISATION_LAYERS} (got max_layers = {max_layers}); "
            f"set max_layers to at least {base_layers + CUSTOMISATION_LAYERS + 1}",
            where=where,
        )
    return available


def limit(ordered: list[list[str]], n: int) -> list[list[str]]:
    """Keep the first n-1 groups; merge the rest into the n-th."""
    if n < 1:
        raise UserError(f"layer limit must be at least 1 (got {n}); raise it", where="limit_layers")
    if len(ordered) <= n:
        return [list(g) for g in ordered]
    tail = [p for g in ordered[n - 1 :] for p in g]
    return [list(g) for g in ordered[: n - 1]] + [tail]


def group_by_popularity(graph: Graph, max_layers: int, base_layers: int = 0) -> list[list[str]]:
    """dockerTools' default layering: one layer per popular path, the rest in one."""
    available = available_layers(max_layers, base_layers)
    return limit([[p] for p in order_by_popularity(graph)], available)
