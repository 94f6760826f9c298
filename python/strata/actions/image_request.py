"""An image request: layers (+ a base image) and a config, as ImageAssemble reads it.

Shared by the actions that assemble an image from such a request:
ImageAssemble, StreamImage and Sbom (its `assemble`): `ImageRequest` holds
the keys they share. `load_layers` also reads the layers LayerGroups is given.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
from pathlib import Path
from typing import Any

from strata.actions.request import Request, base_blobs, check_keys, field, read_with
from strata.canonical import json_bytes, read_json
from strata.errors import UserError
from strata.fsutil import write_bytes_atomic
from strata.layering.plan_io import read_layers_dir
from strata.oci.base import Selector, load_base
from strata.oci.compress import check_compressor
from strata.oci.docker_archive import write_docker_archive
from strata.oci.image import Assembled, Blob, Image, assemble
from strata.oci.layer import LayerDescriptor
from strata.oci.oci_layout import write_oci_layout
from strata.oci.platform import parse_platform
from strata.store.layer_recipe import read_join

_OUTPUTS = ("docker_archive", "image_info", "oci_layout")


def load_layer(item: Any, where: str, *, join: bool = False) -> Blob:
    """A layer from its blob and descriptor files (`join`: the blob file is a join recipe,
    whose size is not the layer's)."""
    if not isinstance(item, dict):
        raise UserError(
            f'each layer must be {{"blob": path, "descriptor": path}} (got {item!r})',
            where=where,
        )
    check_keys(item, ("blob", "descriptor"), where)
    blob = Path(field(item, "blob", str, where))
    desc_path = Path(field(item, "descriptor", str, where))
    data = read_json(
        desc_path, "layer descriptor", "pass the .json output of a layer action", where
    )
    desc = LayerDescriptor.from_json(data if isinstance(data, dict) else {}, str(desc_path))
    check_compressor(desc.compressor, str(desc_path))
    try:
        size = desc.size if join else blob.stat().st_size
    except OSError:
        raise UserError(f"layer blob not found (got {blob}); check the path", where=where) from None
    if size != desc.size:
        raise UserError(
            f"layer blob size differs from its descriptor (got {size}, expected {desc.size}) "
            f"for {blob}; pass the blob and descriptor of the same layer action",
            where=where,
        )
    return Blob(blob, desc.digest, desc.size, desc.diff_id, desc.compressor)


def load_layers(items: list[Any], where: str) -> list[Blob]:
    """`layers` items in order; a `{"dir": D}` item stands for the layers D lists, and
    with `"join_sources"` (the `store_layers` blobs LayerGroups was given, in order) D
    may hold join recipes."""
    out: list[Blob] = []
    for item in items:
        if isinstance(item, dict) and "dir" in item:
            check_keys(item, ("dir", "join_sources"), where)
            sources = field(item, "join_sources", list, where, None)
            if sources is not None and not all(isinstance(p, str) for p in sources):
                raise UserError(
                    f"join_sources must be paths (got {sources!r:.80}); list the store path "
                    "layers LayerGroups was given",
                    where=where,
                )
            layers_dir = field(item, "dir", str, where)
            for f in read_layers_dir(layers_dir, where, joins=sources is not None):
                blob = load_layer(
                    {"blob": str(f.blob), "descriptor": str(f.descriptor)}, where, join=f.join
                )
                if f.join:
                    join = read_join(f.blob, [Path(p) for p in sources or ()], blob.size, where)
                    blob = dataclasses.replace(blob, join=join)
                out.append(blob)
        else:
            out.append(load_layer(item, where))
    return out


def outputs_of(req: dict[str, Any], where: str) -> dict[str, Path]:
    outputs = field(req, "outputs", dict, where)
    check_keys(outputs, _OUTPUTS, where)
    paths = {k: Path(field(outputs, k, str, where)) for k in _OUTPUTS if k in outputs}
    if not paths:
        raise UserError(
            "outputs is empty; give docker_archive, oci_layout and/or image_info", where=where
        )
    return paths


def write_outputs(images: list[Image], paths: dict[str, Path], info: dict[str, Any]) -> None:
    """Write every requested output; if one fails, remove those already written."""
    done: list[Path] = []
    try:
        if "docker_archive" in paths:
            write_docker_archive(paths["docker_archive"], images)
            done.append(paths["docker_archive"])
        if "oci_layout" in paths:
            write_oci_layout(paths["oci_layout"], images)
            done.append(paths["oci_layout"])
        if "image_info" in paths:
            write_bytes_atomic(paths["image_info"], json_bytes(info) + b"\n", durable=False)
    except BaseException:
        for p in done:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
        raise


@dataclasses.dataclass(frozen=True, kw_only=True)
class ImageRequest(Request):
    """The image ImageAssemble and StreamImage (and Sbom's `assemble`) describe."""

    architecture: str = "x86_64"
    """"x86_64" | "aarch64" | ..."""
    os: str = "linux"
    layers: list[Any] = dataclasses.field(default_factory=list)
    """[{"blob": path, "descriptor": path}, ...] (outputs of a layer action), or
    {"dir": path} for a LayerGroups output directory: its layers, in order."""
    base: dict[str, Any] | None = None
    """{"path": docker-archive or OCI layout, "name": "repo:tag"}."""
    base_blobs: list[Path] = read_with(base_blobs)
    """A shallow base's layer blobs (BaseBlobs outputs), used only for a docker-archive."""
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    """{"Env": [...], "Cmd": [...], ...}."""
    created: str | None = None
    """RFC 3339 time or "now"."""
    name: str
    """The image name."""
    tag: str | None = None
    """The image tag (default: a content hash)."""


def build_image(
    req: ImageRequest, where: str, work: Path, *, need_bytes: bool = False
) -> Assembled:
    """The image a request describes; `work` holds base blobs. A shallow base's
    layers need not be here unless `need_bytes` (a docker-archive)."""
    platform = parse_platform(req.architecture, req.os, where=where)
    layers = load_layers(req.layers, where)
    base = None
    if req.base is not None:
        check_keys(req.base, ("name", "path"), where)
        selector = Selector(field(req.base, "name", str, where, ""), platform)
        path = field(req.base, "path", str, where)
        dirs = req.base_blobs if need_bytes else []
        base = load_base(path, selector, work, need_bytes=need_bytes, blob_dirs=dirs)
    return assemble(
        layers=layers,
        fields=req.config,
        platform=platform,
        created=req.created,
        name=req.name,
        tag=req.tag,
        base=base,
        where=where,
    )
