"""`strata action NixDb @request.json`: a layer holding the Nix database of an image.

buildImageWithNixDb / `include_nix_db`: `/nix/var/nix/db/db.sqlite` and
`/nix/var/nix/db/schema` registering every store path of the image (the
union of the given paths' closures), and `/nix/var/nix/gcroots/docker/<hash>-<name>`
links to the image's roots, so `nix-store -q`, `--verify` and a garbage
collection work inside the container (see strata.store.nix_db).

Directory form (what image.bzl's `include_nix_db` merges into its top layer):
`{"closures": [info files], "name": image name (unused), "output": dir}`
writes the same database and schema file under `dir`, registration time 1,
but no gcroots links: they point into /nix/store, and Bazel refuses
directory outputs holding symlinks that do not resolve. Use the layer form
(`nix_db_layer` in rules/private/nix.bzl) to get gcroots too.

Layer form, request (keys sorted; `schema_version` 1):

    store_paths        info files (StorePath / nix_store_import `info` outputs); their
                       closures are registered
    roots              info files of the paths that get a gcroots/docker link (default [])
    registration_time  ValidPaths.registrationTime of every row (default 1)
    compressor         "none" | "gzip" | "zstd" (default "gzip")
    output, descriptor the layer blob and its descriptor JSON
    uid, gid, uname, gname, mtime   owner and time of the layer entries (0, 0, "", "", 1)
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from pathlib import Path
from typing import Any

from strata.actions.request import check_keys, closure_infos, field, ownership, read_info
from strata.errors import UserError
from strata.oci.compress import check_compressor
from strata.oci.layer import write_descriptor, write_layer_from_entries
from strata.oci.tree import BYTES, DIR, FILE, SYMLINK, Entry, sort_key
from strata.store.nix_db import DB_DIR, GCROOTS_DIR, SCHEMA_VERSION, write_db

_KEYS = {
    "compressor",
    "descriptor",
    "gid",
    "gname",
    "mtime",
    "output",
    "registration_time",
    "roots",
    "schema_version",
    "store_paths",
    "uid",
    "uname",
}


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
    check_keys(req, {"closures", "name", "output", "schema_version"}, where)
    infos = [read_info(p, where) for p in field(req, "closures", list, where)]
    if not infos:
        raise UserError(
            "closures is empty (got []); a Nix database needs the image's store paths",
            where=where,
        )
    out = Path(field(req, "output", str, where))
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
    check_keys(req, _KEYS, where)
    compressor = check_compressor(field(req, "compressor", str, where, "gzip"), where)
    output = field(req, "output", str, where)
    descriptor_path = field(req, "descriptor", str, where)
    registration_time = field(req, "registration_time", int, where, 1)
    if registration_time < 0:
        raise UserError(
            f"registration_time must not be negative (got {registration_time}); use e.g. 1",
            where=where,
        )
    infos = [read_info(p, where) for p in field(req, "store_paths", list, where)]
    if not infos:
        raise UserError(
            "store_paths is empty (got []); a Nix database needs the image's store paths",
            where=where,
        )
    roots = [read_info(p, where)["path"] for p in field(req, "roots", list, where, [])]
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
            output, compressor, db_entries(str(db_file), roots), ownership(req, where)
        )
    write_descriptor(descriptor_path, descriptor, output)
