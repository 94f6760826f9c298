"""`ImageAssemble`: layers (+ a base image) and a config → image record, OCI layout
and/or docker-archive.

The request is `ImageAssembleRequest` below: an `ImageRequest`
(strata.actions.image_request) and its outputs. The image rules run it twice: once
for the image record alone (`image_info`: the digests, what a plain build makes),
and once, when something asks for the bytes, for the OCI layout. That second run
names the first one's output as `record`: it takes the record's `created` (so
`created = "now"` gives one time to both) and must arrive at the record's digests.

Warnings (e.g. `created = "now"`) go to stderr; all outputs appear or none.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.actions.image_request import ImageRequest, build_image, outputs_of, write_outputs
from strata.actions.request import read_with
from strata.canonical import read_json
from strata.errors import UserError
from strata.oci.docker_archive import compatibility_warnings


def _record(req: dict[str, Any], where: str) -> Path | None:
    value = req.get("record")
    if value is None:
        return None
    if not isinstance(value, str):
        raise UserError(f"record must be a path (got {value!r:.60})", where=where)
    return Path(value)


@dataclass(frozen=True, kw_only=True)
class ImageAssembleRequest(ImageRequest):
    outputs: dict[str, Path] = read_with(outputs_of)
    """{"docker_archive": path, "oci_layout": dir, "image_info": path} (at least one)."""
    record: Path | None = read_with(_record)
    """The `image_info` an earlier ImageAssemble wrote for the same image, or None."""


def _read_record(path: Path, where: str) -> dict[str, Any]:
    fix = "pass the image_info output of the same image's ImageAssemble"
    data = read_json(path, "image record", fix, where)
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), str) for k in ("created", "manifest_digest")
    ):
        raise UserError(
            f"image record has no created and manifest_digest (got {path}); {fix}", where=where
        )
    return data


def assemble_image(req: dict[str, Any], where: str) -> None:
    request = ImageAssembleRequest.from_json(req, where)
    record = _read_record(request.record, where) if request.record else None
    if record is not None and request.created == "now":
        request = dataclasses.replace(request, created=record["created"])
    paths = request.outputs
    with tempfile.TemporaryDirectory(prefix="strata-base-") as work:
        result = build_image(request, where, Path(work), need_bytes="docker_archive" in paths)
        info = result.image.info()
        if record is not None and info["manifest_digest"] != record["manifest_digest"]:
            raise UserError(
                f"the image's manifest digest differs from its record's (got "
                f"{info['manifest_digest']}, expected {record['manifest_digest']} in "
                f"{request.record}); a layer changed after the record was written: build again",
                where=where,
            )
        warnings = [] if record is not None else list(result.warnings)
        if "docker_archive" in paths:
            warnings += compatibility_warnings([result.image])
        for warning in warnings:
            print(f"warning: {where}: {warning}", file=sys.stderr)
        write_outputs([result.image], paths, info)
