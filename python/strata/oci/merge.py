"""Merging docker-archives into one, like nixpkgs' `dockerTools.mergeImages`.

`docker load` of the result loads every input image under every one of its
tags. Images are taken as they are: configs byte for byte (so image IDs do
not change) and layer blobs verbatim, each distinct blob stored once. Inputs
are verified on the way in (see `strata.oci.base`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from strata.errors import UserError
from strata.oci.base import read_all_docker_archive
from strata.oci.config import created_epoch
from strata.oci.docker_archive import write_docker_archive
from strata.oci.image import BaseImage, Image
from strata.oci.reference import ImageRef, split_tag


def _image_of(base: BaseImage) -> Image:
    refs = []
    for tag in base.repo_tags:
        name, t = split_tag(tag)
        refs.append(ImageRef(name, t or "latest"))
    created = base.config.get("created")
    try:
        mtime = created_epoch(created) if isinstance(created, str) else 1
    except ValueError:
        mtime = 1
    return Image(
        base.config_bytes,
        base.layers,
        refs[0] if refs else None,
        mtime=mtime,
        platform=base.platform,
        more_tags=tuple(refs[1:]),
    )


def merge_archives(
    inputs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], workdir: Path
) -> list[Image]:
    """Write every image of every input docker-archive into one docker-archive at `out`."""
    if not inputs:
        raise UserError("no images to merge (got an empty list); give one or more", where="merge")
    images: list[Image] = []
    seen: dict[str, str] = {}
    for n, path in enumerate(inputs):
        for img in map(_image_of, read_all_docker_archive(Path(path), workdir / f"in{n}")):
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
