"""The lines `strata test` ends with, in `bazel test`'s form (Bazel 4.2.3, checked by hand).

    //pkg:ok                                                        (cached) PASSED in 0.2s
    //pkg:bad                                                                FAILED in 0.1s
      /home/me/.cache/strata/<hash>/execroot/ws/bazel-out/k8-fastbuild/testlogs/pkg/bad/test.log

    Executed 1 out of 2 tests: 1 test passes and 1 fails locally.

A status ends at column 79 (a longer label pushes it right). Tests are listed
as Bazel 4.2.3 lists them: first those that did not run now (cached, or not
built: Bazel counts a test with no run as all cached), then the others; in
each group by status, in the order of Bazel's status numbers (NO STATUS,
PASSED, TIMEOUT, FAILED, FAILED TO BUILD), then by label. "Executed" counts
the tests that ran now, not those whose result was cached or that could not
be built.
"""

from __future__ import annotations

from collections.abc import Sequence

from strata.engine.execution.test_logs import (
    FAILED,
    FAILED_TO_BUILD,
    NO_STATUS,
    PASSED,
    TIMEOUT,
)
from strata.engine.execution.test_runner import TestResult

_ORDER = (NO_STATUS, PASSED, TIMEOUT, FAILED, FAILED_TO_BUILD)
"""Bazel's BlazeTestStatus numbers put these in this order."""
_WIDTH = 79


def result_lines(result: TestResult) -> list[str]:
    status = ("(cached) " if result.cached else "") + result.status
    timed = result.status in (PASSED, FAILED, TIMEOUT)
    line = (result.label + " ").ljust(_WIDTH - len(status)) + status
    if timed:
        line += f" in {result.seconds:.1f}s"
    lines = [line]
    if result.status in (FAILED, TIMEOUT) and result.log is not None:
        lines.append(f"  {result.log}")
    return lines


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def executed_line(results: Sequence[TestResult]) -> str:
    total = len(results)
    ran = sum(r.executed for r in results)
    by = {s: sum(r.status == s for r in results) for s in _ORDER}
    parts = []
    if by[PASSED]:
        parts.append(_count(by[PASSED], "test passes", "tests pass"))
    if by[FAILED_TO_BUILD]:
        parts.append(_count(by[FAILED_TO_BUILD], "fails to build", "fail to build"))
    if by[FAILED] + by[TIMEOUT]:
        parts.append(_count(by[FAILED] + by[TIMEOUT], "fails locally", "fail locally"))
    if by[NO_STATUS]:
        parts.append(_count(by[NO_STATUS], "was skipped", "were skipped"))
    if not parts:
        parts.append("no tests")
    said = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"Executed {ran} out of {_count(total, 'test', 'tests')}: {said}."


def summary(results: Sequence[TestResult]) -> list[str]:
    """Every test's line(s), sorted as Bazel sorts them, a blank line, then "Executed"."""
    lines: list[str] = []
    for r in sorted(results, key=lambda r: (r.executed, _ORDER.index(r.status), r.label)):
        lines.extend(result_lines(r))
    return [*lines, "", executed_line(results)]
