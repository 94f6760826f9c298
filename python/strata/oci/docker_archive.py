"""docker-archive: the tar that `docker save` writes and `docker load` reads.

Layout we write (one or more images, as `docker save a b` would):

    <config hex>.json     each image's config, named by its sha256
    <blob hex>.tar        each distinct layer blob once, named by its digest
    manifest.json         [{"Config", "RepoTags", "Layers"}] in image order
    repositories          {"<name>": {"<tag>": "<top layer hex>"}} for old readers

Layer blobs are stored as they are (gzip or zstd compressed, or plain tar):
`docker load` and skopeo detect the compression from the bytes and check the
uncompressed digest against the config's `rootfs.diff_ids`. Members are
sorted by name and written with the lead tar writer, so the archive is as
reproducible as its layers.

Format: https://github.com/moby/moby/blob/master/image/spec/v1.2.md and
`docker save`'s manifest.json (moby image/tarexport).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from strata.canonical import json_bytes
from strata.fsutil import atomic_file
from strata.oci.image import Blob, Image, require_bytes
from strata.oci.tarwriter import Sink, TarWriter


def _hex(digest: str) -> str:
    return digest.partition(":")[2]


def layer_member(blob: Blob) -> str:
    return f"{_hex(blob.digest)}.tar"


def archive_manifest(images: Sequence[Image]) -> list[dict[str, Any]]:
    return [
        {
            "Config": f"{_hex(img.config_digest)}.json",
            "Layers": [layer_member(b) for b in img.layers],
            "RepoTags": [str(r) for r in img.refs],
        }
        for img in images
    ]


def _repositories(images: Sequence[Image]) -> dict[str, dict[str, str]]:
    repos: dict[str, dict[str, str]] = {}
    for img in images:
        top = img.layers[-1].digest if img.layers else img.config_digest
        for ref in img.refs:
            repos.setdefault(ref.name, {})[ref.tag] = _hex(top)
    return repos


def compatibility_warnings(images: Sequence[Image]) -> list[str]:
    """Why a docker-archive of `images` may not load everywhere (returned, never printed)."""
    zstd = sorted({b.digest for img in images for b in img.layers if b.compressor == "zstd"})
    if not zstd:
        return []
    return [
        f"docker-archive holds {len(zstd)} zstd layer(s) (first {zstd[0]}); "
        "docker load before Docker 23 cannot read them: use gzip or none for layers "
        "of images you docker load, or load the OCI layout with skopeo or podman"
    ]


def write_docker_archive(path: str | os.PathLike[str], images: Sequence[Image]) -> None:
    """Write `images` into one docker-archive at `path` (atomically).

    Configs and layer blobs shared between images are stored once.
    """
    with atomic_file(path, durable=False) as f:
        stream_docker_archive(f, images)


def stream_docker_archive(f: Sink, images: Sequence[Image]) -> None:
    """Write the docker-archive of `images` to `f` (streamLayeredImage: stdout, a pipe).

    The very bytes `write_docker_archive` stores, so a streamed image and a
    stored one have the same digest. A layer whose bytes are not here (a shallow base's)
    is one error before anything is written.
    """
    require_bytes([b for img in images for b in img.layers], "docker-archive")
    members: dict[str, Blob | bytes] = {}
    for img in images:
        members[f"{_hex(img.config_digest)}.json"] = img.config
        for blob in img.layers:
            members.setdefault(layer_member(blob), blob)
    members["manifest.json"] = json_bytes(archive_manifest(images))
    members["repositories"] = json_bytes(_repositories(images))
    mtime = max((img.mtime for img in images), default=1)
    tar = TarWriter(f, mtime=mtime)
    for name in sorted(members):
        item = members[name]
        if isinstance(item, bytes):
            tar.add_bytes(name, item)
        elif item.join is not None:
            tar.begin_file(name, item.size)
            for data in item.join.chunks():
                tar.write_data(data)
            tar.end_file(item.size)
        else:
            tar.add_file(name, item.path, item.size)
    tar.close()
