"""`ImageMerge`: several images → one docker-archive that `docker load` reads as all of them.

The request is `ImageMergeRequest` below.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.actions.request import Request, base_blobs, field, read_with
from strata.errors import UserError
from strata.oci.merge import merge_archives


def _images(req: dict[str, Any], where: str) -> list[str]:
    images: list[str] = field(req, "images", list, where)
    if not images or not all(isinstance(p, str) for p in images):
        raise UserError(
            "images must be a non-empty list of docker-archive or OCI layout paths "
            f"(got {images!r})",
            where=where,
        )
    return images


@dataclass(frozen=True, kw_only=True)
class ImageMergeRequest(Request):
    images: list[str] = read_with(_images)
    """Docker-archives (each may hold several images) or OCI layouts of one image."""
    output: str
    """Path of the merged docker-archive."""
    base_blobs: list[Path] = read_with(base_blobs)
    """Optional: shallow bases' layer blobs (BaseBlobs outputs)."""


def merge_images(req: dict[str, Any], where: str) -> None:
    request = ImageMergeRequest.from_json(req, where)
    with tempfile.TemporaryDirectory(prefix="strata-merge-") as work:
        merge_archives(request.images, Path(request.output), Path(work), request.base_blobs)
