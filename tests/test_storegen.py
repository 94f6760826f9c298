"""The parity tests' generator: deterministic, covering the shapes it promises, and shrinking."""

from __future__ import annotations

from collections import Counter

import storegen
from storegen import DIR, FILE, LINK, STORE_LINK, SetSpec

SETS = storegen.generate(1111, 200, dangling=True)


def test_same_seed_same_sets() -> None:
    assert storegen.generate(1111, 200, dangling=True) == SETS
    assert storegen.generate(1112, 200, dangling=True) != SETS


def test_sets_cover_every_shape_the_parity_test_promises() -> None:
    seen: Counter[str] = Counter()
    for spec in SETS:
        assert 1 <= len(spec.paths) <= 5
        for p in spec.paths:
            for rel, e in p.entries.items():
                seen[e.kind] += 1
                seen["empty file"] += e.kind == FILE and not e.data
                seen["big file"] += len(e.data) > 3 * storegen.MIB - 1
                seen["executable"] += e.executable
                seen["hard link"] += bool(e.same_file_as)
                seen["non-ASCII name"] += not rel.isascii()
                seen["200-character name"] += any(len(c) == 200 for c in rel.split("/"))
                seen["dangling link"] += e.kind == LINK and e.target in (
                    "missing",
                    "../../nowhere/x",
                )
                seen["nested"] += rel.count("/") >= 2
    for shape in (FILE, DIR, LINK, STORE_LINK, "empty file", "executable", "hard link"):
        assert seen[shape] >= 10, shape
    for shape in ("non-ASCII name", "200-character name", "dangling link", "nested"):
        assert seen[shape] >= 10, shape
    # only a handful of sets carry the multi-MiB files (CI time)
    big = [
        s
        for s in SETS
        if any(len(e.data) > storegen.MIB for p in s.paths for e in p.entries.values())
    ]
    assert 2 <= len(big) <= 12, len(big)
    assert SETS[0] == storegen.issue_set()


def test_shrink_finds_the_smallest_shape_that_still_differs() -> None:
    """A made-up difference: any set in which a path has lib64 as a link."""

    def differs(spec: SetSpec) -> bool:
        return any(
            p.entries.get("lib64", None) == storegen.Entry(LINK, target="lib") for p in spec.paths
        )

    rounds: list[int] = []

    def differing(candidates: list[SetSpec]) -> list[SetSpec]:
        rounds.append(len(candidates))
        return [c for c in candidates if differs(c)]

    small = storegen.shrink(storegen.issue_set(), differing, 50)
    assert [list(p.entries) for p in small.paths] == [["lib64"]]
    assert len(rounds) < 50
