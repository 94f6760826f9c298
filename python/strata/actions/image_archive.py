"""`ImageArchive`: the docker-archive (`docker load -i`) of an image's OCI layout.

Image rules build the OCI layout (`ImageAssemble`); this action writes the
whole-image tarball from it only when something asks for it (the `tarball`
output group, `image_load`). The layout is read and verified as any image
input is (`strata.oci.base`), and written out as it is: the same config bytes,
layer blobs, name and member mtime, so the archive is byte for byte the one
`ImageAssemble` writes for the same image.

Request (keys sorted, `schema_version` 1):

    image    an OCI layout holding one image (or a docker-archive)
    output   path of the docker-archive to write
    base_blobs  optional [dir, ...]: a shallow base's layer blobs (BaseBlobs outputs)

Warnings (zstd layers that older Docker cannot load) go to stderr.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from strata.actions.request import base_blobs, check_keys, field
from strata.oci.base import Selector, load_base
from strata.oci.docker_archive import compatibility_warnings, write_docker_archive
from strata.oci.image import stored_image

_KEYS = ("base_blobs", "image", "output", "schema_version")


def archive_image(req: dict[str, Any], where: str) -> None:
    check_keys(req, _KEYS, where)
    source = field(req, "image", str, where)
    output = Path(field(req, "output", str, where))
    with tempfile.TemporaryDirectory(prefix="strata-archive-") as work:
        blob_dirs = base_blobs(req, where)
        image = stored_image(load_base(source, Selector(), Path(work), blob_dirs=blob_dirs))
        for warning in compatibility_warnings([image]):
            print(f"warning: {where}: {warning}", file=sys.stderr)
        write_docker_archive(output, [image])
