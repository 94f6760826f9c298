"""`strata action Layer @request.json`: one layer from a path mapping.

Request (keys sorted by the writer; `schema_version` 1):

    compressor     "none" | "gzip" | "zstd"
    output         path of the blob to write
    descriptor     path of the descriptor JSON to write
    contents       list, applied in order (a later item replaces an earlier one):
                     {"src": P, "dest": D, "mode"?: "0755"}   file, symlink or directory tree
                     {"dest": D, "type": "dir", "mode"?: "1777"}
                     {"dest": D, "type": "symlink", "target": T}
                     {"dest": D, "type": "file", "content": TEXT, "mode"?: "0644"}
    keep_dirlinks  bool (dockerTools' keepContentsDirlinks), default false
    uid, gid, uname, gname, mtime   ownership and time of every entry (0, 0, "", "", 1)
"""

from __future__ import annotations

import os
from typing import Any

from strata.actions.request import field
from strata.errors import UserError
from strata.oci.compress import check_compressor
from strata.oci.layer import Ownership, write_descriptor, write_layer_from_entries
from strata.oci.tarwriter import check_id
from strata.oci.tree import LayerTree


def parse_mode(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            mode = int(value, 8)
        except ValueError:
            mode = -1
        if 0 <= mode <= 0o7777:
            return mode
    raise UserError(f'mode must be an octal string like "0755" (got {value!r})', where=where)


def ownership(req: dict[str, Any], where: str) -> Ownership:
    for key in ("uid", "gid"):
        check_id(field(req, key, int, where, 0), f"{where}: {key}")
    return Ownership(
        uid=field(req, "uid", int, where, 0),
        gid=field(req, "gid", int, where, 0),
        uname=field(req, "uname", str, where, ""),
        gname=field(req, "gname", str, where, ""),
        mtime=field(req, "mtime", int, where, 1),
    )


def plan_tree(req: dict[str, Any], where: str) -> LayerTree:
    tree = LayerTree(
        keep_dirlinks=field(req, "keep_dirlinks", bool, where, False),
        execroot=os.getcwd(),  # actions run in the execroot, under both engines
    )
    for i, item in enumerate(field(req, "contents", list, where)):
        at = f"{where}: contents[{i}]"
        if not isinstance(item, dict):
            raise UserError(f"must be an object (got {item!r})", where=at)
        kind = field(item, "type", str, at, "path")
        dest = field(item, "dest", str, at)
        mode = parse_mode(item.get("mode"), at)
        if kind == "path":
            tree.add_path(field(item, "src", str, at), dest, mode)
        elif kind == "dir":
            tree.add_dir(dest, mode, at)
        elif kind == "symlink":
            tree.add_symlink(dest, field(item, "target", str, at), at)
        elif kind == "file":
            content = field(item, "content", str, at).encode("utf-8")
            tree.add_bytes(dest, content, 0o644 if mode is None else mode, at)
        else:
            raise UserError(
                f"unknown content type (got {kind!r}); use path, dir, symlink or file", where=at
            )
    return tree


def run(req: dict[str, Any], where: str) -> None:
    compressor = check_compressor(field(req, "compressor", str, where, "gzip"), where)
    output = field(req, "output", str, where)
    descriptor_path = field(req, "descriptor", str, where)
    owner = ownership(req, where)
    tree = plan_tree(req, where)
    descriptor = write_layer_from_entries(output, compressor, tree.entries(), owner)
    write_descriptor(descriptor_path, descriptor, output)
