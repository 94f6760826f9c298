"""`ImageExport`: an image's layers flattened into one root-filesystem tar.

Request (keys sorted, `schema_version` 1):

    image          docker-archive or OCI layout path
    name           optional `name:tag` (or OCI ref name) to pick one image
    architecture   optional, picks from a multi-platform layout
    os             default "linux"
    output         path of the tar to write
    base_blobs     optional [dir, ...]: a shallow base's layer blobs (BaseBlobs outputs)

Warnings (skipped device nodes) go to stderr.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from strata.actions.request import base_blobs, check_keys, field
from strata.oci.base import Selector, load_base
from strata.oci.config import created_epoch
from strata.oci.export import export_rootfs
from strata.oci.platform import parse_platform

_KEYS = ("architecture", "base_blobs", "image", "name", "os", "output", "schema_version")


def export_image(req: dict[str, Any], where: str) -> None:
    check_keys(req, _KEYS, where)
    arch = field(req, "architecture", str, where, "")
    platform = (
        parse_platform(arch, field(req, "os", str, where, "linux"), where=where) if arch else None
    )
    selector = Selector(field(req, "name", str, where, ""), platform)
    output = Path(field(req, "output", str, where))
    with tempfile.TemporaryDirectory(prefix="strata-export-") as work:
        path = field(req, "image", str, where)
        blob_dirs = base_blobs(req, where)
        image = load_base(path, selector, Path(work) / "image", blob_dirs=blob_dirs)
        created = image.config.get("created")
        try:
            mtime = created_epoch(created) if isinstance(created, str) else 1
        except ValueError:
            mtime = 1
        result = export_rootfs(image.layers, output, Path(work), mtime=mtime, image=path)
    for warning in result.warnings:
        print(f"warning: {where}: {warning}", file=sys.stderr)
