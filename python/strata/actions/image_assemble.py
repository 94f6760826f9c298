"""`ImageAssemble`: layers (+ a base image) and a config → docker-archive and/or OCI layout.

The request is `ImageAssembleRequest` below: an `ImageRequest`
(strata.actions.image_request) and its outputs.

Warnings (e.g. `created = "now"`) go to stderr; all outputs appear or none.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.actions.image_request import ImageRequest, build_image, outputs_of, write_outputs
from strata.actions.request import read_with
from strata.oci.docker_archive import compatibility_warnings


@dataclass(frozen=True, kw_only=True)
class ImageAssembleRequest(ImageRequest):
    outputs: dict[str, Path] = read_with(outputs_of)
    """{"docker_archive": path, "oci_layout": dir, "image_info": path} (at least one
    image output)."""


def assemble_image(req: dict[str, Any], where: str) -> None:
    request = ImageAssembleRequest.from_json(req, where)
    paths = request.outputs
    with tempfile.TemporaryDirectory(prefix="strata-base-") as work:
        result = build_image(request, where, Path(work), need_bytes="docker_archive" in paths)
        warnings = list(result.warnings)
        if "docker_archive" in paths:
            warnings += compatibility_warnings([result.image])
        for warning in warnings:
            print(f"warning: {where}: {warning}", file=sys.stderr)
        write_outputs([result.image], paths, result.image.info())
