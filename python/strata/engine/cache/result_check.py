"""Whether a cached action result may stand in for running the action.

Cache entries are input from outside the build: a shared `--disk_cache` or a
remote cache is written by other machines and people, and bytes rot. Using an
entry writes files, so a result naming `/etc/x`, `../x`, a tree entry leaving
its tree or a file below a symlink of the tree would write outside the output
tree, and one lacking a declared output would pass for a hit while the file
does not exist. A result is accepted only if it has exactly the shape a fresh
run of the action gives (see `Executor._collect`): the declared output files
as files, the declared output directories as trees, every tree entry a
normalised relative path inside its tree with nothing below a file or a
symlink, and tree symlinks obeying the rule Bazel applies to fresh tree
outputs (`link_leaves_tree`). Everything else is a miss.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence

from strata.engine.action import Action
from strata.engine.cache import ActionResult, OutputFile, OutputSymlink, OutputTree

_SHA256 = re.compile(r"[0-9a-f]{64}\Z")


def link_leaves_tree(rel: str, target: str) -> bool:
    """True if the relative symlink `rel -> target` in a tree points outside the tree.

    Bazel's rule for tree artifacts: a relative target must stay inside,
    an absolute one is allowed (it must only resolve).
    """
    if target.startswith("/"):
        return False
    inside = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    return inside == ".." or inside.startswith("../")


def _show(value: object) -> str:
    """An untrusted value, quoted and cut short, safe to print on one line."""
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _bad_relative_path(path: object) -> str | None:
    if not isinstance(path, str) or not path or "\0" in path:
        return f"an invalid path {_show(path)}"
    if path.startswith("/"):
        return f"an absolute path {_show(path)}"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return f"a path that is not normalised {_show(path)}"
    return None


def _bad_file(f: object) -> str | None:
    if not isinstance(f, OutputFile):
        return f"a record that is not a file {_show(f)}"
    if not isinstance(f.sha256, str) or not _SHA256.match(f.sha256):
        return f"a file with an invalid sha256 {_show(f.sha256)}"
    if isinstance(f.size, bool) or not isinstance(f.size, int) or f.size < 0:
        return f"a file with an invalid size {_show(f.size)}"
    if not isinstance(f.executable, bool):
        return f"a file with an invalid executable flag {_show(f.executable)}"
    return None


def _bad_outputs(kind: str, got: Sequence[str], declared: Iterable[str]) -> str | None:
    want = set(declared)
    seen: set[str] = set()
    for path in got:
        if path in seen:
            return f"it lists output {kind} {_show(path)} twice"
        seen.add(path)
        if path not in want:
            return f"it has undeclared output {kind} {_show(path)}"
    missing = sorted(want - seen)
    if missing:
        return f"it lacks declared output {kind} {missing[0]}"
    return None


def _bad_tree(tree: OutputTree) -> str | None:
    where = f"tree {tree.path}"
    kinds: dict[str, str] = {}
    entries: list[tuple[str, OutputFile | OutputSymlink]] = [
        *(("file", f) for f in tree.files),
        *(("symlink", sl) for sl in tree.symlinks),
    ]
    for kind, entry in entries:
        if not isinstance(entry, (OutputFile, OutputSymlink)):
            return f"{where} has a record that is not a file or symlink {_show(entry)}"
        why = _bad_relative_path(entry.path)
        if why is not None:
            return f"{where} has {why}"
        if entry.path in kinds:
            return f"{where} lists {_show(entry.path)} twice"
        kinds[entry.path] = kind
    for path in kinds:
        parts = path.split("/")
        for n in range(1, len(parts)):
            parent = "/".join(parts[:n])
            if parent in kinds:
                return f"{where} has {_show(path)} below the {kinds[parent]} {_show(parent)}"
    for sl in tree.symlinks:
        target = sl.target
        if not isinstance(target, str) or not target or "\0" in target:
            return f"{where} has a symlink with an invalid target {_show(target)}"
        if link_leaves_tree(sl.path, target):
            return f"{where} has a symlink leaving it ({_show(sl.path)} -> {_show(target)})"
    for f in tree.files:
        why = _bad_file(f)
        if why is not None:
            return f"{where} has {why}"
    return None


def validate_result(action: Action, result: ActionResult) -> str | None:
    """None if `result` has exactly the shape a run of `action` gives; else why it has not."""
    if not isinstance(result, ActionResult):
        return f"it is not an action result {_show(result)}"
    files = [f.path if isinstance(f, OutputFile) else f for f in result.files]
    trees = [t.path if isinstance(t, OutputTree) else t for t in result.trees]
    for path in files + trees:
        if not isinstance(path, str):
            return f"it has an output with an invalid path {_show(path)}"
    for path in files:
        if path in action.output_dirs:
            return f"declared output directory {path} is a file in it"
    for path in trees:
        if path in action.outputs:
            return f"declared output file {path} is a directory in it"
    why = _bad_outputs("file", files, action.outputs) or _bad_outputs(
        "directory", trees, action.output_dirs
    )
    if why is not None:
        return why
    for f in result.files:
        why = _bad_file(f)
        if why is not None:
            return f"it has {why}"
    for t in result.trees:
        why = _bad_tree(t)
        if why is not None:
            return why
    return None
