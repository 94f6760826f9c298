"""OCI image layout: a directory of content-addressed blobs plus an index.

    oci-layout            {"imageLayoutVersion": "1.0.0"}
    index.json            an image index; each manifest descriptor carries
                          org.opencontainers.image.ref.name = the tag (what
                          `skopeo copy oci:DIR:TAG` and `umoci --image DIR:TAG`
                          look up) and io.containerd.image.name = name:tag
    blobs/sha256/<hex>    manifests, configs and layers, once each

A layout on a shallow base (`pull_image(shallow = True)`) lacks that base's
layer blobs and names where they are in `remote-blobs.json`
(strata.oci.remote_blobs); everything else is what a full base gives.

A pulled image's layout also lists, after the image, the SBOMs its registry
held as OCI 1.1 referrers of it (entries with an `artifactType`, which image
readers pass over).

Spec: https://github.com/opencontainers/image-spec/blob/main/image-layout.md
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.canonical import json_bytes
from strata.fsutil import atomic_dir, share_output
from strata.oci.digest import sha256_bytes
from strata.oci.image import Image
from strata.oci.manifest import OCI_MANIFEST, Descriptor, index_bytes
from strata.oci.platform import Platform
from strata.oci.remote_blobs import Remote, write_remote_blobs
from strata.oci.spancopy import write_join

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


@dataclass(frozen=True)
class Artifact:
    """A manifest an index lists after the images (an OCI 1.1 referrer such as an SBOM)."""

    descriptor: dict[str, Any]
    """Its index entry (`artifactType`, digest, mediaType, size, annotations)."""
    manifest: bytes
    blobs: tuple[tuple[str, Path], ...]
    """(digest, file) of each blob it names."""


def write_oci_layout(
    path: str | os.PathLike[str],
    images: Sequence[Image],
    annotations: Mapping[str, str] | None = None,
    artifacts: Sequence[Artifact] = (),
) -> None:
    """Write `images` as one OCI image layout directory at `path` (atomically); the
    index's entry of each also carries `annotations`; `artifacts` are listed after them."""
    with atomic_dir(path) as tmp:
        blobs = tmp / "blobs" / "sha256"
        blobs.mkdir(parents=True)

        def put_bytes(data: bytes) -> str:
            return put_blob(blobs, data)

        descriptors = []
        remote: dict[str, Remote] = {}
        for img in images:
            for blob in img.layers:
                if blob.remote is not None:
                    remote[blob.digest] = blob.remote
                    continue
                target = blobs / blob.digest.partition(":")[2]
                if target.exists():
                    continue
                if blob.join is not None:
                    write_join(blob.join, target, blob.digest)
                else:
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
        index = index_bytes(descriptors)
        for art in artifacts:
            put_bytes(art.manifest)
            for digest, blob_path in art.blobs:
                target = blobs / digest.partition(":")[2]
                if not target.exists():
                    share_output(blob_path, target)
        if artifacts:
            obj = json.loads(index)
            obj["manifests"] += [a.descriptor for a in artifacts]
            index = json_bytes(obj)
        (tmp / "index.json").write_bytes(index)
        # A blob another image of the layout holds is not missing.
        missing = {d: r for d, r in remote.items() if not (blobs / d.partition(":")[2]).exists()}
        write_remote_blobs(tmp, missing)
        (tmp / "oci-layout").write_bytes(json_bytes({"imageLayoutVersion": LAYOUT_VERSION}))
        for p in sorted(Path(tmp).rglob("*")):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
