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

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from urllib3.exceptions import HTTPError

from strata.errors import UserError
from strata.oci.compress import detect_compressor
from strata.oci.digest import sha256_bytes, split_digest
from strata.oci.image import Blob, Image
from strata.oci.manifest import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST
from strata.oci.oci_layout import PULLED_FROM, write_oci_layout
from strata.oci.platform import Platform
from strata.oci.reference import ImageRef
from strata.oci.remote_blobs import Remote
from strata.registry.blobstore import BlobMismatch, BlobStore
from strata.registry.client import RegistryClient, close
from strata.registry.endpoint import pull_scope

INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
IMAGE_MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
_MAX_MANIFEST = 4 << 20


@dataclass(frozen=True)
class Manifest:
    """A manifest or index exactly as the registry served it."""

    data: bytes
    media_type: str
    digest: str
    kind: str = "manifest"
    """What the bytes are, for messages ("manifest", or "config" for an image config)."""

    def json(self, where: str) -> dict[str, Any]:
        """The manifest or index as JSON, checked to have the shape its type needs."""
        fix = (
            "the registry did not serve an image manifest: check the repository and tag"
            if self.kind == "manifest"
            else "the image is malformed: pull another image or digest"
        )
        try:
            obj = json.loads(self.data)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise UserError(
                f"{self.kind} {self.digest} is not JSON (got {e!s:.80}); {fix}", where=where
            ) from None
        if not isinstance(obj, dict):
            raise UserError(
                f"{self.kind} {self.digest} is not a JSON object (got {type(obj).__name__}); {fix}",
                where=where,
            )
        if self.kind != "manifest":
            return obj
        if self.media_type in INDEX_TYPES:
            missing = [] if isinstance(obj.get("manifests"), list) else ["manifests"]
        else:
            missing = [
                k for k, t in (("config", dict), ("layers", list)) if not isinstance(obj.get(k), t)
            ]
        if missing:
            raise UserError(
                f"manifest {self.digest} ({self.media_type}) lacks {' and '.join(missing)}; {fix}",
                where=where,
            )
        return obj


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


def is_digest(reference: str) -> bool:
    try:
        split_digest(reference)
    except ValueError:
        return False
    return True


def get_manifest(client: RegistryClient, repository: str, reference: str, where: str) -> Manifest:
    """GET a manifest by tag or digest; a digest reference is checked against the bytes."""
    resp = client.request(
        "GET",
        f"/v2/{repository}/manifests/{reference}",
        scopes=(pull_scope(repository),),
        where=where,
    )
    data = resp.data
    if len(data) > _MAX_MANIFEST:
        raise UserError(
            f"manifest is larger than 4 MiB (got {len(data)} bytes for {repository}:{reference})"
            "; this is not an image manifest",
            where=where,
        )
    digest = sha256_bytes(data)
    if is_digest(reference) and digest != reference:
        raise BlobMismatch(
            f"manifest digest mismatch (got {digest}, expected {reference}) for {repository}; "
            "the registry served different content than the pinned digest",
            where=where,
        )
    media_type = resp.header("content-type").split(";")[0].strip()
    if media_type not in (*INDEX_TYPES, *IMAGE_MANIFEST_TYPES):
        with contextlib.suppress(ValueError, AttributeError):
            media_type = str(json.loads(data).get("mediaType") or media_type)
    if media_type not in (*INDEX_TYPES, *IMAGE_MANIFEST_TYPES):
        raise UserError(
            f"unsupported manifest type (got {media_type!r} for {repository}:{reference}); "
            "strata pulls OCI and Docker v2 schema 2 images and indexes",
            where=where,
        )
    manifest = Manifest(data, media_type, digest)
    manifest.json(where)  # nothing that is not a manifest is pinned or pulled
    return manifest


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


def fetch_blob(
    client: RegistryClient,
    store: BlobStore,
    repository: str,
    digest: str,
    size: int,
    where: str,
) -> bool:
    """Make sure `digest` is in `store`; True if it was downloaded now (False: reused)."""
    if store.has(digest, size):
        return False
    attempts = max(1, client.options.retries + 1)
    last = ""
    for attempt in range(attempts):
        if attempt:
            client.options.sleep(client.options.backoff * (2 ** (attempt - 1)))
        resp = client.request(
            "GET",
            f"/v2/{repository}/blobs/{digest}",
            scopes=(pull_scope(repository),),
            where=where,
            stream=True,
        )
        try:
            store.put_stream(digest, size, client.iter_body(resp, f"blob {digest}", where), where)
            return True
        except HTTPError as e:
            last = str(getattr(e, "reason", None) or e)[:160]
        finally:
            close(resp)
    raise UserError(
        f"connection lost while fetching blob {digest} from {client.registry} after "
        f"{attempts} attempts (got {last}); nothing was stored: check the network and "
        "pull again",
        where=where,
    )


def checked_descriptor(obj: Any, what: str, where: str) -> tuple[str, int]:
    """(digest, size) of a manifest's descriptor, checked to name a sha256 blob."""
    if not isinstance(obj, dict) or not is_digest(str(obj.get("digest", ""))):
        raise UserError(f"manifest {what} has no sha256 digest (got {obj!r:.80})", where=where)
    size = obj.get("size")
    if not isinstance(size, int) or size < 0:
        raise UserError(f"manifest {what} has no size (got {size!r})", where=where)
    return str(obj["digest"]), size


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
    # Imported here: pull_referrers uses this module's manifest and blob fetching.
    from strata.registry.pull_referrers import pull_sbom_referrers

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
