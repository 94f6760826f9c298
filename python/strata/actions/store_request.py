"""A StorePath request, carried out: shared by StorePath and LinkedStorePath (see
strata.actions.store_path for the keys). `StorePathRequest` reads it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterator
from typing import Any

from strata.actions.request import (
    OWNERSHIP_KEYS,
    Request,
    closure_infos,
    compressor_field,
    field,
    ownership,
    plan_tree,
    read_info,
    read_store_dir,
    read_with,
)
from strata.canonical import json_bytes
from strata.errors import UserError
from strata.fsutil import real_path, write_bytes_atomic
from strata.oci.layer import Ownership, write_descriptor
from strata.oci.tree import FILE, Entry
from strata.store.closure import PathInfo
from strata.store.layer_writer import StoreLayerWriter
from strata.store.listing import listing_bytes
from strata.store.nar import MAGIC, dump_entries, dump_planned, nar_string
from strata.store.path import check_name
from strata.store.references import describe_nar


def _name(req: dict[str, Any], where: str) -> str:
    return check_name(field(req, "name", str, where), f"{where}: name")


@dataclasses.dataclass(frozen=True, kw_only=True)
class StorePathRequest(Request):
    """The keys, as strata.actions.store_path describes them."""

    name: str = read_with(_name)
    store_dir: str = read_with(read_store_dir)
    compressor: str = compressor_field("none")
    outputs: dict[str, Any]
    references: list[Any] = dataclasses.field(default_factory=list)
    contents: list[Any]
    keep_dirlinks: bool = False
    owner: Ownership = read_with(ownership, keys=OWNERSHIP_KEYS)


def deref_inputs(items: list[Any]) -> list[Any]:
    """Inputs arrive as symlinks into the sandbox/execroot (Bazel, strata): use their targets."""
    out = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("src"), str):
            src = item["src"]
            if os.path.islink(src):
                item = {**item, "src": real_path(src)}
        out.append(item)
    return out


def _plan(req: StorePathRequest, items: list[Any], where: str) -> list[Entry]:
    """The path's content as planned entries; a single FILE named "" for a one-file path."""
    single_file = (
        len(items) == 1 and isinstance(items[0], dict) and items[0].get("dest", None) in ("", "/")
    )
    if not single_file:
        planned = {"contents": items, "keep_dirlinks": req.keep_dirlinks}
        return plan_tree(planned, where).entries()
    src = field(items[0], "src", str, where)
    if not os.path.isfile(src):
        raise UserError(f"a single-file store path needs a regular file (got {src})", where=where)
    st = os.stat(src)
    return [Entry("", FILE, 0o755 if st.st_mode & 0o111 else 0o644, size=st.st_size, source=src)]


def build_store_path(req: StorePathRequest, where: str) -> None:
    """Carry out a StorePath request (see strata.actions.store_path).

    Hash, name and layer the path straight from its sources: no copy of the tree is made."""
    name = req.name
    store_dir = req.store_dir
    compressor = req.compressor
    outputs = req.outputs
    refs = [read_info(p, where) for p in req.references]
    known = closure_infos(refs, where)

    items = deref_inputs(req.contents)
    planned = _plan(req, items, where)
    single = len(planned) == 1 and not planned[0].name
    layer = field(outputs, "layer", str, where)
    owner = req.owner
    with StoreLayerWriter(layer, planned, name, store_dir, compressor, owner) as writer:
        chunks = (
            dump_planned(planned[0], contents=writer.contents)
            if single
            else dump_entries(planned, contents=writer.contents)
        )
        described = describe_nar(
            _with_magic(chunks, single=single),
            name,
            references=[r["path"] for r in refs],
            candidates=list(known),
            store_dir=store_dir,
            where=where,
        )
        descriptor = writer.finish(described.info.path)
    for warning in described.warnings:
        print(f"warning: {where}: {warning}", file=sys.stderr)
    info = described.info
    known[info.path] = info
    closure = sorted(_closure_of(info.path, known), key=lambda p: p.path)
    doc = {
        **info.to_json(),
        "closure": [p.to_json() for p in closure],
        "store_dir": store_dir,
    }
    write_descriptor(field(outputs, "descriptor", str, where), descriptor, layer)
    if "listing" in outputs:
        listing = listing_bytes(info.path, writer.members(), writer.span)
        write_bytes_atomic(field(outputs, "listing", str, where), listing, durable=False)
    write_bytes_atomic(field(outputs, "info", str, where), json_bytes(doc), durable=False)


def _with_magic(chunks: Iterator[bytes], *, single: bool) -> Iterator[bytes]:
    """`dump_entries` starts with the NAR magic; a lone node needs it in front."""
    if single:
        yield nar_string(MAGIC)
    yield from chunks


def _closure_of(root: str, known: dict[str, PathInfo]) -> list[PathInfo]:
    seen: dict[str, PathInfo] = {}
    todo = [root]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen[p] = known[p]
        todo.extend(r for r in known[p].references if r not in seen)
    return list(seen.values())
