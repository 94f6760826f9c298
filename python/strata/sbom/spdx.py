"""An image's SBOM as an SPDX 2.3 JSON document.

The image is the described package (`SPDXRef-Image`, with its `pkg:oci` purl
and manifest digest); it CONTAINS each store path (`SPDXRef-StorePath-<hash>`,
the full path as `packageFileName`, the NAR sha256 as checksum) and each of
its own top layers (`SPDXRef-Layer-customisation`, `-run-as-root`), a package
whose files are listed (SPDX 2.3 requires a SHA1 for files, so they carry
both SHA1 and SHA256); a store path DEPENDS_ON each path it references; the image
is a DESCENDANT_OF each base image, and a base image that carries its own SPDX
document (an OCI referrer, kept by `pull_image`) is DESCRIBED_BY it: an
`externalDocumentRefs` entry names that document by its namespace and its
sha256. Keys are sorted and every list is in a
fixed order, so the bytes depend only on the facts.

Spec: https://spdx.github.io/spdx-spec/v2.3/
"""

from __future__ import annotations

import hashlib
from typing import Any

from strata.canonical import json_bytes
from strata.sbom.model import BaseImage, BaseSbom, ImageFacts, LayerFile, StorePathPackage, oci_purl

IMAGE_ID = "SPDXRef-Image"
NAMESPACE_BASE = "https://strata.invalid/spdx/"
"""Namespaces are not meant to resolve (SPDX 2.3, 6.5); `.invalid` says so (RFC 2606)."""


def store_path_id(p: StorePathPackage) -> str:
    return f"SPDXRef-StorePath-{p.hash_part}"


def base_id(b: BaseImage) -> str:
    return f"SPDXRef-Base-{b.digest.partition(':')[2]}"


def file_id(f: LayerFile) -> str:
    key = hashlib.sha256(f"{f.layer}:{f.path}".encode()).hexdigest()
    return f"SPDXRef-File-{key[:24]}"


def _image_package(facts: ImageFacts) -> dict[str, Any]:
    pkg: dict[str, Any] = {
        "SPDXID": IMAGE_ID,
        "checksums": [{"algorithm": "SHA256", "checksumValue": facts.digest_hex}],
        "copyrightText": "NOASSERTION",
        "downloadLocation": "NOASSERTION",
        "externalRefs": [
            {
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceLocator": oci_purl(facts.name, facts.manifest_digest),
                "referenceType": "purl",
            }
        ],
        "filesAnalyzed": False,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "name": facts.name,
        "primaryPackagePurpose": "CONTAINER",
        "versionInfo": facts.manifest_digest,
    }
    return pkg


def _store_path_package(p: StorePathPackage) -> dict[str, Any]:
    pkg: dict[str, Any] = {
        "SPDXID": store_path_id(p),
        "checksums": [{"algorithm": "SHA256", "checksumValue": p.nar_sha256}],
        "comment": f"NAR size {p.nar_size} bytes; checksum is the sha256 of the path's NAR",
        "copyrightText": "NOASSERTION",
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "name": p.name,
        "packageFileName": p.path,
    }
    if p.version:
        pkg["versionInfo"] = p.version
    if p.deriver:
        pkg["sourceInfo"] = f"built by the Nix derivation {p.deriver}"
    return pkg


def _base_package(b: BaseImage) -> dict[str, Any]:
    pkg: dict[str, Any] = {
        "SPDXID": base_id(b),
        "checksums": [{"algorithm": "SHA256", "checksumValue": b.digest.partition(":")[2]}],
        "copyrightText": "NOASSERTION",
        "downloadLocation": "NOASSERTION",
        "externalRefs": [
            {
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceLocator": oci_purl(b.name, b.digest),
                "referenceType": "purl",
            }
        ],
        "filesAnalyzed": False,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "name": b.name or "base image",
        "primaryPackagePurpose": "CONTAINER",
        "versionInfo": b.digest,
    }
    if b.sboms:
        pkg["comment"] = "carries its own SBOM: " + ", ".join(
            f"{_KIND[d.artifact_type]} {d.digest}" for d in b.sboms
        )
    return pkg


_KIND = {"application/spdx+json": "SPDX", "application/vnd.cyclonedx+json": "CycloneDX"}


def document_ref_id(d: BaseSbom) -> str:
    return f"DocumentRef-sha256-{d.hex}"


