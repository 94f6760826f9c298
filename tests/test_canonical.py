"""Canonical JSON out, and JSON inputs read with one error shape (strata.canonical)."""

from __future__ import annotations

from pathlib import Path

import pytest

from strata.canonical import json_bytes, read_json
from strata.errors import UserError


def test_json_bytes_sorts_keys_and_keeps_utf8() -> None:
    assert json_bytes({"b": 1, "a": ["é"]}) == '{"a":["é"],"b":1}'.encode()


def test_read_json_reads_a_value(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"layers": []}')
    assert read_json(tmp_path / "x.json", "thing", "fix it", "//p:t") == {"layers": []}


def test_a_missing_or_malformed_input_is_one_line_naming_it_and_the_fix(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UserError) as e:
        read_json(bad, "closure file", "pass a closure JSON", "//p:t")
    assert e.value.where == "//p:t"
    assert e.value.detail.startswith(f"cannot read closure file (got {bad}: Expecting property")
    assert e.value.detail.endswith("); pass a closure JSON")
    gone = r"^//p:t: cannot read info \(got .*/gone\.json: \[Errno 2\] "
    with pytest.raises(UserError, match=gone):
        read_json(tmp_path / "gone.json", "info", "pass an info output", "//p:t")
