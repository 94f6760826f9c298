"""SBOMs as OCI 1.1 referrers: artifact manifests whose `subject` is the image.

Each document is one artifact manifest: `artifactType` the document's media
type, the empty config (`application/vnd.oci.empty.v1+json`, `{}`), the
document as its one layer, `subject` the image's manifest descriptor. The
layout written here holds the image (its blobs linked, not copied) and these
manifests; its `index.json` lists the image's entries as the image's own
layout lists them, then each referrer with its `artifactType`.

Registries without the referrers API (OCI distribution before 1.1, e.g.
distribution 2.8) find referrers by the tag schema: an image index tagged
`sha256-<hex of the subject digest>` listing them (`fallback_tag`,
`fallback_index`).

Specs: https://github.com/opencontainers/image-spec/blob/v1.1.0/manifest.md
(guidelines for artifact usage), https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#referrers-tag-schema
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.canonical import json_bytes, read_json
from strata.errors import UserError
from strata.fsutil import atomic_dir, share_output
from strata.oci.digest import sha256_bytes
from strata.oci.manifest import OCI_INDEX, OCI_MANIFEST
from strata.oci.oci_layout import put_blob
from strata.oci.remote_blobs import read_remote_blobs, write_remote_blobs

EMPTY_CONFIG_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"
TITLE = "org.opencontainers.image.title"
CREATED = "org.opencontainers.image.created"


@dataclass(frozen=True)
class Document:
    artifact_type: str
    data: bytes
    title: str
    """File name (`app.spdx.json`), the layer's `org.opencontainers.image.title`."""


def artifact_manifest(doc: Document, subject: dict[str, Any], created: str) -> bytes:
    """The artifact manifest of `doc` referring to `subject` (a manifest descriptor)."""
    return json_bytes(
        {
            "annotations": {CREATED: created},
            "artifactType": doc.artifact_type,
            "config": {
                "data": "e30=",
                "digest": sha256_bytes(EMPTY_CONFIG),
                "mediaType": EMPTY_CONFIG_TYPE,
                "size": len(EMPTY_CONFIG),
            },
            "layers": [
                {
                    "annotations": {TITLE: doc.title},
                    "digest": sha256_bytes(doc.data),
                    "mediaType": doc.artifact_type,
                    "size": len(doc.data),
                }
            ],
            "mediaType": OCI_MANIFEST,
            "schemaVersion": 2,
            "subject": {
                "digest": subject["digest"],
                "mediaType": subject.get("mediaType", OCI_MANIFEST),
                "size": subject["size"],
            },
        }
    )


def referrer_descriptor(manifest: bytes) -> dict[str, Any]:
    """A referrer's entry in an index (its `artifactType` and annotations copied up)."""
    obj = json.loads(manifest)
    out = {
        "artifactType": obj["artifactType"],
        "digest": sha256_bytes(manifest),
        "mediaType": OCI_MANIFEST,
        "size": len(manifest),
    }
    if obj.get("annotations"):
        out["annotations"] = obj["annotations"]
    return out


def write_referrers_layout(
    image_layout: Path,
    out: str | os.PathLike[str],
    subject: dict[str, Any],
    docs: Sequence[Document],
    created: str,
) -> None:
    """Write `out`: the image of `image_layout` plus one artifact manifest per document."""
    index = read_json(
        image_layout / "index.json",
        "the image's OCI layout index",
        "the layout is damaged: build the image again",
        str(image_layout),
    )
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise UserError(
            f"index.json has no manifests list (got {str(index)[:60]}); the layout is "
            "damaged: build the image again",
            where=str(image_layout),
        )
    with atomic_dir(out) as tmp:
        blobs = tmp / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        for blob in sorted((image_layout / "blobs" / "sha256").iterdir()):
            share_output(blob, blobs / blob.name)

        def put(data: bytes) -> str:
            return put_blob(blobs, data)

        put(EMPTY_CONFIG)
        entries = list(index.get("manifests", []))
        for doc in docs:
            put(doc.data)
            manifest = artifact_manifest(doc, subject, created)
            put(manifest)
            entries.append(referrer_descriptor(manifest))
        index["manifests"] = entries
        (tmp / "index.json").write_bytes(json_bytes(index))
        (tmp / "oci-layout").write_bytes((image_layout / "oci-layout").read_bytes())
        # The image's base blobs it lacks (a shallow base) are lacking here too.
        write_remote_blobs(tmp, read_remote_blobs(image_layout, str(image_layout)))
        for p in sorted(tmp.rglob("*")):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)


def fallback_tag(digest: str) -> str:
    """The referrers tag schema's tag for `digest`: `<alg>-<hex>`."""
    alg, _, hexpart = digest.partition(":")
    return f"{alg}-{hexpart}"


def fallback_index(existing: dict[str, Any] | None, referrers: Sequence[dict[str, Any]]) -> bytes:
    """The tag schema's index: what `existing` lists, plus `referrers` not among them."""
    entries = list((existing or {}).get("manifests", []))
    known = {e.get("digest") for e in entries if isinstance(e, dict)}
    entries += [r for r in referrers if r["digest"] not in known]
    return json_bytes({"manifests": entries, "mediaType": OCI_INDEX, "schemaVersion": 2})
