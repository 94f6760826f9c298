"""tools/fuzz stays runnable: every target for a few hundred inputs, and the harness itself.

The full runs (100,000 inputs a target) are `tools/fuzz`; here each target
must run its inputs, reach more than one outcome (inputs that all fail the
first check would fuzz nothing), and find no crash that is not already
known. A toy target checks that a crash is caught, shrunk, saved and
replayed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from fuzzers import TARGETS  # noqa: E402
from fuzzers.harness import Files, Target, fuzz, known, read_files, replay  # noqa: E402

EXAMPLES = 200


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_each_target_runs_and_finds_no_new_crash(name: str, tmp_path: Path) -> None:
    report = fuzz(TARGETS[name], EXAMPLES, tmp_path, random_seed=13)
    assert report.inputs == EXAMPLES
    assert len(report.outcomes) > 1, report.outcomes
    new = {sig: c.traceback for sig, c in report.crashes.items() if known(sig) is None}
    assert not new, "\n".join(new.values())


def _toy(files: Files, scratch: Path) -> str:
    data = files["input"]
    if b"\x07" in data:
        raise KeyError("bell")
    if len(data) > 3:
        from strata.errors import UserError

        raise UserError("bang", where="toy")
    return "ok"


def test_a_crash_is_shrunk_saved_and_replayed(tmp_path: Path) -> None:
    toy = Target("toy", "a target that crashes on a bell byte", st.binary().map(
        lambda b: {"input": b}), _toy)  # fmt: skip
    report = fuzz(toy, 300, tmp_path, random_seed=1)
    assert report.inputs == 300
    assert list(report.crashes) == ["KeyError at test_fuzz_smoke.py:39 _toy"]
    crash = next(iter(report.crashes.values()))
    assert crash.saved is not None
    assert read_files(crash.saved / "input") == {"input": b"\x07"}  # shrunk to the bell alone
    text = (crash.saved / "crash.txt").read_text()
    assert "signature: KeyError at test_fuzz_smoke.py:39 _toy" in text
    assert "KeyError: 'bell'" in text
    outcome, sig, _tb = replay(toy, crash.saved)
    assert (outcome, sig) == ("crash", crash.signature)
    assert any(o.startswith("UserError: bang") for o in report.outcomes)
