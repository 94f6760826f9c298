"""Gathering an image's SBOM facts from what the build already wrote.

Store paths come from StorePath `info` files (each holds its path's closure
with references and NAR hashes), the image's digest and `created` from its
OCI layout (or, for a stream image that is never stored, from the image its
request describes), base images from their layout's index (with the SBOMs it
holds as OCI 1.1 referrers of them: a pulled base keeps those its registry
had), and the files of the image's own top layers from the layer tars themselves.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import posixpath
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from strata.canonical import parse_json, read_json
from strata.errors import UserError
from strata.oci.base import read_layout_blob
from strata.oci.compress import open_decompressed
from strata.oci.config import created_epoch
from strata.oci.oci_layout import CONTAINERD_NAME, PULLED_FROM
from strata.oci.reference import split_tag
from strata.sbom.model import BaseImage, BaseSbom, LayerFile, StorePathPackage, nar_sha256_hex
from strata.store.closure import PathInfo

SPDX_TYPE = "application/spdx+json"
CYCLONEDX_TYPE = "application/vnd.cyclonedx+json"
SBOM_TYPES = (SPDX_TYPE, CYCLONEDX_TYPE)


def created_utc(created: Any) -> str:
    """The config's `created` as `YYYY-MM-DDThh:mm:ssZ` (both formats' timestamp form)."""
    seconds = created_epoch(created) if isinstance(created, str) and created else 0
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def store_path_packages(
    infos: Iterable[dict[str, Any]], where: str, derivers: dict[str, str] | None = None
) -> tuple[list[StorePathPackage], list[str]]:
    """Every path of the closures the StorePath `info` records hold, and their roots."""
    table: dict[str, StorePathPackage] = {}
    roots: list[str] = []
    for info in infos:
        roots.append(str(info.get("path")))
        closure = info.get("closure")
        if not isinstance(closure, list):
            raise UserError(
                f"store path info has no closure list (got {str(info)[:80]}); "
                "pass the info file of a StorePath action",
                where=where,
            )
        for item in closure:
            p = PathInfo.from_json(item, where)
            try:
                nar = nar_sha256_hex(p.nar_hash)
            except ValueError:
                raise UserError(
                    f"store path {p.path} has a NAR hash that is not sha256 (got "
                    f"{p.nar_hash!r}); describe it with a sha256 NAR hash",
                    where=where,
                ) from None
            deriver = str(item.get("deriver", "")) if isinstance(item, dict) else ""
            refs = tuple(r for r in p.references if r != p.path)
            table[p.path] = StorePathPackage(p.path, refs, nar, p.nar_size, deriver)
    return [table[k] for k in sorted(table)], sorted(set(roots))


def layout_base(layout: Path, descriptor: dict[str, Any], name: str) -> BaseImage:
    """A base image read from its OCI layout: digest and repository name (for a pulled
    image, the registry, repository and digest it was pulled by), and the SBOMs the
    layout holds as referrers of it (`base_sboms`)."""
    where = str(layout)
    digest = str(descriptor.get("digest"))
    annotations = descriptor.get("annotations")
    annotations = annotations if isinstance(annotations, dict) else {}
    pulled = annotations.get(PULLED_FROM)
    if isinstance(pulled, str) and "@sha256:" in pulled:
        origin, _, pinned = pulled.rpartition("@")
        # A pulled layout holds only the referrers of the image it was pulled for (the
        # registry's manifest, which the layout's own may be a conversion of).
        return BaseImage(origin, pinned, base_sboms(layout, None, where))
    named = annotations.get(CONTAINERD_NAME)
    repo = split_tag(name)[0] if name else (split_tag(named)[0] if isinstance(named, str) else "")
    return BaseImage(repo, digest, base_sboms(layout, digest, where))


_FIX = "the layout is damaged: pull or build it again"


def base_sboms(layout: Path, subject: str | None, where: str) -> tuple[BaseSbom, ...]:
    """The SPDX and CycloneDX documents an OCI layout's index lists as referrers of
    `subject` (of any subject, for None), each checked against its digest and named as
    its format names a document (SPDX `documentNamespace`, CycloneDX BOM-Link
    `urn:cdx:<serial>/<version>`); sorted by digest, so the order is the layout's bytes'."""
    index = read_json(layout / "index.json", "the OCI layout's index.json", _FIX, where)
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(manifests, list):
        raise UserError(
            f"index.json has no manifests list (got {str(index)[:60]}); {_FIX}", where=where
        )
    found: dict[str, BaseSbom] = {}
    for desc in manifests:
        if not isinstance(desc, dict) or desc.get("artifactType") not in SBOM_TYPES:
            continue
        what = f"referrer manifest {desc.get('digest')}"
        manifest = parse_json(read_layout_blob(layout, desc, where), what, _FIX, where)
        manifest = manifest if isinstance(manifest, dict) else {}
        ref = manifest.get("subject")
        layers = manifest.get("layers")
        if not isinstance(ref, dict) or not isinstance(layers, list) or not layers:
            raise UserError(f"{what} has no subject or no layers; {_FIX}", where=where)
        if subject is not None and ref.get("digest") != subject:
            continue
        data = read_layout_blob(layout, layers[0], where)
        doc = parse_json(data, f"SBOM document {layers[0].get('digest')}", _FIX, where)
        kind = str(desc["artifactType"])
        uri = _document_uri(kind, doc if isinstance(doc, dict) else {})
        found[str(layers[0]["digest"])] = BaseSbom(kind, str(layers[0]["digest"]), uri)
    return tuple(found[k] for k in sorted(found))


def _document_uri(kind: str, doc: dict[str, Any]) -> str:
    """How the document names itself, "" when it does not (then only its digest names it)."""
    if kind == SPDX_TYPE:
        ns = doc.get("documentNamespace")
        return ns if isinstance(ns, str) and "://" in ns and "#" not in ns else ""
    serial, version = doc.get("serialNumber"), doc.get("version")
    if isinstance(serial, str) and serial.startswith("urn:uuid:") and isinstance(version, int):
        return f"urn:cdx:{serial[len('urn:uuid:') :]}/{version}"
    return ""


def layer_files(blob: Path, layer: str) -> list[LayerFile]:
    """The regular files of one of the image's own layers (whiteouts left out)."""
    out: dict[str, LayerFile] = {}
    with open_decompressed(blob) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        for member in tar:
            if not member.isfile():
                continue
            path = "/" + posixpath.normpath(member.name.lstrip("/")).lstrip("/")
            if posixpath.basename(path).startswith(".wh."):
                continue
            f = tar.extractfile(member)
            sha256, sha1 = hashlib.sha256(), hashlib.sha1()  # noqa: S324 - SPDX 2.3 asks for SHA1
            while f is not None and (chunk := f.read(1 << 20)):
                sha256.update(chunk)
                sha1.update(chunk)
            out[path] = LayerFile(path, sha256.hexdigest(), sha1.hexdigest(), member.size, layer)
    return [out[k] for k in sorted(out)]
