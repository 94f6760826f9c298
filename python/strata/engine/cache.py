"""The cache interface: action results by action key, blobs by sha256.

The scheduler only talks to this small interface so that a local directory
(`cache_local.LocalDiskCache`) and, later, Bazel's HTTP remote-cache protocol
can stand behind it. Blobs are named by sha256, the digest Bazel's cache
protocol uses; action results list each output with its digest, size and
executable bit, and tree artifacts as a listing of their files.

Every getter may return "nothing" for any reason (missing, unreadable,
corrupt): a cache miss only costs a re-run, never a wrong output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class OutputFile:
    path: str
    """Execroot path of a file output; relative to the tree root inside an `OutputTree`."""
    sha256: str
    size: int
    executable: bool


@dataclass(frozen=True)
class OutputSymlink:
    """A symlink inside a tree artifact, kept as a link (as Bazel keeps it)."""

    path: str
    """Relative to the tree root."""
    target: str


@dataclass(frozen=True)
class OutputTree:
    path: str
    files: tuple[OutputFile, ...]
    symlinks: tuple[OutputSymlink, ...] = ()


@dataclass(frozen=True)
class ActionResult:
    files: tuple[OutputFile, ...]
    trees: tuple[OutputTree, ...] = ()

    def to_json(self) -> dict[str, Any]:
        def f(o: OutputFile) -> dict[str, Any]:
            return {"path": o.path, "sha256": o.sha256, "size": o.size, "executable": o.executable}

        return {
            "files": [f(o) for o in self.files],
            "trees": [
                {
                    "path": t.path,
                    "files": [f(o) for o in t.files],
                    "symlinks": [{"path": sl.path, "target": sl.target} for sl in t.symlinks],
                }
                for t in self.trees
            ],
        }

    @staticmethod
    def from_json(raw: Any) -> ActionResult:
        """Parse a stored result; raises ValueError/KeyError/TypeError if it is malformed."""

        def f(o: Any) -> OutputFile:
            ok = isinstance(o["sha256"], str) and len(o["sha256"]) == 64
            if not (ok and isinstance(o["path"], str) and isinstance(o["size"], int)):
                raise ValueError(f"bad output record {o!r}")
            return OutputFile(o["path"], o["sha256"], o["size"], bool(o["executable"]))

        return ActionResult(
            files=tuple(f(o) for o in raw["files"]),
            trees=tuple(
                OutputTree(
                    t["path"],
                    tuple(f(o) for o in t["files"]),
                    tuple(
                        OutputSymlink(str(sl["path"]), str(sl["target"]))
                        for sl in t.get("symlinks", ())
                    ),
                )
                for t in raw["trees"]
            ),
        )


class Cache(Protocol):
    def get_action_result(self, key: str) -> ActionResult | None: ...

    def put_action_result(self, key: str, result: ActionResult) -> None: ...

    def has_blob(self, sha256: str) -> bool: ...

    def get_blob(self, sha256: str, dest: Path) -> bool:
        """Write the blob to `dest` (replacing it); False if missing or its content is corrupt."""
        ...

    def put_blob(self, sha256: str, src: Path) -> None:
        """Store the file `src`, whose sha256 the caller has computed."""
        ...
