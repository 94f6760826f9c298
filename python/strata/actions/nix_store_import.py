"""`NixStoreImport`: store paths from a real Nix store as strata store paths.

`NixStoreImport` is what the `nix_store_import` repository rule runs (in the
repository directory, not as a build action: it reads a store outside the
workspace). It asks `nix-store -q` for the closure of the given roots (see
strata.store.nix_import), checks each path's NAR hash against what the
store recorded, and writes per path the files a `StorePathInfo` is made of:
the `info` JSON (the StorePath action's format, each path with the `deriver`
`nix-store -q --deriver` names, if any), the path's own uncompressed
layer and its descriptor. `index.json` lists them for the generated BUILD.

The request is `NixStoreImportRequest` below.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

from strata.actions.request import Request, field, read_store_dir, read_with
from strata.canonical import json_bytes
from strata.errors import UserError
from strata.fsutil import write_bytes_atomic
from strata.store import nar
from strata.store.closure import PathInfo
from strata.store.layer import write_store_layer
from strata.store.nix_import import query_derivers, query_nix_store, subprocess_runner
from strata.store.path import parse


def _paths(req: dict[str, Any], where: str) -> list[str]:
    roots: list[str] = field(req, "paths", list, where)
    if not roots or not all(isinstance(p, str) for p in roots):
        raise UserError(
            f"paths must be a non-empty list of store paths (got {roots!r:.80}); "
            'e.g. ["/nix/store/<hash>-hello-2.12"]',
            where=where,
        )
    return roots


@dataclasses.dataclass(frozen=True, kw_only=True)
class NixStoreImportRequest(Request):
    store_dir: str = read_with(read_store_dir)
    """The logical store directory of the names (default "/nix/store")."""
    paths: list[str] = read_with(_paths)
    """Root store paths, e.g. ["/nix/store/<hash>-hello-2.12"]."""
    env: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Variables for nix-store (NIX_STORE_DIR, NIX_STATE_DIR, ...)."""
    nix_store: str = "nix-store"
    """The nix-store program."""
    output: str
    """Directory to write (relative to the working directory)."""


def _closure(root: str, by_path: dict[str, PathInfo]) -> list[PathInfo]:
    seen: dict[str, PathInfo] = {}
    todo = [root]
    while todo:
        p = todo.pop()
        if p not in seen:
            seen[p] = by_path[p]
            todo.extend(r for r in by_path[p].references if r not in seen)
    return sorted(seen.values(), key=lambda i: i.path)


def import_paths(req: dict[str, Any], where: str) -> None:
    request = NixStoreImportRequest.from_json(req, where)
    store_dir = request.store_dir
    roots = request.paths
    run = subprocess_runner(request.nix_store, request.env, where)
    closure = query_nix_store(roots, store_dir, runner=run)
    by_path = closure.by_path()
    # Kept in the info records for the image's SBOM (strata.sbom), nowhere else.
    derivers = query_derivers([p.path for p in closure.paths], run)

    def described(p: PathInfo) -> dict[str, Any]:
        return p.to_json() | ({"deriver": derivers[p.path]} if p.path in derivers else {})

    out = Path(request.output)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    index = []
    for info in closure.paths:
        sp = parse(info.path, store_dir, where)
        physical = Path(info.path)
        found = nar.digest(physical)
        if found.nix_hash != info.nar_hash or found.size != info.nar_size:
            raise UserError(
                f"{info.path} does not match what the store recorded (got {found.nix_hash}, "
                f"{found.size} bytes; recorded {info.nar_hash}, {info.nar_size}); run "
                "nix-store --verify --check-contents --repair",
                where=where,
            )
        base = sp.base_name
        doc = {
            **described(info),
            "closure": [described(p) for p in _closure(info.path, by_path)],
            "store_dir": store_dir,
        }
        write_bytes_atomic(out / f"{base}.storepath.json", json_bytes(doc))
        layer = out / f"{base}.layer.tar"
        descriptor = write_store_layer(layer, physical, info.path, store_dir, "none")
        write_bytes_atomic(out / f"{base}.layer.json", json_bytes(descriptor.to_json()))
        refs = [parse(r, store_dir, where).base_name for r in info.references if r != info.path]
        index.append({"base": base, "name": sp.name, "references": refs})
    roots_base = sorted(parse(r, store_dir, where).base_name for r in roots)
    doc_index = {"paths": index, "roots": roots_base, "store_dir": store_dir}
    write_bytes_atomic(out / "index.json", json_bytes(doc_index))
