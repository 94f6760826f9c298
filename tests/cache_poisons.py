"""Poisoned action results for test_engine_cache_hostile.py: each a function of the good
result (and of where the build that meets it runs) giving an entry a cache must refuse,
as strata's own JSON or as a REAPI message with its trees."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from enginekit import BIN
from strata.canonical import json_bytes
from strata.engine.cache import ActionResult, OutputFile, OutputSymlink, OutputTree, reapi

FILE = f"{BIN}/pkg/f"
TREE = f"{BIN}/pkg/tree"
USE = f"{BIN}/pkg/use"


# -- the poisons --------------------------------------------------------------------


@dataclass(frozen=True)
class Ctx:
    canary: Path
    execroot: Path
    """Of the build that meets the poison."""
    disk: Path
    """Its local disk cache."""


Poison = Callable[[ActionResult, Ctx], "ActionResult | bytes"]


def _file(r: ActionResult) -> OutputFile:
    return r.files[0]


def _tree(r: ActionResult) -> OutputTree:
    return r.trees[0]


def _with_tree(r: ActionResult, **kw: Any) -> ActionResult:
    return replace(r, trees=(replace(_tree(r), **kw),))


def _tree_file(r: ActionResult, path: str) -> OutputFile:
    return replace(_tree(r).files[0], path=path)


FILE_POISONS: dict[str, Poison] = {
    "absolute path": lambda r, c: replace(r, files=(replace(_file(r), path=f"{c.canary}/pwned"),)),
    "extra absolute path": lambda r, c: replace(
        r, files=(_file(r), replace(_file(r), path=f"{c.canary}/pwned"))
    ),
    "dotdot path": lambda r, c: replace(
        r,
        files=(_file(r), replace(_file(r), path=os.path.relpath(c.canary / "pwned", c.execroot))),
    ),
    "dotdot inside a declared path": lambda r, c: replace(
        r, files=(replace(_file(r), path=f"{FILE}/../f"),)
    ),
    "sha256 naming a path": lambda r, c: replace(
        r, files=(replace(_file(r), sha256=os.path.relpath(c.canary / "keep", c.disk)),)
    ),
    "missing output": lambda r, c: replace(r, files=()),
    "extra output": lambda r, c: replace(
        r, files=(_file(r), replace(_file(r), path=f"{BIN}/pkg/extra"))
    ),
    "duplicate output": lambda r, c: replace(r, files=(_file(r), _file(r))),
    "file as tree": lambda r, c: ActionResult(
        (), (OutputTree(FILE, (replace(_file(r), path="x"),)),)
    ),
    "negative size": lambda r, c: replace(r, files=(replace(_file(r), size=-1),)),
    "empty json": lambda r, c: b"{}",
    "short protobuf": lambda r, c: b"\x20\x00",
    "garbage": lambda r, c: random.Random(7).randbytes(300),
    "wrong json types": lambda r, c: json_bytes(
        {"files": [{**r.to_json()["files"][0], "size": "6"}], "trees": []}
    ),
    "wrong protobuf wire types": lambda r, c: b"\x10\x01\x12\x03\x0a\x01\xff",
}

TREE_POISONS: dict[str, Poison] = {
    "tree entry escaping": lambda r, c: _with_tree(
        r, files=(*_tree(r).files, _tree_file(r, "../../../../../../../canary/pwned"))
    ),
    "tree entry absolute": lambda r, c: _with_tree(
        r, files=(*_tree(r).files, _tree_file(r, f"{c.canary}/pwned"))
    ),
    "tree entry not normalised": lambda r, c: _with_tree(
        r, files=(*_tree(r).files, _tree_file(r, "sub/./z"))
    ),
    "tree symlink to the canary with a file below it": lambda r, c: _with_tree(
        r,
        files=(*_tree(r).files, _tree_file(r, "evil/pwned")),
        symlinks=(*_tree(r).symlinks, OutputSymlink("evil", str(c.canary))),
    ),
    "tree symlink to / with a file below it": lambda r, c: _with_tree(
        r,
        files=(*_tree(r).files, _tree_file(r, f"evil{c.canary}/pwned")),
        symlinks=(*_tree(r).symlinks, OutputSymlink("evil", "/")),
    ),
    "tree symlink leaving the tree": lambda r, c: _with_tree(
        r, symlinks=(*_tree(r).symlinks, OutputSymlink("up", "../../../../../../canary"))
    ),
    "tree file below a tree file": lambda r, c: _with_tree(
        r, files=(*_tree(r).files, _tree_file(r, "y/z"))
    ),
    "tree lists an entry twice": lambda r, c: _with_tree(
        r, symlinks=(*_tree(r).symlinks, OutputSymlink("y", "sub/x"))
    ),
    "missing tree": lambda r, c: replace(r, trees=()),
    "tree as file": lambda r, c: ActionResult((replace(_tree(r).files[0], path=TREE),)),
}


def _reapi_tree(t: OutputTree) -> Any:
    """A `Tree` message for any listing, even one no real tree has (a file below a symlink)."""

    def node() -> dict[str, Any]:
        return {"dirs": {}, "files": [], "links": []}

    root = node()

    def parent(path: str) -> tuple[dict[str, Any], str]:
        *dirs, name = path.split("/")
        here = root
        for d in dirs:
            here = here["dirs"].setdefault(d, node())
        return here, name

    for f in t.files:
        here, name = parent(f.path)
        digest = reapi.Digest(hash=f.sha256, size_bytes=f.size)
        here["files"].append(reapi.FileNode(name=name, digest=digest, is_executable=True))
    for sl in t.symlinks:
        here, name = parent(sl.path)
        here["links"].append(reapi.SymlinkNode(name=name, target=sl.target))
    children: list[Any] = []

    def build(n: dict[str, Any]) -> Any:
        msg = reapi.Directory(files=n["files"], symlinks=n["links"])
        for name, sub in n["dirs"].items():
            child = build(sub)
            children.append(child)
            msg.directories.add(name=name, digest=reapi.message_digest(child))
        return msg

    return reapi.Tree(root=build(root), children=children)


def reapi_result(r: ActionResult) -> tuple[bytes, dict[str, bytes]]:
    msg = reapi.ActionResult()
    msg.execution_metadata.worker = "hostile"  # never an empty body, which is a plain miss
    for f in r.files:
        digest = reapi.Digest(hash=f.sha256, size_bytes=f.size)
        msg.output_files.add(path=f.path, digest=digest, is_executable=True)
    trees = {}
    for t in r.trees:
        data = reapi.encode(_reapi_tree(t))
        digest = reapi.digest_of(data)
        trees[digest.hash] = data
        msg.output_directories.add(path=t.path, tree_digest=digest)
    return reapi.encode(msg), trees
