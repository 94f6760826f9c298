"""Pulling the SBOMs a registry holds as OCI 1.1 referrers of an image.

A pulled base keeps "its own SBOM where it carries one": the artifact
manifests whose `subject` is the pulled image and whose `artifactType` is SPDX
or CycloneDX, with their blobs. The referrers API (`GET
/v2/<repo>/referrers/<digest>`) lists them as an image index; a registry
without it (distribution 2.8, Debian's docker-registry) answers 404, and then
the tag schema's index, tagged `sha256-<hex of the digest>` (what strata's own
push writes there), is read instead. A registry with neither (whatever it
answers) has none for the image, and the base simply carries no SBOM: never an
error; nor is a listed referrer the registry then does not serve.

What is kept is checked as any pull is: each manifest against the digest it
was fetched by, each blob against its descriptor while it streams into the
blob store; wrong bytes under a digest fail the pull, as for any blob. A
listing entry that is not an SBOM, or whose manifest names another subject, is
left out. They are returned sorted by digest, so the
layout they go into does not depend on the order a registry lists them in.

Spec: https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#listing-referrers
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.errors import UserError
from strata.oci.digest import sha256_bytes
from strata.oci.manifest import OCI_INDEX, OCI_MANIFEST
from strata.oci.oci_layout import Artifact
from strata.registry.blobstore import BlobMismatch, BlobStore
from strata.registry.client import RegistryClient
from strata.registry.endpoint import pull_scope
from strata.registry.fetch import checked_descriptor, fetch_blob, get_manifest, is_digest
from strata.sbom.facts import SBOM_TYPES
from strata.sbom.referrers import EMPTY_CONFIG, fallback_tag, referrer_descriptor


@dataclass(frozen=True)
class ReferrersFetched:
    artifacts: tuple[Artifact, ...]
    blobs_fetched: int
    bytes_fetched: int


def _index_entries(data: bytes) -> list[dict[str, Any]] | None:
    """The entries of an image index, or None when `data` is not one."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return None
    manifests = obj.get("manifests") if isinstance(obj, dict) else None
    if not isinstance(manifests, list):
        return None
    return [e for e in manifests if isinstance(e, dict)]


def _listing(
    client: RegistryClient, repository: str, subject: str, where: str
) -> list[dict[str, Any]]:
    """The referrers of `subject` the registry lists: by the API, else the tag schema;
    none when it answers neither (whatever the status: an SBOM is never a reason for a
    base image's pull to fail)."""
    try:
        return _ask(client, repository, subject, where)
    except BlobMismatch:
        raise
    except UserError:
        return []


def _ask(client: RegistryClient, repository: str, subject: str, where: str) -> list[dict[str, Any]]:
    api = f"/v2/{repository}/referrers/{subject}"
    tag = f"/v2/{repository}/manifests/{fallback_tag(subject)}"
    for path, ok in ((api, (200, 400, 404, 405)), (tag, (200, 400, 404))):
        resp = client.request(
            "GET",
            path,
            scopes=(pull_scope(repository),),
            headers={"Accept": OCI_INDEX},
            where=where,
            ok=ok,
        )
        if resp.status == 200 and (entries := _index_entries(resp.data)) is not None:
            return entries
    return []


def pull_sbom_referrers(
    client: RegistryClient,
    store: BlobStore,
    repository: str,
    subjects: list[str],
    where: str,
) -> ReferrersFetched:
    """The SPDX and CycloneDX referrers of each of `subjects`, fetched into `store`."""
    found: dict[str, Artifact] = {}
    fetched = fetched_bytes = 0
    for subject in dict.fromkeys(subjects):
        for entry in _listing(client, repository, subject, where):
            digest = str(entry.get("digest", ""))
            if entry.get("artifactType") not in SBOM_TYPES or not is_digest(digest):
                continue
            if digest in found:
                continue
            try:
                got = _fetch(client, store, repository, subject, digest, where)
            except BlobMismatch:
                raise  # wrong bytes under a digest: as for any blob of the pull
            except UserError:
                continue  # listed, but not served (a stale tag index): not kept
            if got is not None:
                found[digest] = got[0]
                fetched += got[1]
                fetched_bytes += got[2]
    return ReferrersFetched(tuple(found[k] for k in sorted(found)), fetched, fetched_bytes)


def _fetch(
    client: RegistryClient,
    store: BlobStore,
    repository: str,
    subject: str,
    digest: str,
    where: str,
) -> tuple[Artifact, int, int] | None:
    """One listed referrer, if it is an SBOM of `subject`: (it, blobs fetched, bytes)."""
    manifest = get_manifest(client, repository, digest, where)
    if manifest.media_type != OCI_MANIFEST:
        return None
    obj = manifest.json(where)
    ref = obj.get("subject")
    if not isinstance(ref, dict) or ref.get("digest") != subject:
        return None
    if obj.get("artifactType") not in SBOM_TYPES:
        return None
    blobs: list[tuple[str, Path]] = []
    fetched = fetched_bytes = 0
    wanted = [checked_descriptor(obj.get("config"), "config", where)]
    wanted += [checked_descriptor(d, "layer", where) for d in obj["layers"]]
    for blob_digest, size in wanted:
        if blob_digest == sha256_bytes(EMPTY_CONFIG) and not store.has(blob_digest, size):
            # The empty config is often only inlined (`data`), never uploaded.
            store.put_stream(blob_digest, size, iter([EMPTY_CONFIG]), where)
        elif fetch_blob(client, store, repository, blob_digest, size, where):
            fetched += 1
            fetched_bytes += size
        blobs.append((blob_digest, Path(store.path(blob_digest))))
    artifact = Artifact(referrer_descriptor(manifest.data), manifest.data, tuple(blobs))
    return artifact, fetched, fetched_bytes
