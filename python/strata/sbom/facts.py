"""Gathering an image's SBOM facts from what the build already wrote.

Store paths come from StorePath `info` files (each holds its path's closure
with references and NAR hashes), the image's digest and `created` from its
OCI layout (or, for a stream image that is never stored, from the image its
request describes), base images from their layout's index, and the files of
the image's own top layers from the layer tars themselves.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import posixpath
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from strata.errors import UserError
from strata.oci.base import read_layout_blob
from strata.oci.compress import open_decompressed
from strata.oci.config import created_epoch
from strata.oci.oci_layout import CONTAINERD_NAME, PULLED_FROM
from strata.oci.reference import split_tag
from strata.sbom.model import BaseImage, LayerFile, StorePathPackage, nar_sha256_hex
from strata.store.closure import PathInfo

SPDX_TYPE = "application/spdx+json"
CYCLONEDX_TYPE = "application/vnd.cyclonedx+json"


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
    image, the registry, repository and digest it was pulled by), and the digest of an
    SPDX document the layout holds as a referrer of it, if any."""
    digest = str(descriptor.get("digest"))
    annotations = descriptor.get("annotations")
    annotations = annotations if isinstance(annotations, dict) else {}
    sbom = _referrer_sbom(layout, digest)
    pulled = annotations.get(PULLED_FROM)
    if isinstance(pulled, str) and "@sha256:" in pulled:
        origin, _, pinned = pulled.rpartition("@")
        return BaseImage(origin, pinned, sbom)
    named = annotations.get(CONTAINERD_NAME)
    repo = split_tag(name)[0] if name else (split_tag(named)[0] if isinstance(named, str) else "")
    return BaseImage(repo, digest, sbom)


def _referrer_sbom(layout: Path, digest: str) -> str:
    try:
        index = json.loads((layout / "index.json").read_bytes())
    except (OSError, ValueError):
        return ""
    manifests = index.get("manifests") if isinstance(index, dict) else None
    for desc in manifests if isinstance(manifests, list) else []:
        if not isinstance(desc, dict) or desc.get("artifactType") != SPDX_TYPE:
            continue
        manifest = json.loads(read_layout_blob(layout, desc, str(layout)))
        subject = manifest.get("subject") if isinstance(manifest, dict) else None
        layers = manifest.get("layers") if isinstance(manifest, dict) else None
        if isinstance(subject, dict) and subject.get("digest") == digest and layers:
            return str(layers[0].get("digest", ""))
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
