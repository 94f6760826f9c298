"""`strata action LayeredImage @request.json`: store-path layers + customisation → image.

dockerTools.buildLayeredImage: the closure of the image's store paths (plus
store paths its config mentions) is grouped into layers by a layering
pipeline (default: popularity, as nixpkgs does), each group is the
concatenation of the paths' cached StorePath layers, and the image core
assembles base layers + these + the customisation layer + config.

The grouping happens here, at execution time, because it depends on store
path names (ties are broken by name), which are content hashes.

Request (keys sorted; `schema_version` 1): everything ImageAssemble takes
(architecture, base, config, created, name, os, outputs, tag) except
`layers`, plus:

    store_paths         [{"info", "layer"}]: StorePath outputs of every path that may be in
                        the closure (the rule passes the transitive set)
    roots               info files of the image's own store paths (contents)
    include_store_paths bool, default true (false: no store path layers, for bind mounts)
    max_layers          int, default 100; counts base layers and the customisation layer
    pipeline            optional layering pipeline (see strata.layering.pipeline)
    compressor          of the store path layers, default "gzip"
    extra_layers        [{"blob", "descriptor"}] after the store path layers (customisation)
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from strata.actions import image
from strata.actions.request import field
from strata.actions.store_path import closure_infos, read_info
from strata.canonical import json_bytes
from strata.errors import UserError
from strata.fsutil import write_bytes_atomic
from strata.layering.pipeline import plan_layers
from strata.oci.base import Selector, load_base
from strata.oci.compress import check_compressor
from strata.oci.platform import parse_platform
from strata.store.closure import closure_of
from strata.store.layer import concat_layers

_OWN = {
    "store_paths",
    "roots",
    "include_store_paths",
    "max_layers",
    "pipeline",
    "compressor",
    "extra_layers",
}


def _base_layer_count(req: dict[str, Any], where: str, work: Path) -> int:
    base_req = field(req, "base", (dict, type(None)), where, None)
    if base_req is None:
        return 0
    platform = parse_platform(
        field(req, "architecture", str, where, "x86_64"),
        field(req, "os", str, where, "linux"),
        where=where,
    )
    selector = Selector(field(base_req, "name", str, where, ""), platform)
    return len(load_base(field(base_req, "path", str, where), selector, work).layers)


def run(req: dict[str, Any], where: str) -> None:
    image.check_keys(req, image._KEYS - {"layers"} | _OWN, where)
    compressor = check_compressor(field(req, "compressor", str, where, "gzip"), where)
    max_layers = field(req, "max_layers", int, where, 100)
    entries = field(req, "store_paths", list, where, [])
    infos = [read_info(field(e, "info", str, where), where) for e in entries]
    blobs = {
        info["path"]: field(e, "layer", str, where) for info, e in zip(infos, entries, strict=True)
    }
    known = closure_infos(infos, where)
    roots = {read_info(p, where)["path"] for p in field(req, "roots", list, where, [])}
    config_text = json.dumps(field(req, "config", dict, where, {}))
    roots |= {p for p in known if p in config_text}
    extra = field(req, "extra_layers", list, where, [])
    outputs = image.outputs_of(req, where)
    parent = next(iter(outputs.values())).parent
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".layered-", dir=parent) as tmp:
        work = Path(tmp)
        layers: list[dict[str, str]] = []
        if field(req, "include_store_paths", bool, where, True) and roots:
            closure = closure_of(sorted(roots), known.values(), where)
            base_layers = _base_layer_count(req, where, work / "base")
            groups = (
                plan_layers(
                    closure,
                    max_layers,
                    base_layers + max(len(extra) - 1, 0),
                    field(req, "pipeline", (list, type(None)), where, None),
                )
                if max_layers
                else []
            )
            for i, group in enumerate(groups):
                missing = [p for p in group if p not in blobs]
                if missing:
                    raise UserError(
                        f"no cached layer for store path {missing[0]} (got {len(blobs)} layers); "
                        "list its store_path target in contents or deps",
                        where=where,
                    )
                blob = work / f"layer{i}.tar"
                desc = concat_layers(blob, [blobs[p] for p in group], compressor)
                desc_path = work / f"layer{i}.json"
                write_bytes_atomic(desc_path, json_bytes(desc.to_json()))
                layers.append({"blob": str(blob), "descriptor": str(desc_path)})
        sub = {k: v for k, v in req.items() if k not in _OWN}
        sub["layers"] = layers + extra
        image.assemble_image(sub, where)
