"""`ImageArchive`: the docker-archive (`docker load -i`) of an image's OCI layout.

Image rules build the OCI layout (`ImageAssemble`); this action writes the
whole-image tarball from it only when something asks for it (the `tarball`
output group, `image_load`). The layout is read and verified as any image
input is (`strata.oci.base`), and written out as it is: the same config bytes,
layer blobs, name and member mtime, so the archive is byte for byte the one
`ImageAssemble` writes for the same image.

The request is `ImageArchiveRequest` below.

Warnings (zstd layers that older Docker cannot load) go to stderr.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.actions.request import Request, base_blobs, read_with
from strata.oci.base import Selector, load_base
from strata.oci.docker_archive import compatibility_warnings, write_docker_archive
from strata.oci.image import stored_image


@dataclass(frozen=True, kw_only=True)
class ImageArchiveRequest(Request):
    image: str
    """An OCI layout holding one image (or a docker-archive)."""
    output: str
    """Path of the docker-archive to write."""
    base_blobs: list[Path] = read_with(base_blobs)
    """Optional: a shallow base's layer blobs (BaseBlobs outputs)."""


def archive_image(req: dict[str, Any], where: str) -> None:
    request = ImageArchiveRequest.from_json(req, where)
    with tempfile.TemporaryDirectory(prefix="strata-archive-") as work:
        loaded = load_base(request.image, Selector(), Path(work), blob_dirs=request.base_blobs)
        image = stored_image(loaded)
        for warning in compatibility_warnings([image]):
            print(f"warning: {where}: {warning}", file=sys.stderr)
        write_docker_archive(Path(request.output), [image])
