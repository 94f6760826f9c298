"""A shallow base's layers in a layout: taken from their descriptors, or from fetched blobs.

A `pull_image(shallow = True)` layout lacks its layer blobs and lists them in
`remote-blobs.json` (strata.oci.remote_blobs). Reading such a base
(strata.oci.base) takes each missing layer from its manifest descriptor
(digest, size, media type) and the config's diff_id, unread; an action that
writes layer bytes passes the directories a `BaseBlobs` action filled
(`sha256/<hex>`), whose blobs are checked here as a full base's layers are:
digest and size, diff_id once decompressed, and compression against the
media type of the layout's manifest (which the pull took from the layer's
first bytes, strata.registry.pull).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from strata.errors import UserError
from strata.oci.compress import digest_stream, media_type_compressor
from strata.oci.image import BaseImage, Blob
from strata.oci.reader import blob_path, check_diff_id, digest_mismatch
from strata.oci.remote_blobs import FILE, Remote


def remote_layer(
    layout: Path, desc: dict[str, Any], diff_id: str, remote: dict[str, Remote], where: str
) -> Blob | None:
    """The layer `desc` names, if the layout lacks it and says where it is; else None."""
    digest = desc.get("digest")
    path = blob_path(layout, digest)
    if not isinstance(digest, str) or digest not in remote or path is None or path.exists():
        return None
    source = remote[digest]
    media_type = str(desc.get("mediaType", ""))
    compressor = media_type_compressor(media_type)
    if desc.get("size") != source.size or compressor is None:
        raise UserError(
            f"layer {digest} of a shallow base has a size or media type strata cannot use "
            f"(got {desc.get('size')!r}, {media_type!r}; {FILE} says {source.size}); "
            "pull the base again",
            where=where,
        )
    return Blob(path, digest, source.size, diff_id, compressor, remote=source)


def with_fetched(base: BaseImage, blob_dirs: Sequence[Path], where: str) -> BaseImage:
    """`base` with each shallow layer found in `blob_dirs` (`sha256/<hex>`) read from
    there, checked as a full base's layers are: digest, and diff_id once decompressed."""
    layers = list(base.layers)
    for i, blob in enumerate(layers):
        hexpart = blob.digest.partition(":")[2]
        found = [d / "sha256" / hexpart for d in blob_dirs if (d / "sha256" / hexpart).is_file()]
        if blob.remote is None or not found:
            continue
        name = f"blobs/sha256/{hexpart}"
        with open(found[0], "rb") as f:
            got = digest_stream(f, f"{where}: layer {i} ({name})")
        if got.digest != blob.digest or got.size != blob.size:
            raise digest_mismatch(f"fetched blob {hexpart}", blob.digest, got.digest, where)
        check_diff_id(where, i, name, blob.diff_id, got.diff_id)
        if got.compressor != blob.compressor:
            raise UserError(
                f"layer {i} ({name}) is {got.compressor} but its media type says "
                f"{blob.compressor} (got a layer from {blob.remote} unlike the one the pull "
                "read); pull the base again",
                where=where,
            )
        layers[i] = Blob(found[0], got.digest, got.size, blob.diff_id, got.compressor)
    return dataclasses.replace(base, layers=tuple(layers))
