"""`strata action ImageIndex @request.json`: a multi-architecture image as one OCI layout.

The per-platform images (each an OCI image layout, as ImageAssemble writes
it) are joined under one OCI image index, the shape `docker buildx` and
registries use for multi-architecture images: the layout's `index.json`
points at a nested index blob (annotated with the ref name = `tag`), which
lists one manifest per platform. Clients pick their platform from the nested
index (`podman pull oci:DIR:TAG`, `skopeo copy --all`, a registry push);
tools that need one manifest read it directly under `TAG-<arch>` refs
(`umoci unpack --image DIR:latest-amd64`), which index.json lists too.

Blobs are linked from the inputs (copied where a link cannot be made), byte for
byte: each platform's manifest keeps its digest.
Spec: https://github.com/opencontainers/image-spec/blob/main/image-index.md

The request is `ImageIndexRequest` below.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.actions.request import Request, field, read_with
from strata.canonical import json_bytes
from strata.errors import UserError
from strata.fsutil import atomic_dir, share_output
from strata.oci.digest import sha256_bytes
from strata.oci.manifest import OCI_INDEX, OCI_MANIFEST, Descriptor, index_bytes
from strata.oci.oci_layout import CONTAINERD_NAME, LAYOUT_VERSION, REF_NAME
from strata.oci.platform import Platform
from strata.oci.reader import blob_path, json_object, parse_json, read_blob, read_index
from strata.oci.remote_blobs import Remote, read_remote_blobs, write_remote_blobs


def _images(req: dict[str, Any], where: str) -> list[str]:
    images: list[str] = field(req, "images", list, where)
    if not images or not all(isinstance(p, str) for p in images):
        raise UserError(
            f"images must be a non-empty list of OCI layout paths (got {images!r:.80})",
            where=where,
        )
    return images


def _referrers(req: dict[str, Any], where: str) -> list[str]:
    referrers: list[str] = field(req, "referrers", list, where, [])
    if not all(isinstance(p, str) for p in referrers):
        raise UserError(
            f"referrers must be a list of OCI layout paths (got {referrers!r:.80})", where=where
        )
    return referrers


@dataclass(frozen=True, kw_only=True)
class ImageIndexRequest(Request):
    images: list[str] = read_with(_images)
    """OCI layout dirs, each holding one image manifest with a platform; platforms
    must differ."""
    name: str
    """Image name (for io.containerd.image.name)."""
    tag: str = "latest"
    """The index's ref name ("" is "latest")."""
    referrers: list[str] = read_with(_referrers)
    """Optional OCI layout dirs holding referrers of those images (an image's
    `.sbom.oci`); their artifact manifests and blobs are added after the index's
    entries, so a push of this layout pushes each platform's SBOMs as referrers
    of its manifest."""
    output: str
    """The OCI layout directory to write."""


def _manifest_of(layout: Path, where: str) -> Descriptor:
    """The one image manifest descriptor (with its platform) of a per-platform layout."""
    index = read_index(layout, str(layout))
    manifests = index.get("manifests")
    count = len(manifests) if isinstance(manifests, list) else 0
    if not isinstance(manifests, list) or count != 1:
        raise UserError(
            f"each image must hold exactly one manifest (got {count} in {layout});"
            " pass single-platform images",
            where=where,
        )
    desc = json_object(manifests[0], "index entry", str(layout))
    if desc.get("mediaType") != OCI_MANIFEST or "platform" not in desc:
        raise UserError(
            f"the image's index entry is not an OCI manifest with a platform (got "
            f"{desc.get('mediaType')!r} in {layout}); pass an image's oci output",
            where=where,
        )
    digest = field(desc, "digest", str, where)
    if blob_path(layout, digest) is None:
        raise UserError(
            f"the image's manifest digest is malformed (got {digest[:80]!r} in {layout}); "
            "only sha256:<64 hex digits> names a blob: rebuild the image",
            where=where,
        )
    read_blob(layout, desc, str(layout))  # there, and holding what its digest names
    return Descriptor(
        OCI_MANIFEST,
        digest,
        field(desc, "size", int, where),
        platform=Platform.from_json(desc["platform"]),
    )


