"""The cache interface: action results by action key, blobs by sha256.

The scheduler only talks to this small interface so that a local directory
(`local.LocalDiskCache`), Bazel's HTTP remote-cache protocol (`http.HttpCache`)
or both (`tiered.TieredCache`) can stand behind it. The package imports only
the engine's shared records (`strata.engine.action`, `digests`, `redact`),
never a phase. Blobs are named by sha256, the digest Bazel's cache
protocol uses; action results list each output with its digest, size and
executable bit, and tree artifacts as a listing of their files.

Entries are untrusted: other machines write a shared cache, and bytes rot.
A getter returns None for a plain miss and raises `InvalidEntry` for an entry
that is there but unusable (unparseable, not the shape the action's check
asks for, a blob whose bytes do not match its sha256); the build treats both
as a miss, warns once about the second, and never stores such an entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from strata.engine.action import Action


class InvalidEntry(Exception):
    """A cache entry that exists but cannot be used; the caller runs the action instead."""

    def __init__(self, cache: str, why: str) -> None:
        super().__init__(f"{cache}: {why}")
        self.cache = cache
        """Which cache, e.g. `disk cache /path` or `remote cache http://host/prefix`."""
        self.why = why


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

    def paths(self) -> list[str]:
        """The execroot path of every output: each file, and each tree's root."""
        return [f.path for f in self.files] + [t.path for t in self.trees]

    def blob_digests(self) -> list[str]:
        """The sha256 of every file the outputs hold, trees' included: each once, sorted."""
        found = {f.sha256 for f in self.files}
        for t in self.trees:
            found.update(f.sha256 for f in t.files)
        return sorted(found)

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
        """Parse a stored result; raises ValueError if it is malformed in any way."""
        files = _items(raw, "files")
        trees = _items(raw, "trees")
        return ActionResult(
            files=tuple(_output_file(o) for o in files),
            trees=tuple(
                OutputTree(
                    _text(t, "path"),
                    tuple(_output_file(o) for o in _items(t, "files")),
                    tuple(
                        OutputSymlink(_text(sl, "path"), _text(sl, "target"))
                        for sl in _items(t, "symlinks", optional=True)
                    ),
                )
                for t in trees
            ),
        )


@dataclass(frozen=True)
class RemoteResult:
    """A remote cache hit whose blobs were left on the server (`--remote_download_outputs`
    toplevel or minimal): the action is done and its outputs' digests are known, but
    their bytes come down only when something on this machine needs them
    (`Cache.get_blob`, through `Outputs.materialize`)."""

    result: ActionResult


def _items(raw: Any, key: str, *, optional: bool = False) -> list[Any]:
    if not isinstance(raw, dict):
        raise ValueError(f"expected an object (got {type(raw).__name__})")
    value = raw.get(key, [] if optional else None)
    if not isinstance(value, list):
        raise ValueError(f"{key!r} must be a list (got {type(value).__name__})")
    return value


def _text(raw: Any, key: str) -> str:
    value = raw.get(key) if isinstance(raw, dict) else None
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string (got {type(value).__name__})")
    return value


def _output_file(raw: Any) -> OutputFile:
    size = raw.get("size") if isinstance(raw, dict) else None
    executable = raw.get("executable") if isinstance(raw, dict) else None
    if isinstance(size, bool) or not isinstance(size, int) or not isinstance(executable, bool):
        raise ValueError(f"bad output record {raw!r:.120}")
    return OutputFile(_text(raw, "path"), _text(raw, "sha256"), size, executable)


ResultCheck = Callable[[ActionResult], "str | None"]
"""Why a result cannot stand in for the action being looked up, or None if it can."""


class Cache(Protocol):
    name: str
    """What warnings call it: `disk cache /path`, `remote cache http://host/prefix`."""

    @property
    def lookups_wait(self) -> bool:
        """Whether `get_action_result` may wait on a network (a remote cache): the scheduler
        then asks on a thread, so that other actions' lookups, downloads and runs go on."""
        ...

    def for_action(self, action: Action) -> Cache:
        """The cache `action` may use: this one, or the part of it its tags allow (a
        tiered cache is its local half for `no-remote-cache`)."""
        ...

    def get_action_result(self, key: str, check: ResultCheck) -> ActionResult | RemoteResult | None:
        """The stored result, None if there is none; raises `InvalidEntry` if the entry
        cannot be read or `check` rejects it. A rejected result is never stored. A
        remote cache that leaves outputs on the server returns a `RemoteResult`."""
        ...

    def put_action_result(self, key: str, result: ActionResult) -> None: ...

    def has_blob(self, sha256: str) -> bool: ...

    def get_blob(self, sha256: str, dest: Path) -> bool:
        """Write the blob to `dest` (replacing it); False if it is missing, `InvalidEntry`
        if its bytes do not match `sha256` (the bad copy is dropped)."""
        ...

    def put_blob(self, sha256: str, src: Path) -> None:
        """Store the file `src`, whose sha256 the caller has computed."""
        ...

    def keep_local(self, key: str, result: ActionResult) -> None:
        """Store `result` in the local part only (a remote hit's outputs, brought down and
        verified since): uploading it again would gain nothing."""
        ...

    def prefetch(self, sha256s: list[str]) -> None:
        """Start having these blobs at hand, several at a time, for `get_blob` calls to
        come; a blob that cannot be had is left for `get_blob` to report."""
        ...
