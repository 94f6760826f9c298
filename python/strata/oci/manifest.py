"""Image manifests and indexes, in Docker's v2 schema 2 and OCI's formats.

The two manifest formats have the same shape and differ in media types.
Registries and runtimes decide how to read a blob from its descriptor's
media type, so a layer's type must say how it is compressed: a gzip blob
labelled as a plain tar is unreadable. Docker's schema has no zstd layer type;
Docker and containerd accept the OCI zstd type inside a Docker manifest.

Specs: https://github.com/opencontainers/image-spec/blob/main/manifest.md,
https://github.com/opencontainers/image-spec/blob/main/image-index.md,
https://distribution.github.io/distribution/spec/manifest-v2-2/
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from strata.canonical import json_bytes
from strata.oci.compress import layer_media_type
from strata.oci.platform import Platform

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"


@dataclass(frozen=True)
class Descriptor:
    """A content descriptor: what a manifest or index says about one blob."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    platform: Platform | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "digest": self.digest,
            "mediaType": self.media_type,
            "size": self.size,
        }
        if self.annotations:
            out["annotations"] = dict(sorted(self.annotations.items()))
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        return out


@dataclass(frozen=True)
class LayerRef:
    """A layer as image assembly sees it: blob digest/size, diff_id, compression."""

    digest: str
    size: int
    diff_id: str
    compressor: str

    def descriptor(self, *, docker: bool) -> Descriptor:
        return Descriptor(layer_media_type(self.compressor, docker=docker), self.digest, self.size)


def manifest_bytes(
    config_digest: str, config_size: int, layers: Sequence[LayerRef], *, docker: bool
) -> bytes:
    """Serialised manifest, Docker v2 schema 2 (`docker=True`) or OCI."""
    config = Descriptor(DOCKER_CONFIG if docker else OCI_CONFIG, config_digest, config_size)
    obj = {
        "config": config.to_json(),
        "layers": [layer.descriptor(docker=docker).to_json() for layer in layers],
        "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
        "schemaVersion": 2,
    }
    return json_bytes(obj)


def index_bytes(manifests: Sequence[Descriptor]) -> bytes:
    """Serialised OCI image index listing `manifests` in the order given."""
    return json_bytes(
        {
            "manifests": [m.to_json() for m in manifests],
            "mediaType": OCI_INDEX,
            "schemaVersion": 2,
        }
    )
