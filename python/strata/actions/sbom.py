"""`Sbom`: an image's SBOM, as SPDX 2.3 and CycloneDX 1.5 JSON (output group `sbom`).

The request is `SbomRequest` below. The documents depend only on these inputs
(see strata.sbom.model).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

from strata.actions.image_request import ImageRequest, build_image
from strata.actions.request import Request, check_keys, field, read_info, read_with
from strata.canonical import parse_json
from strata.errors import UserError
from strata.fsutil import write_bytes_atomic
from strata.oci.base import Selector, load_base, read_layout_blob, select_manifest
from strata.oci.digest import sha256_bytes
from strata.oci.image import stored_image
from strata.oci.manifest import OCI_MANIFEST
from strata.oci.platform import Platform, parse_platform
from strata.oci.reference import split_tag
from strata.sbom.cyclonedx import cyclonedx_bytes
from strata.sbom.facts import (
    CYCLONEDX_TYPE,
    SPDX_TYPE,
    created_utc,
    layer_files,
    layout_base,
    store_path_packages,
)
from strata.sbom.model import BaseImage, ImageFacts, LayerFile
from strata.sbom.referrers import Document, write_referrers_layout
from strata.sbom.spdx import spdx_bytes

_LAYER_KINDS = ("customisation", "run_as_root")


def _image(req: dict[str, Any], where: str) -> str:
    if ("image" in req) == ("assemble" in req):
        raise UserError(
            "give exactly one of 'image' and 'assemble' (got "
            f"{'both' if 'image' in req else 'neither'}); name the image's OCI layout",
            where=where,
        )
    image: str = field(req, "image", str, where, "")
    return image


def _outputs(req: dict[str, Any], where: str) -> dict[str, Any]:
    outputs: dict[str, Any] = field(req, "outputs", dict, where)
    check_keys(outputs, ("cyclonedx", "referrers", "spdx"), where)
    if "referrers" in outputs and "image" not in req:
        raise UserError(
            "outputs.referrers needs 'image', the image's OCI layout (got 'assemble'); "
            "ask for referrers only of a stored image",
            where=where,
        )
    return outputs


def _assemble(req: dict[str, Any], where: str) -> ImageRequest | None:
    if "assemble" not in req:
        return None
    return ImageRequest.from_json(field(req, "assemble", dict, where), where)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SbomRequest(Request):
    image: str = read_with(_image)
    """The image's OCI layout (one image); or else `assemble`."""
    outputs: dict[str, Any] = read_with(_outputs)
    """{"spdx": path, "cyclonedx": path, "referrers": dir (optional, with `image`)}:
    `referrers` is an OCI layout of the image plus each document as an OCI 1.1
    artifact manifest whose `subject` is the image (strata.sbom.referrers)."""
    store_paths: list[str] = dataclasses.field(default_factory=list)
    """StorePath `info` files of the image's contents (each holds its closure)."""
    assemble: ImageRequest | None = read_with(_assemble)
    """An ImageAssemble request without `outputs` (stream_layered_image, whose image
    is never stored: the same image is worked out, not written)."""
    base: dict[str, Any] | None = None
    """{"path": OCI layout or docker-archive, "name": "repo:tag"}."""
    name: str
    """The image's repository name."""
    layers: list[Any] = dataclasses.field(default_factory=list)
    """[{"blob": path, "layer": "customisation" | "run_as_root"}]: the image's own top
    layers, whose regular files are listed with their sha256."""


def _image_digest(
    req: SbomRequest, where: str, work: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(manifest descriptor, config) of the image the request names."""
    if req.assemble is None:
        layout = Path(req.image)
        desc, manifest = select_manifest(layout, Selector())
        config = parse_json(
            read_layout_blob(layout, manifest.get("config"), where),
            "the image config",
            "the layout is damaged: build the image again",
            where,
        )
        if not isinstance(config, dict):
            raise UserError(
                f"the image config is not a JSON object (got {str(config)[:40]}); the "
                "layout is damaged: build the image again",
                where=where,
            )
        return desc, config
    image = build_image(req.assemble, where, work).image
    manifest_bytes = image.manifest(docker=False)
    desc = {
        "digest": sha256_bytes(manifest_bytes),
        "mediaType": OCI_MANIFEST,
        "size": len(manifest_bytes),
    }
    return desc, json.loads(image.config)


def _base(req: SbomRequest, platform: Platform, where: str, work: Path) -> list[BaseImage]:
    base = req.base
    if base is None:
        return []
    check_keys(base, ("name", "path"), where)
    path = Path(field(base, "path", str, where))
    name = field(base, "name", str, where, "")
    selector = Selector(name, platform)
    if path.is_dir():
        desc, _ = select_manifest(path, selector)
        return [layout_base(path, desc, name)]
    image = stored_image(load_base(path, selector, work))
    repo = split_tag(name)[0] if name else (image.ref.name if image.ref else "")
    return [BaseImage(repo, sha256_bytes(image.manifest(docker=False)))]


def _files(req: SbomRequest, where: str) -> list[LayerFile]:
    out: list[LayerFile] = []
    for item in req.layers:
        if not isinstance(item, dict):
            raise UserError(
                f'each layer must be {{"blob", "layer"}} (got {item!r:.60})', where=where
            )
        check_keys(item, ("blob", "layer"), where)
        kind = field(item, "layer", str, where)
        if kind not in _LAYER_KINDS:
            raise UserError(
                f"unknown layer kind (got {kind!r}); use one of {', '.join(_LAYER_KINDS)}",
                where=where,
            )
        out += layer_files(Path(field(item, "blob", str, where)), kind)
    return out


def run(req: dict[str, Any], where: str) -> None:
    request = SbomRequest.from_json(req, where)
    outputs = request.outputs
    infos = [read_info(p, where) for p in request.store_paths]
    packages, roots = store_path_packages(infos, where)
    with tempfile.TemporaryDirectory(prefix="strata-sbom-") as tmp:
        subject, config = _image_digest(request, where, Path(tmp))
        arch = str(config.get("architecture", "amd64"))
        platform = parse_platform(arch, str(config.get("os", "linux")), where=where)
        bases = _base(request, platform, where, Path(tmp))
    facts = ImageFacts(
        name=request.name,
        manifest_digest=str(subject["digest"]),
        created=created_utc(config.get("created")),
        store_paths=tuple(packages),
        roots=tuple(roots),
        bases=tuple(bases),
        files=tuple(_files(request, where)),
    )
    spdx_path = Path(field(outputs, "spdx", str, where))
    cdx_path = Path(field(outputs, "cyclonedx", str, where))
    docs = [
        Document(SPDX_TYPE, spdx_bytes(facts), spdx_path.name),
        Document(CYCLONEDX_TYPE, cyclonedx_bytes(facts), cdx_path.name),
    ]
    write_bytes_atomic(spdx_path, docs[0].data, durable=False)
    write_bytes_atomic(cdx_path, docs[1].data, durable=False)
    if "referrers" in outputs:
        layout = Path(request.image)
        out = field(outputs, "referrers", str, where)
        write_referrers_layout(layout, out, subject, docs, facts.created)
