"""`ImageMerge`: several images → one docker-archive that `docker load` reads as all of them.

Request (keys sorted, `schema_version` 1):

    images   [path, ...]  docker-archives (each may hold several images) or OCI layouts
                          of one image
    output   path of the merged docker-archive
    base_blobs  optional [dir, ...]: shallow bases' layer blobs (BaseBlobs outputs)
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from strata.actions.request import base_blobs, check_keys, field
from strata.errors import UserError
from strata.oci.merge import merge_archives


def merge_images(req: dict[str, Any], where: str) -> None:
    check_keys(req, ("base_blobs", "images", "output", "schema_version"), where)
    images = field(req, "images", list, where)
    if not images or not all(isinstance(p, str) for p in images):
        raise UserError(
            "images must be a non-empty list of docker-archive or OCI layout paths "
            f"(got {images!r})",
            where=where,
        )
    output = Path(field(req, "output", str, where))
    with tempfile.TemporaryDirectory(prefix="strata-merge-") as work:
        merge_archives(images, output, Path(work), base_blobs(req, where))
