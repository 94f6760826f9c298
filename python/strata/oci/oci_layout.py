"""OCI image layout: a directory of content-addressed blobs plus an index.

    oci-layout            {"imageLayoutVersion": "1.0.0"}
    index.json            an image index; each manifest descriptor carries
                          org.opencontainers.image.ref.name = the tag (what
                          `skopeo copy oci:DIR:TAG` and `umoci --image DIR:TAG`
                          look up) and io.containerd.image.name = name:tag
    blobs/sha256/<hex>    manifests, configs and layers, once each

Spec: https://github.com/opencontainers/image-spec/blob/main/image-layout.md
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from strata.canonical import json_bytes
from strata.fsutil import atomic_dir, share_output
from strata.oci.digest import sha256_bytes
from strata.oci.image import Image
from strata.oci.manifest import OCI_MANIFEST, Descriptor, index_bytes
from strata.oci.platform import Platform

LAYOUT_VERSION = "1.0.0"
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
PULLED_FROM = "dev.strata.pulled-from"
"""On a pulled image: `<registry host>/<repository>@<the digest it was pulled by>` (what
its SBOM names as the base's origin; the layout's own manifest may be a conversion)."""


def _platform_of(image: Image) -> Platform:
    if image.platform is not None:
        return image.platform
    return Platform.from_json(json.loads(image.config))


def put_blob(blobs: Path, data: bytes) -> str:
    """Store `data` in a layout's `blobs/sha256` directory (once); return its digest."""
    digest = sha256_bytes(data)
    target = blobs / digest.partition(":")[2]
    if not target.exists():
        target.write_bytes(data)
    return digest


def write_oci_layout(
    path: str | os.PathLike[str],
    images: Sequence[Image],
    annotations: Mapping[str, str] | None = None,
) -> None:
    """Write `images` as one OCI image layout directory at `path` (atomically); the
    index's entry of each also carries `annotations`."""
    with atomic_dir(path) as tmp:
        blobs = tmp / "blobs" / "sha256"
        blobs.mkdir(parents=True)

        def put_bytes(data: bytes) -> str:
            return put_blob(blobs, data)

        descriptors = []
        for img in images:
            for blob in img.layers:
                target = blobs / blob.digest.partition(":")[2]
                if not target.exists():
                    share_output(blob.path, target)
            put_bytes(img.config)
            manifest = img.manifest(docker=False)
            entry = dict(annotations or {})
            if img.ref is not None:
                entry |= {REF_NAME: img.ref.tag, CONTAINERD_NAME: str(img.ref)}
            descriptors.append(
                Descriptor(
                    OCI_MANIFEST,
                    put_bytes(manifest),
                    len(manifest),
                    annotations=entry,
                    platform=_platform_of(img),
                )
            )
        (tmp / "index.json").write_bytes(index_bytes(descriptors))
        (tmp / "oci-layout").write_bytes(json_bytes({"imageLayoutVersion": LAYOUT_VERSION}))
        for p in sorted(Path(tmp).rglob("*")):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
