from __future__ import annotations

import dataclasses
import pickle

from enginekit import BIN, sh
from strata.engine.execution.actionkey import (
    action_key,
    explain_difference,
    key_material,
    record_key,
)


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


def test_record_key_changes_with_every_ingredient_action_key_covers() -> None:
    base = sh("//:a", "cp in out", ["in", "tool"], [f"{BIN}/o"], env=(("A", "1"),))
    digests = {"in": "1" * 64, "tool": "2" * 64, "other": "4" * 64}
    k = record_key(base, digests)
    assert k == record_key(dataclasses.replace(base), dict(digests)) and len(k) == 64
    variants = [
        dataclasses.replace(base, argv=("/bin/sh", "-c", "cp in out2")),
        dataclasses.replace(base, env=(("A", "2"),)),
        dataclasses.replace(base, outputs=(f"{BIN}/p",)),
        dataclasses.replace(base, output_dirs=(f"{BIN}/d",)),
        dataclasses.replace(base, kind="write"),
        dataclasses.replace(base, content=b"x"),
        dataclasses.replace(base, is_executable=True),
        dataclasses.replace(base, symlink_target="in"),
        dataclasses.replace(base, inputs=("in", "other", "tool")),
    ]
    keys = {record_key(v, digests) for v in variants}
    keys.add(record_key(base, {**digests, "tool": "3" * 64}))
    # swapping two inputs' digests is a different key, not the same bag of digests
    keys.add(record_key(base, {**digests, "in": "2" * 64, "tool": "1" * 64}))
    assert k not in keys and len(keys) == len(variants) + 2
    same = dataclasses.replace(base, owner="//:other", progress_message="hi", tags=("x",))
    assert record_key(same, digests) == k
    # what analysis computed is kept: a pickled action needs no second digest of its definition
    assert pickle.loads(pickle.dumps(base)).__dict__["definition"] == base.definition
