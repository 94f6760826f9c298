from __future__ import annotations

import dataclasses

from enginekit import BIN, sh
from strata.engine.actionkey import action_key, explain_difference, key_material


def test_key_changes_with_every_ingredient() -> None:
    base = sh("//:a", "cp in out", ["in", "tool"], [f"{BIN}/o"], env=(("A", "1"),))
    digests = {"in": "1" * 64, "tool": "2" * 64}
    k = action_key(key_material(base, digests))
    assert k == action_key(key_material(base, dict(digests)))
    assert len(k) == 64
    variants = [
        dataclasses.replace(base, argv=("/bin/sh", "-c", "cp in out2")),
        dataclasses.replace(base, env=(("A", "2"),)),
        dataclasses.replace(base, outputs=(f"{BIN}/p",)),
        dataclasses.replace(base, kind="write"),
        dataclasses.replace(base, content=b"x"),
    ]
    keys = {action_key(key_material(v, digests)) for v in variants}
    keys.add(action_key(key_material(base, {**digests, "tool": "3" * 64})))
    assert k not in keys and len(keys) == 6
    # The owner label and progress message do not change what an action computes.
    same = dataclasses.replace(base, owner="//:other", progress_message="hi")
    assert action_key(key_material(same, digests)) == k


def test_explain_difference_names_what_changed() -> None:
    a = sh("//:a", "x", ["in", "old"], [f"{BIN}/o"], env=(("A", "1"), ("B", "1")))
    b = sh("//:a", "y", ["in", "new"], [f"{BIN}/o"], env=(("A", "1"), ("B", "2")))
    old = key_material(a, {"in": "1" * 64, "old": "0" * 64})
    new = key_material(b, {"in": "2" * 64, "new": "0" * 64})
    assert explain_difference(old, new) == [
        "input in changed",
        "new input new",
        "input old removed",
        "command line changed",
        "environment changed: B",
    ]
    assert explain_difference(old, old) == []
