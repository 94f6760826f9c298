"""Which targets are tests, and what running one takes from its attributes.

A test is a target of a rule declared with `test = True`, or a native
`sh_test`. Its `size` (small, medium, large, enormous) and `timeout` (short,
moderate, long, eternal) give the time it may take (60, 300, 900 or 3600
seconds, a timeout's default coming from the size); `args` and `env` are
applied to every run, `$(location ...)` expanded, as Bazel's test encyclopedia
describes: https://bazel.build/reference/test-encyclopedia
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING

from strata.engine.analysis.natives import expand_make_vars
from strata.engine.analysis.result import TargetInfo, TestSpec
from strata.engine.loading.labels import Label
from strata.errors import UserError

if TYPE_CHECKING:
    from strata.engine.loading.targets import TargetDecl

SIZES = {"small": "short", "medium": "moderate", "large": "long", "enormous": "eternal"}
"""Each size and the timeout it implies."""
TIMEOUTS = {"short": 60, "moderate": 300, "long": 900, "eternal": 3600}
"""Seconds a test may run, by timeout name."""


def is_test(decl: TargetDecl) -> bool:
    return decl.kind == "sh_test" or bool(decl.schema is not None and decl.schema.test)


def test_spec(
    decl: TargetDecl, lookup: Callable[[Label], TargetInfo | None], bin_dir: str
) -> TestSpec | None:
    """The test part of `decl`'s info, or None when it is not a test."""
    if not is_test(decl):
        return None
    label = decl.label
    size = decl.attrs.get("size") or "medium"
    if size not in SIZES:
        raise UserError(
            f'size must be one of {", ".join(SIZES)} (got {size!r}); set size = "small" or '
            "another of those",
            where=str(label),
        )
    timeout = decl.attrs.get("timeout") or SIZES[size]
    if timeout not in TIMEOUTS:
        raise UserError(
            f"timeout must be one of {', '.join(TIMEOUTS)} (got {timeout!r}); set "
            'timeout = "short" or another of those',
            where=str(label),
        )

    def expand(text: str) -> str:
        return expand_make_vars(text, label, lookup, {}, bin_dir)

    args: list[str] = []
    for arg in decl.attrs.get("args") or ():
        try:
            args.extend(shlex.split(expand(arg)))
        except ValueError as e:
            raise UserError(
                f"args cannot be split as a shell would ({e}) (got {arg!r}); fix the quoting",
                where=str(label),
            ) from None
    env = tuple((k, expand(v)) for k, v in sorted((decl.attrs.get("env") or {}).items()))
    return TestSpec(
        size=size,
        timeout=timeout,
        tags=tuple(decl.attrs.get("tags") or ()),
        args=tuple(args),
        env=env,
    )
