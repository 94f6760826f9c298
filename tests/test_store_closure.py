"""Closures: transitive references, JSON round trip, deterministic order."""

from __future__ import annotations

import json

import pytest

from strata.canonical import json_bytes
from strata.errors import UserError
from strata.store.closure import Closure, PathInfo, closure_of

S = "/nix/store/"
A = S + "a" * 32 + "-app"
B = S + "b" * 32 + "-bash"
C = S + "c" * 32 + "-libc"
X = S + "d" * 32 + "-unrelated"


def infos() -> list[PathInfo]:
    return [
        PathInfo(C, (C,), 100, "sha256:" + "0" * 52),
        PathInfo(A, (C, B, A), 10, "sha256:" + "1" * 52),
        PathInfo(B, (C,), 50, "sha256:" + "2" * 52),
        PathInfo(X, (), 1, "sha256:" + "3" * 52),
    ]


def test_closure_is_transitive_sorted_and_ignores_unreachable() -> None:
    c = closure_of([A], infos())
    assert [p.path for p in c.paths] == [A, B, C]
    assert c.roots == (A,)
    assert c.by_path()[A].references == (A, B, C)
    assert c.edges() == [(A, B), (A, C), (B, C)]
    assert c.nar_size == 160
    assert closure_of([A], list(reversed(infos()))) == c


def test_json_round_trip_is_byte_stable() -> None:
    c = closure_of([A, X], infos())
    data = c.to_bytes()
    back = Closure.from_json(json.loads(data), "closure.json")
    assert back == c
    assert back.to_bytes() == data
    assert json.loads(data)["paths"][0] == {
        "narHash": "sha256:" + "1" * 52,
        "narSize": 10,
        "path": A,
        "references": [A, B, C],
    }
    assert data == json_bytes(c.to_json())


def test_reads_nixpkgs_exportReferencesGraph_list() -> None:
    raw = [p.to_json() for p in infos() if p.path != X]
    c = Closure.from_json(raw, "graph")
    assert c.roots == (A,)
    assert len(c.paths) == 3


def test_missing_reference_names_the_referrer() -> None:
    with pytest.raises(UserError) as e:
        closure_of([A], [i for i in infos() if i.path != B])
    assert str(e.value) == (
        f"closure: store path {B} (referenced by {A}) has no description "
        "(got 3 described paths); add it to the closure"
    )


def test_bad_entries_are_user_errors() -> None:
    with pytest.raises(UserError, match=r"closure entry lacks key 'narHash'"):
        Closure.from_json([{"path": A, "references": [], "narSize": 1}], "g.json")
    with pytest.raises(UserError, match="wrong type"):
        Closure.from_json([{"path": A, "references": "x", "narSize": 1, "narHash": ""}], "g")
    with pytest.raises(UserError, match="described twice"):
        closure_of([A], [*infos(), PathInfo(A, (), 3, "sha256:x")])
