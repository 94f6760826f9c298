"""Size-aware grouping (auto-layer) and its invariants."""

from __future__ import annotations

import random

import pytest

from strata.errors import UserError
from strata.layering.autolayer import auto_layer, dominators
from strata.layering.graph import Graph
from test_layering_popularity import graph, names, sp

EDGES = {
    "app": ["big1", "big2"],
    "big1": ["lib1", "libc"],
    "big2": ["lib2", "libc"],
    "lib1": [],
    "lib2": [],
    "libc": [],
}
SIZES = {"app": 1, "big1": 1000, "big2": 900, "lib1": 10, "lib2": 10, "libc": 50}


def named(layers: list[list[str]]) -> list[list[str]]:
    return [sorted(names(layer)) for layer in layers]


def test_dominators() -> None:
    g = graph(EDGES, SIZES)
    idom = dominators(g)
    by_name = {g.paths[v].split("-", 1)[1]: v for v in range(len(g.paths))}
    top = len(g.paths)

    def dom(x: str) -> str:
        d = idom[by_name[x]]
        return "top" if d == top else g.paths[d].split("-", 1)[1]

    assert {x: dom(x) for x in EDGES} == {
        "app": "top",
        "big1": "app",
        "big2": "app",
        "lib1": "big1",
        "lib2": "big2",
        "libc": "app",
    }


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (1, [["app", "big1", "big2", "lib1", "lib2", "libc"]]),
        # big1 (largest) takes lib1, which only it needs; libc is shared with big2's side.
        (3, [["libc"], ["big1", "lib1"], ["app", "big2", "lib2"]]),
        # With big1 and big2 as primaries libc would be a group shared by both (4 layers);
        # making libc the third primary also gives 4, and the largest N that fits wins.
        (4, [["big1", "lib1"], ["big2", "lib2"], ["libc"], ["app"]]),
        (6, [["big1"], ["big2"], ["libc"], ["lib1"], ["lib2"], ["app"]]),
        (100, [["big1"], ["big2"], ["libc"], ["lib1"], ["lib2"], ["app"]]),
    ],
)
def test_auto_layer_example(limit: int, expected: list[list[str]]) -> None:
    assert named(auto_layer(graph(EDGES, SIZES), limit)) == expected


def test_limit_2_and_5() -> None:
    g = graph(EDGES, SIZES)
    # One primary already makes 3 layers (big1's, libc shared, the rest): none fit in 2.
    assert named(auto_layer(g, 2)) == [["app", "big1", "big2", "lib1", "lib2", "libc"]]
    # Three primaries (big1, big2, libc) make 4 layers; the 4th primary (lib1) makes 5.
    assert len(auto_layer(g, 5)) == 5


def test_invariants_on_random_graphs() -> None:
    rng = random.Random(3)
    for trial in range(20):
        n = rng.randint(1, 60)
        nodes = [f"n{i}" for i in range(n)]
        edges = {p: [q for q in nodes[i + 1 :] if rng.random() < 0.08] for i, p in enumerate(nodes)}
        sizes = {p: rng.randint(1, 1000) for p in nodes}
        g = graph(edges, sizes)
        for limit in (1, 2, 5, 17, 100):
            layers = auto_layer(g, limit)
            flat = [p for layer in layers for p in layer]
            assert sorted(flat) == sorted(g.paths), (trial, limit)
            assert 1 <= len(layers) <= limit
            assert all(layer for layer in layers)
            assert auto_layer(g, limit) == layers


def test_empty_and_bad_limit() -> None:
    assert auto_layer(Graph.from_edges({}, {}), 5) == []
    with pytest.raises(UserError, match=r"auto_layer: layer limit must be at least 1 \(got 0\)"):
        auto_layer(graph(EDGES, SIZES), 0)
    assert sp("x").startswith("/nix/store/")
