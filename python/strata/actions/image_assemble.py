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

import sys
import tempfile
from pathlib import Path
from typing import Any

from strata.actions.image_request import IMAGE_KEYS, build_image, outputs_of, write_outputs
from strata.actions.request import check_keys
from strata.oci.docker_archive import compatibility_warnings


def assemble_image(req: dict[str, Any], where: str) -> None:
    check_keys(req, IMAGE_KEYS, where)
    paths = outputs_of(req, where)
    with tempfile.TemporaryDirectory(prefix="strata-base-") as work:
        result = build_image(req, where, Path(work), need_bytes="docker_archive" in paths)
        warnings = list(result.warnings)
        if "docker_archive" in paths:
            warnings += compatibility_warnings([result.image])
        for warning in warnings:
            print(f"warning: {where}: {warning}", file=sys.stderr)
        write_outputs([result.image], paths, result.image.info())
