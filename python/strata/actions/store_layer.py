"""`strata action StoreLayer` and `StoreLayerGroup`: cached layers of store paths.

StoreLayer request (schema_version 1):

    src          the store path's content on disk
    store_path   its full name, `<store_dir>/<hash>-<name>`
    store_dir    default "/nix/store"
    compressor   "none" | "gzip" | "zstd" (default "none": cached tars are concatenated)
    output       the layer blob to write
    descriptor   the descriptor JSON to write
    uid, gid, uname, gname, mtime   ownership and time of every entry (0, 0, "", "", 1)

StoreLayerGroup request: `layers` (cached StoreLayer blobs, in layer order),
`compressor`, `output`, `descriptor`. Ownership comes from the cached tars.
"""

from __future__ import annotations

import os
from typing import Any

from strata.actions.layer import ownership
from strata.actions.request import field
from strata.errors import UserError
from strata.oci.compress import check_compressor
from strata.oci.layer import write_descriptor
from strata.store.layer import concat_layers, write_store_layer
from strata.store.path import DEFAULT_STORE_DIR, check_store_dir


def run(req: dict[str, Any], where: str) -> None:
    compressor = check_compressor(field(req, "compressor", str, where, "none"), where)
    store_dir = check_store_dir(
        field(req, "store_dir", str, where, DEFAULT_STORE_DIR), f"{where}: store_dir"
    )
    src = field(req, "src", str, where)
    if not os.path.lexists(src):
        raise UserError(
            f"store path content does not exist (got src {src!r}); declare it as an input",
            where=where,
        )
    output = field(req, "output", str, where)
    descriptor = write_store_layer(
        output,
        src,
        field(req, "store_path", str, where),
        store_dir,
        compressor,
        ownership(req, where),
    )
    write_descriptor(field(req, "descriptor", str, where), descriptor, output)


def group(req: dict[str, Any], where: str) -> None:
    compressor = check_compressor(field(req, "compressor", str, where, "gzip"), where)
    layers = field(req, "layers", list, where)
    if not layers or not all(isinstance(x, str) for x in layers):
        raise UserError(
            f"'layers' must be a non-empty list of cached layer files (got {layers!r:.60}); "
            "list the StoreLayer outputs",
            where=where,
        )
    output = field(req, "output", str, where)
    descriptor = concat_layers(output, layers, compressor)
    write_descriptor(field(req, "descriptor", str, where), descriptor, output)
