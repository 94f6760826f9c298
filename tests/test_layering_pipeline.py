"""The pluggable layering pipeline (nixpkgs' flatten_references_graph model)."""

from __future__ import annotations

import pytest

from strata.errors import UserError
from strata.layering.autolayer import auto_layer
from strata.layering.pipeline import default_pipeline, plan_layers, run_pipeline
from strata.layering.popularity import group_by_popularity
from strata.store.closure import Closure, PathInfo, closure_of
from test_layering_autolayer import EDGES, SIZES, named
from test_layering_popularity import graph, sp


def closure(edges: dict[str, list[str]], sizes: dict[str, int]) -> Closure:
    infos = [
        PathInfo(sp(k), tuple(sp(r) for r in v), sizes.get(k, 0), "sha256:x")
        for k, v in edges.items()
    ]
    return closure_of([sp("app")], infos)


G = graph(EDGES, SIZES)


def test_default_is_popularity_with_limit() -> None:
    for max_layers in (2, 3, 4, 8, 100):
        expected = group_by_popularity(G, max_layers)
        assert run_pipeline(G, default_pipeline(max_layers - 1)) == [sorted(x) for x in expected]
        assert plan_layers(closure(EDGES, SIZES), max_layers) == [sorted(x) for x in expected]


def test_auto_layer_step_matches_function() -> None:
    assert run_pipeline(G, [["auto_layer", 3]]) == [sorted(x) for x in auto_layer(G, 3)]


def test_subcomponents_and_remove() -> None:
    out = run_pipeline(G, [["subcomponent_out", [sp("big2")]]])
    assert named(out) == [["big2", "lib2", "libc"], ["app", "big1", "lib1"]]
    inn = run_pipeline(G, [["subcomponent_in", [sp("libc")]]])
    assert named(inn) == [["app", "big1", "big2", "libc"], ["lib1", "lib2"]]
    removed = run_pipeline(G, [["remove_paths", [sp("app"), sp("lib1")]]])
    assert named(removed) == [["big1", "big2", "lib2", "libc"]]


def test_split_paths_main_common_rest() -> None:
    layers = run_pipeline(G, [["split_paths", [sp("big1")]]])
    # main: big1 and what only it reaches; common: libc (big2 reaches it too); rest.
    assert named(layers) == [["big1", "lib1"], ["libc"], ["app", "big2", "lib2"]]


def test_over_map_reverse_flatten_and_limit() -> None:
    steps = [
        ["subcomponent_out", [sp("big1")]],
        ["over", 0, [["popularity_contest"]]],
        ["map", [["remove_paths", [sp("app")]]]],
        ["flatten"],
        ["reverse"],
        ["limit_layers", 2],
    ]
    layers = run_pipeline(G, steps)
    # Reversed, the rest (big2, lib2; app removed) comes first; big1's side is merged.
    assert named(layers)[0] == ["big2", "lib2"]
    assert sorted(p for x in layers for p in x) == sorted(p for p in G.paths if p != sp("app"))
    assert len(layers) == 2


def test_step_errors_are_user_errors_with_text() -> None:
    with pytest.raises(UserError) as e:
        run_pipeline(G, [["shuffle"]])
    assert str(e.value) == (
        "layering pipeline: unknown step (got ['shuffle']); use one of: auto_layer, flatten, "
        "limit_layers, map, over, popularity_contest, remove_paths, reverse, split_paths, "
        "subcomponent_in, subcomponent_out"
    )
    with pytest.raises(UserError, match=r"step \['reverse'\]: needs a list \(got a graph\)"):
        run_pipeline(G, [["reverse"]])
    with pytest.raises(UserError, match=r"is not in the closure; name a path of the closure"):
        run_pipeline(G, [["remove_paths", ["/nix/store/" + "0" * 32 + "-x"]]])
    with pytest.raises(UserError, match=r"needs a positive number \(got 0\)"):
        run_pipeline(G, [["popularity_contest"], ["limit_layers", 0]])


def test_plan_layers_over_budget() -> None:
    with pytest.raises(UserError) as e:
        plan_layers(closure(EDGES, SIZES), 4, base_layers=1, steps=[["popularity_contest"]])
    assert str(e.value) == (
        "layering pipeline: the pipeline makes 6 store path layers but only 2 are left after "
        "1 base and 1 customisation layer (got max_layers = 4); end the pipeline with "
        '["limit_layers", 2]'
    )
