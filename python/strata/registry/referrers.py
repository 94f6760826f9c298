"""Pushing an image's referrers (its SBOMs): the referrers API, else the tag schema.

A referrer is a manifest with a `subject`. It is pushed by digest after its
subject, blobs first, as any manifest. A registry that implements OCI
distribution 1.1's referrers API says so by answering the PUT with an
`OCI-Subject` header; one that does not (distribution 2.8, Debian's
docker-registry) gets the tag schema instead: the image index tagged
`sha256-<hex of the subject>` lists the subject's referrers, so we read it,
add ours, and put it back only when it changed. A second push of the same
referrers therefore uploads nothing.

Spec: https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pushing-manifests-with-subject
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.canonical import read_json
from strata.errors import UserError
from strata.oci.manifest import OCI_INDEX
from strata.registry.client import RegistryClient
from strata.registry.endpoint import push_scope
from strata.registry.push import PushCounters, upload_blob
from strata.registry.push_source import Node, layout_node
from strata.sbom.referrers import fallback_index, fallback_tag


@dataclass(frozen=True)
class Referrer:
    descriptor: dict[str, Any]
    """Its entry in the layout's index (digest, size, mediaType, artifactType)."""
    node: Node
    subject: str


@dataclass(frozen=True)
class ReferrersResult:
    subject: str
    pushed: tuple[str, ...]
    """Digests of the referrers pushed."""
    fallback_tag: str
    """The tag schema's tag written or found current ("" when the registry has the API)."""
    fallback_changed: bool


def layout_referrers(layout: Path, where: str) -> list[Referrer]:
    """The entries of an OCI layout's index that are referrers (their manifest has a
    `subject`), in the order the index lists them."""
    index = read_json(layout / "index.json", "the layout's index.json", "give an OCI layout", where)
    manifests = index.get("manifests") if isinstance(index, dict) else None
    out = []
    for desc in manifests if isinstance(manifests, list) else []:
        if not isinstance(desc, dict) or not desc.get("artifactType"):
            continue
        node = layout_node(layout, desc, where)
        # layout_node parsed the manifest: it is a JSON object
        subject = json.loads(node.data).get("subject")
        if isinstance(subject, dict) and isinstance(subject.get("digest"), str):
            out.append(Referrer(desc, node, subject["digest"]))
    return out


def push_referrers(
    client: RegistryClient,
    repository: str,
    referrers: list[Referrer],
    counters: PushCounters,
    *,
    where: str,
) -> list[ReferrersResult]:
    """Push `referrers` (their subjects already pushed) and make them findable, one
    result per subject."""
    out = []
    for subject in sorted({r.subject for r in referrers}):
        mine = [r for r in referrers if r.subject == subject]
        out.append(_push_for(client, repository, subject, mine, counters, where))
    return out


def _push_for(
    client: RegistryClient,
    repository: str,
    subject: str,
    mine: list[Referrer],
    counters: PushCounters,
    where: str,
) -> ReferrersResult:
    api = True
    seen: set[str] = set()
    for r in mine:
        for blob in r.node.blobs:
            if blob.digest not in seen:
                seen.add(blob.digest)
                upload_blob(client, repository, blob, counters, where=where)
        resp = client.request(
            "PUT",
            f"/v2/{repository}/manifests/{r.node.digest}",
            scopes=(push_scope(repository),),
            headers={"Content-Type": r.node.media_type},
            body=r.node.data,
            where=where,
            ok=(200, 201, 202),
        )
        counters.manifests_pushed += 1
        api = api and resp.header("oci-subject") == subject
    if api:
        return ReferrersResult(subject, tuple(r.node.digest for r in mine), "", False)
    tag = fallback_tag(subject)
    existing = _get_index(client, repository, tag, where)
    data = fallback_index(existing, [_entry(r.descriptor) for r in mine])
    changed = existing is None or json.loads(data) != existing
    if changed:
        client.request(
            "PUT",
            f"/v2/{repository}/manifests/{tag}",
            scopes=(push_scope(repository),),
            headers={"Content-Type": OCI_INDEX},
            body=data,
            where=where,
            ok=(200, 201, 202),
        )
        counters.manifests_pushed += 1
    return ReferrersResult(subject, tuple(r.node.digest for r in mine), tag, changed)


def _entry(desc: dict[str, Any]) -> dict[str, Any]:
    keep = ("annotations", "artifactType", "digest", "mediaType", "size")
    return {k: desc[k] for k in keep if k in desc}


def _get_index(
    client: RegistryClient, repository: str, tag: str, where: str
) -> dict[str, Any] | None:
    resp = client.request(
        "GET",
        f"/v2/{repository}/manifests/{tag}",
        scopes=(push_scope(repository),),
        headers={"Accept": OCI_INDEX},
        where=where,
        ok=(200, 404),
    )
    if resp.status == 404:
        return None
    try:
        index = json.loads(resp.data)
    except ValueError:
        index = None
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise UserError(
            f"the referrers tag {tag} holds no image index (got {resp.data[:60]!r}); "
            "delete that tag, then push again",
            where=where,
        )
    return index
