"""Reading from a registry what a pull needs: a manifest or index as it was served
(checked against the digest it was asked by and to have its type's shape), and a
blob streamed into the shared `BlobStore`, checked as it comes and retried when a
connection is cut. `pull.py` (one image) and `pull_referrers.py` (its SBOMs) both
read through here.

Spec: https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-manifests
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

from urllib3.exceptions import HTTPError

from strata.errors import UserError
from strata.oci.digest import sha256_bytes, split_digest
from strata.oci.manifest import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST
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
