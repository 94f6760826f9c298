"""`ImageExport`: an image's layers flattened into one root-filesystem tar.

The request is `ImageExportRequest` below.

Warnings (skipped device nodes) go to stderr.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.actions.request import Request, base_blobs, read_with
from strata.oci.base import Selector, load_base
from strata.oci.config import created_epoch
from strata.oci.export import export_rootfs
from strata.oci.platform import parse_platform


@dataclass(frozen=True, kw_only=True)
class ImageExportRequest(Request):
    architecture: str = ""
    """Picks one image from a multi-platform layout; "" takes the only one."""
    os: str = "linux"
    """With `architecture`."""
    name: str = ""
    """`name:tag` (or OCI ref name) picking one image."""
    output: str
    """Path of the tar to write."""
    image: str
    """Docker-archive or OCI layout path."""
    base_blobs: list[Path] = read_with(base_blobs)
    """Optional: a shallow base's layer blobs (BaseBlobs outputs)."""


def export_image(req: dict[str, Any], where: str) -> None:
    request = ImageExportRequest.from_json(req, where)
    arch = request.architecture
    platform = parse_platform(arch, request.os, where=where) if arch else None
    selector = Selector(request.name, platform)
    output = Path(request.output)
    with tempfile.TemporaryDirectory(prefix="strata-export-") as work:
        path = request.image
        blob_dirs = request.base_blobs
        image = load_base(path, selector, Path(work) / "image", blob_dirs=blob_dirs)
        created = image.config.get("created")
        try:
            mtime = created_epoch(created) if isinstance(created, str) else 1
        except ValueError:
            mtime = 1
        result = export_rootfs(image.layers, output, Path(work), mtime=mtime, image=path)
    for warning in result.warnings:
        print(f"warning: {where}: {warning}", file=sys.stderr)
