"""`ImageAssemble`: layers (+ a base image) and a config → docker-archive and/or OCI layout.

Request (keys sorted, `schema_version` 1):

    architecture   "x86_64" | "aarch64" | ... (default "x86_64")
    base           optional {"path": docker-archive or OCI layout, "name": "repo:tag"}
    base_blobs     optional [dir, ...]: a shallow base's layer blobs (BaseBlobs outputs), read
                   only for a docker_archive output
    config         {"Env": [...], "Cmd": [...], ...}
    created        optional RFC 3339 time or "now"
    layers         [{"blob": path, "descriptor": path}, ...] (outputs of a layer action), or
                   {"dir": path} for a LayerGroups output directory: its layers, in order
    name, tag      image name (tag defaults to a content hash)
    os             default "linux"
    outputs        {"docker_archive": path, "oci_layout": dir, "image_info": path}
                   (at least one image output)

Warnings (e.g. `created = "now"`) go to stderr; all outputs appear or none.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from strata.actions.request import base_blobs, field
from strata.canonical import json_bytes, read_json
from strata.errors import UserError
from strata.fsutil import write_bytes_atomic
from strata.layering.plan_io import read_layers_dir
from strata.oci.base import Selector, load_base
from strata.oci.compress import check_compressor
from strata.oci.docker_archive import compatibility_warnings, write_docker_archive
from strata.oci.image import Assembled, Blob, Image, assemble
from strata.oci.layer import LayerDescriptor
from strata.oci.oci_layout import write_oci_layout
from strata.oci.platform import parse_platform

_KEYS = {
    "architecture",
    "base",
    "base_blobs",
    "config",
    "created",
    "layers",
    "name",
    "os",
    "outputs",
    "schema_version",
    "tag",
}
_OUTPUTS = ("docker_archive", "image_info", "oci_layout")


def check_keys(req: dict[str, Any], allowed: set[str] | tuple[str, ...], where: str) -> None:
    for key in req:
        if key not in allowed:
            raise UserError(
                f"unknown request key (got {key!r}); allowed keys: {', '.join(sorted(allowed))}",
                where=where,
            )


def load_layer(item: Any, where: str) -> Blob:
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
        size = blob.stat().st_size
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
    """`layers` items in order; a `{"dir": D}` item stands for the layers D lists."""
    out: list[Blob] = []
    for item in items:
        if isinstance(item, dict) and "dir" in item:
            check_keys(item, ("dir",), where)
            for blob, desc in read_layers_dir(field(item, "dir", str, where), where):
                out.append(load_layer({"blob": str(blob), "descriptor": str(desc)}, where))
        else:
            out.append(load_layer(item, where))
    return out


def outputs_of(req: dict[str, Any], where: str) -> dict[str, Path]:
    outputs = field(req, "outputs", dict, where)
    check_keys(outputs, _OUTPUTS, where)
    paths = {k: Path(field(outputs, k, str, where)) for k in _OUTPUTS if k in outputs}
    if "docker_archive" not in paths and "oci_layout" not in paths:
        raise UserError(
            "outputs has no image output (got keys: "
            f"{', '.join(sorted(outputs)) or 'none'}); give docker_archive and/or oci_layout",
            where=where,
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


def build_image(
    req: dict[str, Any], where: str, work: Path, *, need_bytes: bool = False
) -> Assembled:
    """The image a request describes (everything but `outputs`); `work` holds base blobs.
    A shallow base's layers need not be here unless `need_bytes` (a docker-archive)."""
    platform = parse_platform(
        field(req, "architecture", str, where, "x86_64"),
        field(req, "os", str, where, "linux"),
        where=where,
    )
    layers = load_layers(field(req, "layers", list, where, []), where)
    base_req = field(req, "base", (dict, type(None)), where, None)
    base = None
    if base_req is not None:
        check_keys(base_req, ("name", "path"), where)
        selector = Selector(field(base_req, "name", str, where, ""), platform)
        path = field(base_req, "path", str, where)
        dirs = base_blobs(req, where) if need_bytes else []
        base = load_base(path, selector, work, need_bytes=need_bytes, blob_dirs=dirs)
    return assemble(
        layers=layers,
        fields=field(req, "config", dict, where, {}),
        platform=platform,
        created=field(req, "created", (str, type(None)), where, None),
        name=field(req, "name", str, where),
        tag=field(req, "tag", (str, type(None)), where, None),
        base=base,
        where=where,
    )


def assemble_image(req: dict[str, Any], where: str) -> None:
    check_keys(req, _KEYS, where)
    paths = outputs_of(req, where)
    with tempfile.TemporaryDirectory(prefix="strata-base-") as work:
        result = build_image(req, where, Path(work), need_bytes="docker_archive" in paths)
        warnings = list(result.warnings)
        if "docker_archive" in paths:
            warnings += compatibility_warnings([result.image])
        for warning in warnings:
            print(f"warning: {where}: {warning}", file=sys.stderr)
        write_outputs([result.image], paths, result.image.info())
