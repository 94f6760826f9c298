"""Pull one image by digest into an OCI image layout, through a shared blob store.

A tag is resolved to the digest of what it names today; the pinned digest is
what makes a pull reproducible, so callers warn when given only a tag. When the
digest names an index (OCI index or Docker manifest list), one manifest is
chosen by os/architecture/variant. Every manifest is checked against the digest
it was fetched by; every blob against its descriptor while it streams into the
`BlobStore` (`blobstore.py`), which is keyed by digest, so layers shared
between images are fetched once. A cut connection restarts that blob (bounded,
with backoff). The result is written with `strata.oci.oci_layout`: the same
config and layer bytes under an OCI manifest, which every image rule reads as
`from_image` without repacking a layer, and the image's SBOMs where the
registry holds them as OCI 1.1 referrers (`pull_referrers.py`), listed in the
layout's index beside it.

A shallow pull (`pull_image(shallow = True)`) fetches the manifest (and
index) and the config only: the layout lacks the layer blobs and lists each,
with this registry and repository, in `remote-blobs.json`
(strata.oci.remote_blobs). Its manifest, config and `index.json` are what a
full pull writes: the compression of each layer is read from its first
bytes (a ranged GET of 4 bytes), as a full pull reads it, not from the media
type the registry gives.

Spec: https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-manifests
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from urllib3.exceptions import HTTPError

from strata.errors import UserError
from strata.oci.compress import detect_compressor
from strata.oci.digest import sha256_bytes
from strata.oci.image import Blob, Image
from strata.oci.manifest import OCI_MANIFEST
from strata.oci.oci_layout import PULLED_FROM, write_oci_layout
from strata.oci.platform import Platform
from strata.oci.reference import ImageRef
from strata.oci.remote_blobs import Remote
from strata.registry.blobstore import BlobStore
from strata.registry.client import RegistryClient, close
from strata.registry.endpoint import pull_scope
from strata.registry.fetch import (
    IMAGE_MANIFEST_TYPES,
    INDEX_TYPES,
    Manifest,
    checked_descriptor,
    fetch_blob,
    get_manifest,
)
from strata.registry.pull_referrers import pull_sbom_referrers


@dataclass(frozen=True)
class PullResult:
    digest: str
    """The digest the reference resolved to (the index's, for a multi-platform image)."""
    manifest_digest: str
    """The chosen image manifest as the registry serves it."""
    layout_manifest_digest: str
    """The OCI manifest written into the layout (equal to manifest_digest for OCI images)."""
    config_digest: str
    platform: Platform
    blobs_fetched: int
    bytes_fetched: int
    blobs_reused: int
    sboms: int = 0
    """SBOM referrers of the image the registry had, kept in the layout (pull_referrers)."""


def platforms_of(index: dict[str, Any]) -> list[Platform]:
    return [
        Platform.from_json(d.get("platform") or {})
        for d in index.get("manifests") or []
        if isinstance(d, dict)
    ]


def choose_manifest(index: dict[str, Any], wanted: Platform, where: str) -> dict[str, Any]:
    """The index entry for `wanted`; the error lists every platform the index has."""
    entries = [d for d in index.get("manifests") or [] if isinstance(d, dict)]
    for desc in entries:
        if desc.get("mediaType", OCI_MANIFEST) not in IMAGE_MANIFEST_TYPES:
            continue
        if wanted.matches(Platform.from_json(desc.get("platform") or {})):
            return desc
    available = ", ".join(str(p) for p in platforms_of(index)) or "none"
    raise UserError(
        f"platform {wanted} is not in the image index (got: {available}); "
        "set os/architecture/variant to one of those",
        where=where,
    )


_HEAD = 4
"""Bytes of a layer's start that tell its compression (strata.oci.compress.detect_compressor)."""


def blob_head(client: RegistryClient, repository: str, digest: str, size: int, where: str) -> bytes:
    """The first bytes of a blob, by a ranged GET; a registry that ignores `Range` is cut off
    after them, so at most a few kilobytes more cross the network."""
    if size == 0:
        return b""
    resp = client.request(
        "GET",
        f"/v2/{repository}/blobs/{digest}",
        scopes=(pull_scope(repository),),
        headers={"Range": f"bytes=0-{min(size, _HEAD) - 1}"},
        where=where,
        stream=True,
        ok=(200, 206),
    )
    head = b""
    try:
        for chunk in client.iter_body(resp, f"blob {digest}", where):
            head += chunk
            if len(head) >= _HEAD:
                break
    except HTTPError as e:
        raise UserError(
            f"connection lost while reading the start of blob {digest} from {client.registry} "
            f"(got {str(getattr(e, 'reason', None) or e)[:160]}); check the network and pull again",
            where=where,
        ) from None
    finally:
        close(resp)
    return head[:_HEAD]


def _remote_blob(
    client: RegistryClient, remote: Remote, digest: str, path: Path, diff_id: str, where: str
) -> Blob:
    """A layer left in the registry: what the layout's manifest needs. Its compression is
    read from its first bytes, as a full pull reads it, so both write the same manifest
    even where the registry's media type says otherwise."""
    head = blob_head(client, remote.repository, digest, remote.size, where)
    return Blob(path, digest, remote.size, diff_id, detect_compressor(head), remote=remote)


def pull(
    client: RegistryClient,
    store: BlobStore,
    repository: str,
    reference: str,
    platform: Platform,
    layout: str | os.PathLike[str],
    ref: ImageRef | None,
    where: str,
    *,
    shallow: bool = False,
) -> PullResult:
    """Fetch `repository@reference` for `platform` and write it as an OCI layout at `layout`
    (`shallow`: without its layer blobs, which the layout lists as remote)."""
    top = get_manifest(client, repository, reference, where)
    chosen = top
    if top.media_type in INDEX_TYPES:
        desc = choose_manifest(top.json(where), platform, where)
        child_digest, _ = checked_descriptor(desc, "index entry", where)
        chosen = get_manifest(client, repository, child_digest, where)
        if chosen.media_type not in IMAGE_MANIFEST_TYPES:
            raise UserError(
                f"index entry is not an image manifest (got {chosen.media_type})", where=where
            )
    manifest = chosen.json(where)
    config_digest, config_size = checked_descriptor(manifest.get("config"), "config", where)
    layers = manifest.get("layers")
    if not isinstance(layers, list):
        raise UserError(f"manifest {chosen.digest} has no layers list", where=where)
    wanted = [(config_digest, config_size)] + [
        checked_descriptor(d, "layer", where) for d in layers
    ]
    fetched = reused = fetched_bytes = 0
    for digest, size in dict.fromkeys(wanted[:1] if shallow else wanted):
        if fetch_blob(client, store, repository, digest, size, where):
            fetched += 1
            fetched_bytes += size
        else:
            reused += 1
    config_bytes = store.path(config_digest).read_bytes()
    config = Manifest(config_bytes, "", config_digest, kind="config").json(where)
    found = Platform.from_json(config)
    if not platform.matches(found):
        raise UserError(
            f"image platform does not match (got {found}, expected {platform}) for "
            f"{repository}@{chosen.digest}; set os/architecture/variant to {found}",
            where=where,
        )
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or len(diff_ids) != len(layers):
        count = len(diff_ids) if isinstance(diff_ids, list) else "no list of"
        raise UserError(
            f"manifest lists {len(layers)} layers but the config has {count} diff_ids "
            f"(got {chosen.digest}); the image is inconsistent",
            where=where,
        )
    blobs = []
    for (digest, size), diff_id in zip(wanted[1:], diff_ids, strict=True):
        path = store.path(digest)
        if shallow:
            remote = Remote(str(client.registry), repository, size)
            blobs.append(_remote_blob(client, remote, digest, Path(path), str(diff_id), where))
            continue
        with open(path, "rb") as f:
            head = f.read(4)
        blobs.append(Blob(Path(path), digest, size, str(diff_id), detect_compressor(head)))
    image = Image(config_bytes, tuple(blobs), ref, platform=found)
    origin = f"{client.registry.host}/{repository}@{top.digest}"
    sboms = pull_sbom_referrers(client, store, repository, [chosen.digest, top.digest], where)
    write_oci_layout(layout, [image], {PULLED_FROM: origin}, artifacts=sboms.artifacts)
    return PullResult(
        digest=top.digest,
        manifest_digest=chosen.digest,
        layout_manifest_digest=sha256_bytes(image.manifest(docker=False)),
        config_digest=config_digest,
        platform=found,
        blobs_fetched=fetched + sboms.blobs_fetched,
        bytes_fetched=fetched_bytes + sboms.bytes_fetched,
        blobs_reused=reused,
        sboms=len(sboms.artifacts),
    )
