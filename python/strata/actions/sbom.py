"""`Sbom`: an image's SBOM, as SPDX 2.3 and CycloneDX 1.5 JSON (output group `sbom`).

Request (keys sorted, `schema_version` 1):

    image         the image's OCI layout (one image), or
    assemble      an ImageAssemble request without `outputs` (stream_layered_image, whose
                  image is never stored: the same image is worked out, not written)
    name          the image's repository name
    store_paths   StorePath `info` files of the image's contents (each holds its closure);
                  [] when the image has no store path layers
    base          optional {"path": OCI layout or docker-archive, "name": "repo:tag"}
    layers        [{"blob": path, "layer": "customisation" | "run_as_root"}]: the image's own
                  top layers, whose regular files are listed with their sha256
    outputs       {"spdx": path, "cyclonedx": path, "referrers": dir (optional, with `image`)}:
                  `referrers` is an OCI layout of the image plus each document as an OCI 1.1
                  artifact manifest whose `subject` is the image (strata.sbom.referrers)

The documents depend only on these inputs (see strata.sbom.model).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from strata.actions.image_request import ImageRequest, build_image
from strata.actions.request import check_keys, field, read_info
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

_KEYS = {"assemble", "base", "image", "layers", "name", "outputs", "schema_version", "store_paths"}
_LAYER_KINDS = ("customisation", "run_as_root")


def _image_digest(
    req: dict[str, Any], where: str, work: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(manifest descriptor, config) of the image the request names."""
    if "image" in req:
        layout = Path(field(req, "image", str, where))
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
    assembled = ImageRequest.from_json(field(req, "assemble", dict, where), where)
    image = build_image(assembled, where, work).image
    manifest_bytes = image.manifest(docker=False)
    desc = {
        "digest": sha256_bytes(manifest_bytes),
        "mediaType": OCI_MANIFEST,
        "size": len(manifest_bytes),
    }
    return desc, json.loads(image.config)


def _base(req: dict[str, Any], platform: Platform, where: str, work: Path) -> list[BaseImage]:
    base = field(req, "base", (dict, type(None)), where, None)
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


def _files(req: dict[str, Any], where: str) -> list[LayerFile]:
    out: list[LayerFile] = []
    for item in field(req, "layers", list, where, []):
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
    check_keys(req, _KEYS, where)
    if ("image" in req) == ("assemble" in req):
        raise UserError(
            "give exactly one of 'image' and 'assemble' (got "
            f"{'both' if 'image' in req else 'neither'}); name the image's OCI layout",
            where=where,
        )
    outputs = field(req, "outputs", dict, where)
    check_keys(outputs, ("cyclonedx", "referrers", "spdx"), where)
    if "referrers" in outputs and "image" not in req:
        raise UserError(
            "outputs.referrers needs 'image', the image's OCI layout (got 'assemble'); "
            "ask for referrers only of a stored image",
            where=where,
        )
    infos = [read_info(p, where) for p in field(req, "store_paths", list, where, [])]
    packages, roots = store_path_packages(infos, where)
    with tempfile.TemporaryDirectory(prefix="strata-sbom-") as tmp:
        subject, config = _image_digest(req, where, Path(tmp))
        arch = str(config.get("architecture", "amd64"))
        platform = parse_platform(arch, str(config.get("os", "linux")), where=where)
        bases = _base(req, platform, where, Path(tmp))
    facts = ImageFacts(
        name=field(req, "name", str, where),
        manifest_digest=str(subject["digest"]),
        created=created_utc(config.get("created")),
        store_paths=tuple(packages),
        roots=tuple(roots),
        bases=tuple(bases),
        files=tuple(_files(req, where)),
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
        layout = Path(field(req, "image", str, where))
        out = field(outputs, "referrers", str, where)
        write_referrers_layout(layout, out, subject, docs, facts.created)
