"""`strata action LayerGroups @request.json`: store path layers grouped for one image.

buildLayeredImage's grouping, done at execution time (grouping breaks ties
by store path name, a content hash the rules cannot know). Input: every
store path's cached layer (StorePath `layer` outputs) and the closure; output: a
directory (a Bazel tree artifact) of the image's store-path layers in order,
which ImageAssemble and StreamImage take as `{"dir": DIR}` in `layers`.

A path that gets a layer of its own is copied verbatim from its StorePath
layer, never re-tarred: the same store path gives a byte-identical layer (and
digest) in every image, which is what lets registries and `docker load`
share it. Paths grouped together are concatenated (strata.store.layer.
concat_layers), digested while copied, without reading the store path files;
with `joins`, such a group is written as a recipe instead (strata.store.
layer_recipe): the byte ranges of the store path layers, read once for the digest.

The request is `LayerGroupsRequest` below. Errors leave no output directory.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

from strata.actions.image_request import load_layer
from strata.actions.request import (
    Request,
    check_keys,
    compressor_field,
    field,
    read_info,
    read_store_dir,
    read_with,
)
from strata.canonical import json_bytes
from strata.errors import UserError
from strata.fsutil import atomic_dir, share_output
from strata.layering.pipeline import plan_layers
from strata.layering.plan_io import (
    LAYERS_JSON,
    GroupedLayer,
    add_config_roots,
    layers_json_bytes,
    read_closures,
    strategy_steps,
)
from strata.layering.popularity import available_layers
from strata.oci.base import Selector, load_base
from strata.oci.image import Blob
from strata.oci.layer import LayerDescriptor
from strata.oci.platform import parse_platform
from strata.store.closure import closure_of
from strata.store.layer import concat_layers
from strata.store.layer_recipe import plan_join, recipe_bytes
from strata.store.listing import read_listing

_SUFFIX = {"none": ".tar", "gzip": ".tar.gz", "zstd": ".tar.zst"}


def _roots(req: dict[str, Any], where: str) -> list[str] | None:
    roots: list[str] | None = field(req, "roots", list, where, None)
    if roots is not None and not all(isinstance(r, str) for r in roots):
        raise UserError(f"roots must be store path strings (got {roots!r:.80})", where=where)
    return roots


def _base(req: dict[str, Any], where: str) -> dict[str, Any] | None:
    return field(req, "base", dict, where) if "base" in req else None


def _raw(key: str) -> Any:
    """A key read as it is, checked later by what reads it."""
    return read_with(lambda req, where: req.get(key))


@dataclasses.dataclass(frozen=True, kw_only=True)
class LayerGroupsRequest(Request):
    compressor: str = compressor_field("none")
    """Of grouped (concatenated) layers, default "none"; a single-path layer is
    copied as is when its blob already has this compressor."""
    store_dir: str = read_with(read_store_dir)
    """Default "/nix/store"."""
    output: str
    """The directory to write (see strata.layering.plan_io for its layout)."""
    store_layers: list[Any]
    """[{"store_path": P, "blob": B, "descriptor": D}]: StorePath layers of every path
    that may be in the closure (extra ones are ignored); {"info": F, ...} instead of
    store_path reads P from a StorePath info file (the rules cannot know P: it is a
    content hash); "listing": S, the StorePath listing, spares reading the headers of a
    layer that is concatenated."""
    closures: list[Any]
    """Files describing the closure: strata closure JSON, nixpkgs
    exportReferencesGraph list, or StorePath `info` files."""
    roots: list[str] | None = read_with(_roots)
    """Store paths the image holds (default: the closure files' roots)."""
    config: Any = _raw("config")
    """The image config: store paths its Cmd, Entrypoint and Env name are added to
    the roots when described, and are an error otherwise."""
    include_store_paths: bool = True
    """False writes an empty directory (bind-mounted stores)."""
    max_layers: int = 100
    """Counts base_layers and one customisation layer."""
    base_layers: int = 0
    """Layers of the base image."""
    base: dict[str, Any] | None = read_with(_base)
    """Or the base image itself, {"path", "name"} as ImageAssemble takes it (with
    `architecture` and `os` to pick one from a multi-platform layout): its layers
    are counted."""
    architecture: str = "x86_64"
    os: str = "linux"
    layering: Any = _raw("layering")
    """"popularity" (default, as dockerTools) | "auto_layer" | pipeline steps
    (strata.layering.pipeline)."""
    joins: bool = False
    """True: an uncompressed group of several paths is a recipe (`"join": true` in
    layers.json), not a blob; only image requests that list the same `store_layers`
    blobs in the same order as `join_sources` read those (StreamImage, Sbom, and
    ImageAssemble, which writes the layer out)."""


def _store_layers(items: list[Any], where: str) -> dict[str, _StoreLayer]:
    """Each store path's cached layer, checked against its descriptor."""
    out: dict[str, _StoreLayer] = {}
    for i, item in enumerate(items):
        at = f"{where}: store_layers[{i}]"
        if not isinstance(item, dict):
            raise UserError(
                f'must be {{"store_path", "blob", "descriptor"}} (got {item!r:.60})', where=at
            )
        check_keys(item, ("blob", "descriptor", "info", "listing", "store_path"), at)
        if "info" in item:
            path = read_info(field(item, "info", str, at), at)["path"]
        else:
            path = field(item, "store_path", str, at)
        blob = load_layer({k: item[k] for k in ("blob", "descriptor") if k in item}, at)
        desc_path = Path(item["descriptor"])
        desc = LayerDescriptor.from_json(json.loads(desc_path.read_bytes()), at)
        listing = field(item, "listing", str, at) if "listing" in item else None
        out[path] = _StoreLayer(blob, desc, listing, at, i)
    return out


@dataclasses.dataclass(frozen=True)
class _StoreLayer:
    blob: Blob
    descriptor: LayerDescriptor
    listing: str | None
    """Its StorePath listing file: the byte range of the path's own entries."""
    where: str
    index: int
    """Its place in the request's `store_layers` (what a join recipe names it by)."""

    def span(self, store_path: str) -> tuple[int, int] | None:
        if self.listing is None or self.blob.compressor != "none":
            return None
        return read_listing(self.listing, store_path, self.where).span


def _base_layer_count(req: LayerGroupsRequest, base: dict[str, Any], where: str) -> int:
    check_keys(base, ("name", "path"), f"{where}: base")
    platform = parse_platform(req.architecture, req.os, where=where)
    selector = Selector(field(base, "name", str, where, ""), platform)
    with tempfile.TemporaryDirectory(prefix="strata-base-") as work:
        path = field(base, "path", str, where)
        return len(load_base(path, selector, Path(work), need_bytes=False).layers)


def _groups(req: LayerGroupsRequest, where: str) -> list[list[str]]:
    roots, infos = read_closures(req.closures, where)
    if req.roots is not None:
        roots = req.roots
    roots = add_config_roots(roots, infos, req.config, req.store_dir, where)
    if not req.include_store_paths or not roots:
        return []
    closure = closure_of(roots, infos, where)
    max_layers = req.max_layers
    base_layers = req.base_layers
    if req.base is not None:
        base_layers += _base_layer_count(req, req.base, where)
    available = available_layers(max_layers, base_layers, f"{where}: max_layers")
    steps = strategy_steps(req.layering, available, f"{where}: layering")
    return plan_layers(closure, max_layers, base_layers, steps)


def _write_group(
    out: Path,
    index: int,
    group: list[str],
    layers: dict[str, _StoreLayer],
    compressor: str,
    joins: bool,
) -> GroupedLayer:
    name = f"layer-{index:03d}"
    blob_name = name + _SUFFIX[compressor]
    desc_name = name + ".json"
    sources = [layers[p].blob for p in group]
    join = False
    if len(sources) == 1 and sources[0].compressor == compressor:
        src = sources[0]
        share_output(src.path, out / blob_name)
        data = json_bytes(layers[group[0]].descriptor.to_json())
    else:
        # Listings are read only here: a layer copied whole needs no span.
        spans = [layers[p].span(p) for p in group]
        if joins and compressor == "none" and all(s is not None for s in spans):
            parts, desc = plan_join([b.path for b in sources], [s for s in spans if s is not None])
            indices = [layers[p].index for p in group]
            blob_name = name + ".join.json"
            (out / blob_name).write_bytes(recipe_bytes([(indices[i], a, b) for i, a, b in parts]))
            join = True
        else:
            desc = concat_layers(out / blob_name, [b.path for b in sources], compressor, spans)
        data = json_bytes(desc.to_json())
    (out / desc_name).write_bytes(data)
    return GroupedLayer(blob_name, desc_name, tuple(group), join)


def run(req: dict[str, Any], where: str) -> None:
    request = LayerGroupsRequest.from_json(req, where)
    compressor = request.compressor
    output = request.output
    blobs = _store_layers(request.store_layers, where)
    groups = _groups(request, where)
    for group in groups:
        for path in group:
            if path not in blobs:
                raise UserError(
                    f"no cached layer for store path {path} (got layers for {len(blobs)} "
                    "paths); list the StorePath layer of every path in the closure",
                    where=where,
                )
    with atomic_dir(output) as tmp:
        layers = [
            _write_group(tmp, i, g, blobs, compressor, request.joins) for i, g in enumerate(groups)
        ]
        (tmp / LAYERS_JSON).write_bytes(layers_json_bytes(layers))
