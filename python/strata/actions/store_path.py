"""`strata action StorePath @request.json`: a store path from files, and its cached layer.

What the `store_path` rule runs, once per store path. The name is not known
when the request is written (it is a hash of the content and references), so
this one action lays the content out, names it as Nix would, checks its
references, and writes the path's layer: that layer is the cached unit that
images sharing the path share.

Request (keys sorted; `schema_version` 1):

    name          the store path's name (after `<hash>-`)
    store_dir     default "/nix/store"
    contents      as for the Layer action: [{"src", "dest", "mode"?}, {"dest", "type": "dir"|
                  "symlink"|"file", ...}], placed relative to the store path's root; a single
                  {"src": F, "dest": ""} makes the store path a single file
    references    info files (this action's `info` output) of the direct references
    compressor    of the layer, default "none" (cached layers are concatenated later)
    outputs       {"tree": dir, "info": json, "layer": blob, "descriptor": json}
    uid, gid, uname, gname, mtime   ownership and time of the layer entries

The `info` output: {"path", "references", "narHash", "narSize", "closure":
[PathInfo of this path and everything it references, sorted by path]}.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from strata.actions.layer import ownership, plan_tree
from strata.actions.request import field
from strata.canonical import json_bytes
from strata.errors import UserError
from strata.fsutil import write_bytes_atomic
from strata.oci.compress import check_compressor
from strata.oci.layer import write_descriptor
from strata.oci.tree import BYTES, DIR, FILE, SYMLINK, Entry
from strata.store.closure import PathInfo
from strata.store.layer import write_store_layer
from strata.store.path import DEFAULT_STORE_DIR, check_name, check_store_dir
from strata.store.references import describe


def read_info(path: str, where: str) -> dict[str, Any]:
    """A StorePath `info` file (also written by nix_store_import)."""
    try:
        info = json.loads(Path(path).read_bytes())
    except (OSError, ValueError) as e:
        raise UserError(
            f"cannot read store path info (got {path}: {e}); pass a StorePath info output",
            where=where,
        ) from None
    if not isinstance(info, dict) or "path" not in info or "closure" not in info:
        raise UserError(f"not a store path info file (got {path})", where=where)
    return info


def closure_infos(infos: list[dict[str, Any]], where: str) -> dict[str, PathInfo]:
    out: dict[str, PathInfo] = {}
    for info in infos:
        for item in info["closure"]:
            p = PathInfo.from_json(item, where)
            out[p.path] = p
    return out


def deref_inputs(items: list[Any]) -> list[Any]:
    """Inputs arrive as symlinks into the sandbox/execroot (Bazel, strata): use their targets."""
    out = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("src"), str):
            src = item["src"]
            if os.path.islink(src):
                item = {**item, "src": os.path.realpath(src)}
        out.append(item)
    return out


def _materialize(entries: list[Entry], root: Path) -> None:
    for e in entries:
        dest = root / e.name
        if e.kind == DIR:
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        if e.kind == SYMLINK:
            os.symlink(e.target, dest)
            continue
        if e.kind == FILE:
            shutil.copyfile(e.source, dest, follow_symlinks=True)
        elif e.kind == BYTES:
            dest.write_bytes(e.data)
        else:  # pragma: no cover - LayerTree makes only these kinds
            raise UserError(f"unsupported entry kind (got {e.kind})", where=e.name)
        os.chmod(dest, 0o755 if e.mode & 0o111 else 0o644)


def run(req: dict[str, Any], where: str) -> None:
    name = check_name(field(req, "name", str, where), f"{where}: name")
    store_dir = check_store_dir(
        field(req, "store_dir", str, where, DEFAULT_STORE_DIR), f"{where}: store_dir"
    )
    compressor = check_compressor(field(req, "compressor", str, where, "none"), where)
    outputs = field(req, "outputs", dict, where)
    tree_dir = Path(field(outputs, "tree", str, where))
    refs = [read_info(p, where) for p in field(req, "references", list, where, [])]
    known = closure_infos(refs, where)

    items = deref_inputs(field(req, "contents", list, where))
    single_file = (
        len(items) == 1 and isinstance(items[0], dict) and items[0].get("dest", None) in ("", "/")
    )
    if tree_dir.exists():
        shutil.rmtree(tree_dir)
    tree_dir.mkdir(parents=True)
    content = tree_dir / name
    if single_file:
        src = field(items[0], "src", str, where)
        if not os.path.isfile(src):
            raise UserError(
                f"a single-file store path needs a regular file (got {src})", where=where
            )
        shutil.copyfile(src, content)
        os.chmod(content, 0o755 if os.stat(src).st_mode & 0o111 else 0o644)
    else:
        content.mkdir()
        _materialize(plan_tree({**req, "contents": items}, where).entries(), content)

    described = describe(
        content,
        name,
        references=[r["path"] for r in refs],
        candidates=list(known),
        store_dir=store_dir,
        where=where,
    )
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
    layer = field(outputs, "layer", str, where)
    descriptor = write_store_layer(
        layer, content, info.path, store_dir, compressor, ownership(req, where)
    )
    write_descriptor(field(outputs, "descriptor", str, where), descriptor, layer)
    write_bytes_atomic(field(outputs, "info", str, where), json_bytes(doc))


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
