"""Closures: a set of store paths closed under references, with NAR metadata.

The record per path mirrors what Nix keeps in its database and what
`exportReferencesGraph` / `closureInfo` hand to builders (path, references,
narSize, narHash), so the JSON form below is the one nixpkgs' layering
scripts read: a list of objects with those four keys. We wrap it as
`{"roots": [...], "paths": [...]}` and also accept a bare nixpkgs list.
Everything is sorted by path so the same closure always serialises to the
same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from strata.canonical import json_bytes
from strata.errors import UserError


@dataclass(frozen=True)
class PathInfo:
    """One store path: its references (full paths, sorted, may include itself) and NAR facts."""

    path: str
    references: tuple[str, ...]
    nar_size: int
    nar_hash: str

    def __post_init__(self) -> None:
        refs = tuple(sorted(set(self.references)))
        if refs != self.references:
            object.__setattr__(self, "references", refs)

    def to_json(self) -> dict[str, Any]:
        return {
            "narHash": self.nar_hash,
            "narSize": self.nar_size,
            "path": self.path,
            "references": list(self.references),
        }

    @staticmethod
    def from_json(obj: Any, where: str) -> PathInfo:
        if not isinstance(obj, dict):
            raise UserError(
                f"closure entry must be an object (got {type(obj).__name__}); "
                "use {path, references, narSize, narHash}",
                where=where,
            )
        try:
            path, refs, size, nar_hash = (
                obj["path"],
                obj["references"],
                obj["narSize"],
                obj["narHash"],
            )
        except KeyError as e:
            raise UserError(
                f"closure entry lacks key {e.args[0]!r} (got keys {sorted(obj)}); "
                "each entry needs path, references, narSize and narHash",
                where=where,
            ) from None
        if (
            not isinstance(path, str)
            or not isinstance(refs, list)
            or not all(isinstance(r, str) for r in refs)
            or not isinstance(size, int)
            or isinstance(size, bool)
            or not isinstance(nar_hash, str)
        ):
            raise UserError(
                f"closure entry has a value of the wrong type (got {obj!r:.80}); "
                "path and narHash are strings, references a list of strings, narSize an integer",
                where=where,
            )
        return PathInfo(path, tuple(refs), size, nar_hash)


@dataclass(frozen=True)
class Closure:
    """Roots and every path they reach, sorted by path."""

    roots: tuple[str, ...]
    paths: tuple[PathInfo, ...]

    def by_path(self) -> dict[str, PathInfo]:
        return {p.path: p for p in self.paths}

    def edges(self) -> list[tuple[str, str]]:
        """(referrer, reference) pairs without self-references, sorted."""
        return sorted((p.path, r) for p in self.paths for r in p.references if r != p.path)

    @property
    def nar_size(self) -> int:
        return sum(p.nar_size for p in self.paths)

    def to_json(self) -> dict[str, Any]:
        return {"paths": [p.to_json() for p in self.paths], "roots": list(self.roots)}

    def to_bytes(self) -> bytes:
        return json_bytes(self.to_json())

    @staticmethod
    def from_json(obj: Any, where: str) -> Closure:
        """Read our form, or nixpkgs' bare list (whose roots are the unreferenced paths)."""
        if isinstance(obj, list):
            infos = [PathInfo.from_json(e, where) for e in obj]
            referenced = {r for i in infos for r in i.references if r != i.path}
            roots = [i.path for i in infos if i.path not in referenced]
        elif isinstance(obj, dict) and isinstance(obj.get("paths"), list):
            infos = [PathInfo.from_json(e, where) for e in obj["paths"]]
            roots = obj.get("roots", [])
            if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
                raise UserError(
                    f"closure 'roots' must be a list of store paths (got {roots!r:.80}); fix it",
                    where=where,
                )
        else:
            raise UserError(
                f"closure must be an object with 'paths' or a list (got {type(obj).__name__}); "
                "write it with strata or exportReferencesGraph",
                where=where,
            )
        return closure_of(roots, infos, where)


def closure_of(roots: Iterable[str], infos: Iterable[PathInfo], where: str = "closure") -> Closure:
    """The closure of `roots` over `infos`; a reference to an unknown path is an error."""
    table: dict[str, PathInfo] = {}
    for info in infos:
        if info.path in table and table[info.path] != info:
            raise UserError(
                f"store path described twice with different facts (got {info.path}); "
                "merge the descriptions",
                where=where,
            )
        table[info.path] = info
    root_list = sorted(set(roots))
    seen: set[str] = set()
    stack = list(root_list)
    while stack:
        path = stack.pop()
        if path in seen:
            continue
        found = table.get(path)
        if found is None:
            referrers = sorted(i.path for i in table.values() if path in i.references)
            by = f"referenced by {referrers[0]}" if referrers else "a root"
            raise UserError(
                f"store path {path} ({by}) has no description (got {len(table)} described "
                "paths); add it to the closure",
                where=where,
            )
        seen.add(path)
        stack.extend(r for r in found.references if r not in seen)
    return Closure(tuple(root_list), tuple(table[p] for p in sorted(seen)))
