"""`strata action NixDb @request.json`: a layer holding the Nix database of an image.

buildImageWithNixDb / `include_nix_db`: `/nix/var/nix/db/db.sqlite` and
`/nix/var/nix/db/schema` registering every store path of the image (the
union of the given paths' closures), and `/nix/var/nix/gcroots/docker/<hash>-<name>`
links to the image's roots, so `nix-store -q`, `--verify` and a garbage
collection work inside the container (see strata.store.nix_db).

Directory form (what image.bzl's `include_nix_db` merges into its top layer,
`NixDbDirRequest`): writes the same database and schema file under `dir`, registration time 1,
but no gcroots links: they point into /nix/store, and Bazel refuses
directory outputs holding symlinks that do not resolve. Use the layer form
(`nix_db_layer` in rules/private/nix.bzl) to get gcroots too.

The layer form's request is `NixDbRequest`; a request with `closures` is the
directory form.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strata.actions.request import (
    OWNERSHIP_KEYS,
    Request,
    closure_infos,
    ownership,
    read_info,
    read_with,
)
from strata.errors import UserError
from strata.oci.compress import check_compressor
from strata.oci.layer import Ownership, write_descriptor, write_layer_from_entries
from strata.oci.tree import BYTES, DIR, FILE, SYMLINK, Entry, sort_key
from strata.store.nix_db import DB_DIR, GCROOTS_DIR, SCHEMA_VERSION, write_db


@dataclass(frozen=True, kw_only=True)
class NixDbDirRequest(Request):
    closures: list[str]
    """Info files (StorePath / nix_store_import `info` outputs) whose closures are
    registered."""
    name: str = ""
    """The image's name (unused)."""
    output: str
    """The directory to write."""


@dataclass(frozen=True, kw_only=True)
class NixDbRequest(Request):
    compressor: str = "gzip"
    """"none" | "gzip" | "zstd"."""
    output: str
    """The layer blob."""
    descriptor: str
    """The layer's descriptor JSON."""
    registration_time: int = 1
    """ValidPaths.registrationTime of every row."""
    store_paths: list[str]
    """Info files (StorePath / nix_store_import `info` outputs) whose closures are
    registered."""
    roots: list[str] = field(default_factory=list)
    """Info files of the paths that get a gcroots/docker link."""
    owner: Ownership = read_with(ownership, keys=OWNERSHIP_KEYS)
    """`uid`, `gid`, `uname`, `gname`, `mtime` of the layer entries (0, 0, "", "", 1)."""


def db_entries(db_file: str, roots: list[str]) -> list[Entry]:
    """The layer's members: state directories, the DB, the schema file, gcroots links."""
    dirs = ["nix", "nix/var", "nix/var/nix", DB_DIR, "nix/var/nix/gcroots", GCROOTS_DIR]
    out = [Entry(d, DIR, 0o755) for d in dirs]
    size = os.path.getsize(db_file)
    out.append(Entry(f"{DB_DIR}/db.sqlite", FILE, 0o644, size=size, source=db_file))
    out.append(Entry(f"{DB_DIR}/schema", BYTES, 0o644, data=SCHEMA_VERSION.encode()))
    for root in sorted(set(roots)):
        out.append(Entry(f"{GCROOTS_DIR}/{posixpath.basename(root)}", SYMLINK, 0o777, target=root))
    return sorted(out, key=lambda e: sort_key(e.name))


def write_dir(req: dict[str, Any], where: str) -> None:
    request = NixDbDirRequest.from_json(req, where)
    infos = [read_info(p, where) for p in request.closures]
    if not infos:
        raise UserError(
            "closures is empty (got []); a Nix database needs the image's store paths",
            where=where,
        )
    out = Path(request.output)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / DB_DIR).mkdir(parents=True)
    write_db(out / DB_DIR / "db.sqlite", closure_infos(infos, where).values(), 1, where)
    (out / DB_DIR / "schema").write_bytes(SCHEMA_VERSION.encode())


def run(req: dict[str, Any], where: str) -> None:
    if "closures" in req:
        write_dir(req, where)
        return
    request = NixDbRequest.from_json(req, where)
    compressor = check_compressor(request.compressor, where)
    output = request.output
    registration_time = request.registration_time
    if registration_time < 0:
        raise UserError(
            f"registration_time must not be negative (got {registration_time}); use e.g. 1",
            where=where,
        )
    infos = [read_info(p, where) for p in request.store_paths]
    if not infos:
        raise UserError(
            "store_paths is empty (got []); a Nix database needs the image's store paths",
            where=where,
        )
    roots = [read_info(p, where)["path"] for p in request.roots]
    known = closure_infos(infos, where)
    missing = [r for r in roots if r not in known]
    if missing:
        raise UserError(
            f"a root is not among store_paths (got {missing[0]}); list it in store_paths too",
            where=where,
        )
    with tempfile.TemporaryDirectory(prefix="strata-nixdb-") as tmp:
        db_file = Path(tmp) / "db.sqlite"
        write_db(db_file, known.values(), registration_time, where)
        descriptor = write_layer_from_entries(
            output, compressor, db_entries(str(db_file), roots), request.owner
        )
    write_descriptor(request.descriptor, descriptor, output)
