from __future__ import annotations

import pytest

from enginekit import BIN, sh
from strata.engine.analysis.graph import build_graph
from strata.errors import UserError


def test_closure_orders_dependencies_first_and_skips_unneeded() -> None:
    a = sh("//:a", "", ["src.txt"], [f"{BIN}/a"])
    b = sh("//:b", "", [f"{BIN}/a"], [f"{BIN}/b"])
    c = sh("//:c", "", [f"{BIN}/a", f"{BIN}/b"], [f"{BIN}/c"])
    unrelated = sh("//:u", "", [], [f"{BIN}/u"])
    g = build_graph([c, unrelated, b, a])
    order = [g.actions[i].owner for i in g.closure([f"{BIN}/c"])]
    assert order == ["//:a", "//:b", "//:c"]
    assert g.producer_of(f"{BIN}/b") is b
    assert g.producer_of("src.txt") is None


def test_two_producers_of_one_output() -> None:
    with pytest.raises(UserError) as info:
        build_graph([sh("//:a", "", [], [f"{BIN}/x"]), sh("//:b", "", [], [f"{BIN}/x"])])
    assert str(info.value) == (
        f"//:b: output {BIN}/x is produced by two actions (got //:a Genrule and //:b Genrule); "
        "give each action its own output file"
    )


def test_generated_input_without_producer() -> None:
    with pytest.raises(UserError) as info:
        build_graph([sh("//p:a", "", [f"{BIN}/p/gone"], [f"{BIN}/p/a"])])
    assert str(info.value) == (
        f"//p:a: Genrule reads a generated file no action produces (got {BIN}/p/gone); "
        "declare it as an output of some action or depend on the target that does"
    )


def test_output_outside_bazel_out() -> None:
    with pytest.raises(UserError, match=r"declares an output outside bazel-out \(got 'p/a'\)"):
        build_graph([sh("//p:a", "", [], ["p/a"])])


def test_cycle_is_printed() -> None:
    x = sh("//:x", "", [f"{BIN}/z"], [f"{BIN}/x"])
    y = sh("//:y", "", [f"{BIN}/x"], [f"{BIN}/y"])
    z = sh("//:z", "", [f"{BIN}/y"], [f"{BIN}/z"], mnemonic="Zip")
    with pytest.raises(UserError) as info:
        build_graph([x, y, z])
    assert str(info.value) == (
        "//:x: dependency cycle between actions (got //:x (Genrule) -> //:z (Zip) -> "
        "//:y (Genrule) -> //:x (Genrule)); break the cycle so no action needs its own output"
    )