def _artifacts_of(layout: Path, subjects: set[str], where: str) -> list[dict[str, Any]]:
    """The index entries of `layout` that are referrers (an `artifactType`) of `subjects`."""
    out = []
    for entry in read_index(layout, str(layout)).get("manifests") or []:
        desc = json_object(entry, "index entry", str(layout))
        if not desc.get("artifactType"):
            continue
        manifest = json_object(
            parse_json(read_blob(layout, desc, str(layout)), "referrer manifest", str(layout)),
            "referrer manifest",
            str(layout),
        )
        subject = manifest.get("subject")
        if not isinstance(subject, dict) or subject.get("digest") not in subjects:
            raise UserError(
                f"a referrer in {layout} is not of one of the index's images (got subject "
                f"{subject!r:.80}); pass each image's own .sbom.oci",
                where=where,
            )
        out.append(desc)
    return out


def _with(top: list[Descriptor], artifacts: list[dict[str, Any]]) -> bytes:
    """index.json: the index's entries, then the referrers' entries as their layouts list
    them (sorted by digest, so the order of `referrers` does not matter)."""
    index = json.loads(index_bytes(top))
    index["manifests"] += sorted(artifacts, key=lambda d: str(d.get("digest")))
    return json_bytes(index)


def _arch_suffix(platform: Platform) -> str:
    data = platform.to_json()
    return "-".join(v for v in (data["architecture"], data.get("variant", "")) if v)


def build_index(req: dict[str, Any], where: str) -> None:
    request = ImageIndexRequest.from_json(req, where)
    images = request.images
    name = request.name
    tag = request.tag or "latest"
    descriptors = [_manifest_of(Path(p), where) for p in images]
    seen: dict[str, str] = {}
    for path, desc in zip(images, descriptors, strict=True):
        key = json.dumps(desc.platform.to_json() if desc.platform else {}, sort_keys=True)
        if key in seen:
            raise UserError(
                f"two images have the same platform (got {key} in {seen[key]} and {path}); "
                "give each image another architecture",
                where=where,
            )
        seen[key] = path
    referrers = request.referrers
    subjects = {d.digest for d in descriptors}
    artifacts = [a for layout in referrers for a in _artifacts_of(Path(layout), subjects, where)]
    with atomic_dir(request.output) as tmp:
        blobs = tmp / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        remote: dict[str, Remote] = {}
        for layout in images:
            remote |= read_remote_blobs(Path(layout), str(layout))
        for layout in [*images, *referrers]:
            src = Path(layout) / "blobs" / "sha256"
            for blob in sorted(os.listdir(src)):
                if blob_path(Path(layout), "sha256:" + blob) is None:
                    raise UserError(
                        f"a blob of {layout} is not named by its sha256 (got {blob!r}); "
                        "pass an image's oci output",
                        where=where,
                    )
                if not (blobs / blob).exists():
                    share_output(src / blob, blobs / blob)
        nested = index_bytes(descriptors)
        digest = sha256_bytes(nested)
        (blobs / digest.partition(":")[2]).write_bytes(nested)
        top = [
            Descriptor(
                OCI_INDEX,
                digest,
                len(nested),
                annotations={REF_NAME: tag, CONTAINERD_NAME: f"{name}:{tag}"},
            )
        ]
        for desc in descriptors:
            ref = f"{tag}-{_arch_suffix(desc.platform or Platform('unknown'))}"
            top.append(
                Descriptor(
                    desc.media_type,
                    desc.digest,
                    desc.size,
                    annotations={REF_NAME: ref, CONTAINERD_NAME: f"{name}:{ref}"},
                    platform=desc.platform,
                )
            )
        (tmp / "index.json").write_bytes(
            index_bytes(top) if not artifacts else _with(top, artifacts)
        )
        # Base blobs an image lacks (a shallow base) and no other image holds.
        missing = {d: r for d, r in remote.items() if not (blobs / d.partition(":")[2]).exists()}
        write_remote_blobs(tmp, missing)
        (tmp / "oci-layout").write_bytes(json_bytes({"imageLayoutVersion": LAYOUT_VERSION}))
        for p in sorted(tmp.rglob("*")):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
