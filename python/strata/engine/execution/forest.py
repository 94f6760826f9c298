"""The execroot's symlink forest: how a source's execroot path resolves outside a sandbox.

Bazel's execroot (`<output_base>/execroot/<workspace>`) holds, beside
`bazel-out/`, one symlink per top-level entry of the main repository and
`external/<repo>` per external repository, so an action run there (a
non-sandboxed persistent worker, or `--spawn_strategy=local`) reads
`pkg/file.txt` or `external/repo/x` by the path its command line names, as
it would in a sandbox. strata plants the same links for the actions it runs
in place (strata.engine.execution.executor): lazily, the first time an action needs a
top-level name in a build, checking an existing link once a build and
replacing it if it points elsewhere (a moved repository).

A name that cannot be planted (a real file or directory in the way) makes
the caller stage that action in a sandbox instead.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from strata.engine.analysis.graph import is_generated

EXTERNAL = "external/"


def top_entry(path: str) -> str:
    """The forest entry a source's execroot path goes through: `pkg` or `external/<repo>`."""
    if path.startswith(EXTERNAL):
        repo = path[len(EXTERNAL) :].split("/", 1)[0]
        return EXTERNAL + repo
    return path.split("/", 1)[0]


class Forest:
    def __init__(self, execroot: Path, source_path: Callable[[str], Path]) -> None:
        self.execroot = execroot
        self.source_path = source_path
        """Where a source's execroot path lives (the workspace, a repository's directory)."""
        self._planted: dict[str, bool] = {}
        """Entries checked this build, and whether each is a link to its repository."""

    def plant(self, inputs: Iterable[str]) -> bool:
        """Link every source input's top-level entry into the execroot; False if one cannot be."""
        seen = self._planted
        for path in inputs:
            if is_generated(path):
                continue
            top = top_entry(path)
            ok = seen.get(top)
            if ok is None:
                ok = seen[top] = self._link(top)
            if not ok:
                return False
        return True

    def _link(self, top: str) -> bool:
        if top in ("", "external", EXTERNAL) or top.startswith("bazel-out"):
            return False
        target = os.fspath(self.source_path(top))
        dest = self.execroot / top
        with contextlib.suppress(OSError):
            if os.readlink(dest) == target:
                return True
        if os.path.lexists(dest) and not os.path.islink(dest):
            return False
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.forest.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, dest)
        return True