def _external_documents(facts: ImageFacts) -> list[tuple[BaseImage, BaseSbom]]:
    """The bases' SPDX documents that name themselves (SPDX 2.3, 6.6: an external
    document is named by its namespace and checked by a checksum of its bytes)."""
    return [
        (b, d)
        for b in facts.bases
        for d in b.sboms
        if d.artifact_type == "application/spdx+json" and d.uri
    ]


def layer_id(kind: str) -> str:
    return f"SPDXRef-Layer-{kind.replace('_', '-')}"


def _layer_package(kind: str, files: list[LayerFile]) -> dict[str, Any]:
    """One of the image's own top layers, with its files (SPDX 2.3, 7.9: the verification
    code is the SHA1 of the files' sorted SHA1s)."""
    code = hashlib.sha1("".join(sorted(f.sha1 for f in files)).encode())  # noqa: S324 - SPDX's
    return {
        "SPDXID": layer_id(kind),
        "copyrightText": "NOASSERTION",
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": True,
        "hasFiles": [file_id(f) for f in files],
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "name": f"{kind} layer",
        "packageVerificationCode": {"packageVerificationCodeValue": code.hexdigest()},
    }


def _file(f: LayerFile) -> dict[str, Any]:
    return {
        "SPDXID": file_id(f),
        "checksums": [
            {"algorithm": "SHA1", "checksumValue": f.sha1},
            {"algorithm": "SHA256", "checksumValue": f.sha256},
        ],
        "comment": f"placed by the image's {f.layer} layer ({f.size} bytes)",
        "copyrightText": "NOASSERTION",
        "fileName": "." + f.path,
        "licenseConcluded": "NOASSERTION",
    }


def spdx_document(facts: ImageFacts) -> dict[str, Any]:
    paths = sorted(facts.store_paths, key=lambda p: p.path)
    known = {p.path: p for p in paths}
    rels: list[dict[str, Any]] = [
        {
            "relatedSpdxElement": IMAGE_ID,
            "relationshipType": "DESCRIBES",
            "spdxElementId": "SPDXRef-DOCUMENT",
        }
    ]

    def rel(a: str, kind: str, b: str) -> None:
        rels.append({"relatedSpdxElement": b, "relationshipType": kind, "spdxElementId": a})

    for b in facts.bases:
        rel(IMAGE_ID, "DESCENDANT_OF", base_id(b))
    external = _external_documents(facts)
    for b, d in external:
        rel(base_id(b), "DESCRIBED_BY", f"{document_ref_id(d)}:SPDXRef-DOCUMENT")
    for p in paths:
        rel(IMAGE_ID, "CONTAINS", store_path_id(p))
    files = sorted(facts.files, key=lambda f: (f.path, f.layer))
    kinds = sorted({f.layer for f in files})
    for kind in kinds:
        rel(IMAGE_ID, "CONTAINS", layer_id(kind))
    for p in paths:
        for r in p.references:
            if r != p.path and r in known:
                rel(store_path_id(p), "DEPENDS_ON", store_path_id(known[r]))
    doc: dict[str, Any] = {
        "SPDXID": "SPDXRef-DOCUMENT",
        "creationInfo": {"created": facts.created, "creators": ["Tool: strata"]},
        "dataLicense": "CC0-1.0",
        "documentNamespace": f"{NAMESPACE_BASE}{facts.name}/{facts.derived_uuid('spdx')}",
        "name": f"{facts.name}@{facts.manifest_digest}",
        "packages": [_image_package(facts)]
        + [_base_package(b) for b in facts.bases]
        + [_store_path_package(p) for p in paths]
        + [_layer_package(k, [f for f in files if f.layer == k]) for k in kinds],
        "relationships": rels,
        "spdxVersion": "SPDX-2.3",
    }
    if files:
        doc["files"] = [_file(f) for f in files]
    if external:
        doc["externalDocumentRefs"] = [
            {
                "checksum": {"algorithm": "SHA256", "checksumValue": d.hex},
                "externalDocumentId": document_ref_id(d),
                "spdxDocument": d.uri,
            }
            for d in dict.fromkeys(d for _, d in external)
        ]
    return doc


def spdx_bytes(facts: ImageFacts) -> bytes:
    return json_bytes(spdx_document(facts)) + b"\n"
