"""The analysis driver's targets, cut into top-level Starlark statements (see `BATCHES`)."""

from __future__ import annotations

from typing import Any

BATCHES = 64
"""Top-level statements the analysis driver is split into. Starlark collects garbage
only between statements, each collection costs time in proportion to what is still
alive, and a closure's rule implementations make far more garbage than they keep."""


def label_keys(kind: str, value: Any) -> list[str]:
    """The configured keys in a driver entry's label-typed attribute value."""
    if kind == "label":
        return [] if value is None else [value]
    if kind == "label_list":
        return list(value)
    return [k for k, _ in value]


def _weight(entry: dict[str, Any]) -> int:
    """Rough cost of analysing one driver entry: 1, plus the labels a rule receives."""
    attrs = entry.get("attrs", {})
    return 1 + sum(len(a["value"]) for a in attrs.values() if isinstance(a["value"], list))


def batches(targets: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """`targets` cut, in order, into about `BATCHES` slices of similar weight."""
    weights = [_weight(t) for t in targets]
    step = max(1, sum(weights) // BATCHES)
    out: list[list[dict[str, Any]]] = [[]]
    acc = 0
    for t, w in zip(targets, weights, strict=True):
        out[-1].append(t)
        acc += w
        if acc >= step:
            out.append([])
            acc = 0
    return [b for b in out if b] or [[]]
