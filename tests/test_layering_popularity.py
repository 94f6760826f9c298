"""referencesByPopularity and max_layers accounting, as dockerTools does it."""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict

import pytest

from strata.errors import UserError
from strata.layering.graph import Graph
from strata.layering.popularity import (
    available_layers,
    group_by_popularity,
    order_by_popularity,
    package_name,
    popularity,
)
from strata.store import base32


def sp(name: str) -> str:
    h = base32.encode(hashlib.sha256(name.encode()).digest()[:20])
    return f"/nix/store/{h}-{name}"


def graph(edges: dict[str, list[str]], sizes: dict[str, int] | None = None) -> Graph:
    return Graph.from_edges(
        {sp(k): [sp(r) for r in v] for k, v in edges.items()},
        {sp(k): v for k, v in (sizes or {}).items()},
    )


def names(paths: list[str]) -> list[str]:
    return [p.split("-", 1)[1] for p in paths]


def tree_popularity(edges: dict[str, list[str]]) -> dict[str, int]:
    """nixpkgs' closure-graph.py method, unrolled literally: count tree occurrences."""
    referenced = {r for k, v in edges.items() for r in v if r != k}
    counts: dict[str, int] = defaultdict(int)

    def visit(p: str) -> None:
        counts[p] += 1
        for r in edges[p]:
            if r != p:
                visit(r)

    for root in sorted(set(edges) - referenced):
        visit(root)
    return dict(counts)


def test_nixpkgs_example() -> None:
    # The example in nixpkgs' closure-graph.py: foo -> bar, baz; bar -> baz; baz -> tux.
    edges = {"foo": ["foo", "bar", "baz"], "bar": ["bar", "baz"], "baz": ["tux"], "tux": []}
    g = graph(edges)
    assert {k.split("-", 1)[1]: v for k, v in popularity(g).items()} == {
        "foo": 1,
        "bar": 1,
        "baz": 2,
        "tux": 2,
    }
    assert names(order_by_popularity(g)) == ["baz", "tux", "bar", "foo"]


def test_popularity_equals_tree_unrolling_on_random_dags() -> None:
    rng = random.Random(7)
    for _ in range(30):
        n = rng.randint(1, 14)
        nodes = [f"p{i}" for i in range(n)]
        edges = {
            p: [q for q in nodes[i + 1 :] if rng.random() < 0.3]
            + ([p] if rng.random() < 0.3 else [])
            for i, p in enumerate(nodes)
        }
        expected = {sp(k): v for k, v in tree_popularity(edges).items()}
        assert popularity(graph(edges)) == expected


def test_ties_broken_by_name_then_hash_and_input_order_irrelevant() -> None:
    edges = {"app": ["zlib", "bash", "acl"], "zlib": [], "bash": [], "acl": []}
    g = graph(edges)
    # Every path has popularity 1 (the root counts once, each dependency once): by name.
    assert names(order_by_popularity(g)) == ["acl", "app", "bash", "zlib"]
    shuffled = dict(reversed(list(edges.items())))
    assert order_by_popularity(graph(shuffled)) == order_by_popularity(g)
    assert package_name("/nix/store/abc-foo-1.0") == "foo-1.0-/nix/store/abc"


def chain(n: int) -> Graph:
    """n paths p00 -> p01 -> ...: all of popularity 1, so ordered by name."""
    return graph({f"p{i:02d}": [f"p{i + 1:02d}"] if i + 1 < n else [] for i in range(n)})


@pytest.mark.parametrize(
    ("n_paths", "expected_sizes"),
    [
        (0, []),
        (9, [1] * 9),  # max_layers - 1: every path its own layer
        (10, [1] * 8 + [2]),  # max_layers: the last two share
        (11, [1] * 8 + [3]),  # max_layers + 1
    ],
)
def test_max_layers_edges(n_paths: int, expected_sizes: list[int]) -> None:
    g = chain(n_paths)
    layers = group_by_popularity(g, max_layers=10)
    assert [len(layer) for layer in layers] == expected_sizes
    assert [p for layer in layers for p in layer] == order_by_popularity(g)


def test_base_layers_consume_the_budget() -> None:
    g = chain(5)
    assert [len(x) for x in group_by_popularity(g, max_layers=10, base_layers=6)] == [1, 1, 3]
    assert [len(x) for x in group_by_popularity(g, max_layers=10, base_layers=8)] == [5]
    assert available_layers(100, 3) == 96


def test_no_layer_left_is_an_error_saying_by_what() -> None:
    with pytest.raises(UserError) as e:
        group_by_popularity(chain(3), max_layers=10, base_layers=9)
    assert str(e.value) == (
        "max_layers: no layer is left for store paths: the base image uses 9 and the "
        "customisation layer uses 1 (got max_layers = 10); set max_layers to at least 11"
    )
    with pytest.raises(UserError, match=r"base image uses 0 .* \(got max_layers = 1\)"):
        group_by_popularity(chain(0), max_layers=1)


def test_cycle_is_reported() -> None:
    with pytest.raises(UserError, match=r"reference graph has a cycle through /nix/store/"):
        order_by_popularity(graph({"a": ["b"], "b": ["a"]}))
