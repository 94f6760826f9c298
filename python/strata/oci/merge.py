"""Merging images into one docker-archive, like nixpkgs' `dockerTools.mergeImages`.

`docker load` of the result loads every input image under every one of its
tags. Inputs are docker-archives (every image of each) or OCI layouts of one
image (what image targets build). Images are taken as they are: configs byte
for byte (so image IDs do not change) and layer blobs verbatim, each distinct
blob stored once. Inputs are verified on the way in (see `strata.oci.base`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from strata.errors import UserError
from strata.oci.base import read_all_images
from strata.oci.docker_archive import write_docker_archive
from strata.oci.image import Image, stored_image


def merge_archives(
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    workdir: Path,
    blob_dirs: Sequence[Path] = (),
) -> list[Image]:
    """Write every image of every input (docker-archive or OCI layout) into one docker-archive
    (`blob_dirs`: where shallow bases' layers are)."""
    if not inputs:
        raise UserError("no images to merge (got an empty list); give one or more", where="merge")
    images: list[Image] = []
    seen: dict[str, str] = {}
    for n, path in enumerate(inputs):
        for img in map(stored_image, read_all_images(Path(path), workdir / f"in{n}", blob_dirs)):
            for ref in img.refs:
                other = seen.setdefault(str(ref), img.config_digest)
                if other != img.config_digest:
                    raise UserError(
                        f"two different images are tagged {ref} (got {other} and "
                        f"{img.config_digest}); give them different tags",
                        where=str(path),
                    )
            images.append(img)
    # The mtime of archive members is the newest input's `created`: fixed for fixed inputs.
    write_docker_archive(out, images)
    return images
