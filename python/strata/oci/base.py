"""Reading a base image: a docker-archive or an OCI image layout, fully verified.

A base image comes from outside (a `docker save`, a pulled layout). Both
formats are opened through strata.oci.reader, which checks every member name
and blob digest before it names a file; here every blob is hashed and
compared with the digest that names it, and every layer, once decompressed,
with its config `diff_id`. Layer bytes are never re-tarred: they are copied
verbatim into outputs, so an uncompressed base layer stays uncompressed.

docker-archive: both the legacy `docker save` layout (`<id>/layer.tar`,
`<hex>.json`) and the newer one (`blobs/sha256/<hex>`, Docker 25+) are read
through `manifest.json` (https://github.com/moby/moby/blob/master/image/spec/v1.2.md);
a layer is extracted once, hashing it on the way, into a work directory.
OCI layout: `index.json`, nested indexes followed, a manifest chosen by
`org.opencontainers.image.ref.name` and/or platform
(https://github.com/opencontainers/image-spec/blob/main/image-layout.md);
layer blobs are used in place. In both formats a compressed layer is
decompressed as it is read, in the same pass that hashes (and copies) it, and
its diff_id compared with the config's: a pulled gzip or zstd base is
checked as strictly as a plain one. A layer blob a shallow base's layout
lacks and lists in `remote-blobs.json` is taken from its descriptor (digest,
size, media type) and the config's diff_id, unread: callers that write layer
bytes ask for them (`need_bytes`) and get one error naming the fix.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.errors import UserError
from strata.oci.compress import digest_stream
from strata.oci.image import BaseImage, Blob, require_bytes
from strata.oci.manifest import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX
from strata.oci.oci_layout import CONTAINERD_NAME
from strata.oci.platform import Platform
from strata.oci.reader import (
    Archive,
    check_diff_id,
    digest_mismatch,
    json_object,
    layout_blob,
    parse_json,
    read_blob,
    read_index,
)
from strata.oci.reference import split_tag
from strata.oci.remote_blobs import read_remote_blobs
from strata.oci.shallow import remote_layer, with_fetched


@dataclass(frozen=True)
class Selector:
    """Which image to take from an archive or layout holding several."""

    name: str = ""
    """`name:tag`, or just a tag for an OCI layout's ref.name."""
    platform: Platform | None = None


def load_base(
    path: str | os.PathLike[str],
    selector: Selector,
    workdir: Path,
    *,
    need_bytes: bool = True,
    blob_dirs: Sequence[Path] = (),
) -> BaseImage:
    """Read the base image at `path` (a docker-archive file or an OCI layout directory);
    unless `need_bytes` is False, every layer's bytes must be on this machine: in the
    layout, or (a shallow base's) in one of `blob_dirs` (`BaseBlobs` outputs)."""
    p = Path(path)
    where = str(p)
    if p.is_dir():
        if not (p / "oci-layout").is_file():
            raise UserError(
                "base image directory is not an OCI image layout (no oci-layout file); "
                "give an OCI layout directory or a docker-archive tar",
                where=where,
            )
        base = with_fetched(read_oci_layout(p, selector), blob_dirs, where)
        if need_bytes:
            require_bytes(base.layers, where)
        return base
    if not p.is_file():
        raise UserError("base image not found; check the base path", where=where)
    return read_docker_archive(p, selector, workdir)


def _hex_named(name: str) -> str | None:
    """The sha256 a member name claims (`<hex>.json`, `blobs/sha256/<hex>`), if any."""
    stem = posixpath.basename(name)
    if stem.endswith(".json"):
        stem = stem[: -len(".json")]
    if len(stem) == 64 and all(c in "0123456789abcdef" for c in stem):
        return stem
    return None


def _repo_tags(entry: dict[str, Any]) -> list[str]:
    """An entry's RepoTags; anything but a list of strings names no tag."""
    tags = entry.get("RepoTags")
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def _pick_archive_entry(entries: list[dict[str, Any]], selector: Selector, where: str) -> Any:
    tags = [t for e in entries for t in _repo_tags(e)]
    if selector.name:
        want = selector.name if split_tag(selector.name)[1] else selector.name + ":latest"
        for entry in entries:
            if want in _repo_tags(entry):
                return entry
        raise UserError(
            f"no image named {want!r} in the archive (got tags: {', '.join(tags) or 'none'}); "
            "pick one of those",
            where=where,
        )
    if len(entries) != 1:
        raise UserError(
            f"the archive holds {len(entries)} images (got tags: {', '.join(tags) or 'none'}); "
            "choose one with the base image name",
            where=where,
        )
    return entries[0]


def _diff_ids(config: Any, where: str) -> list[str]:
    rootfs = config.get("rootfs") if isinstance(config, dict) else None
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise UserError(
            "base image config has no rootfs.diff_ids list; it is not an image config",
            where=where,
        )
    return diff_ids


def _check_platform(config: dict[str, Any], selector: Selector, where: str) -> Platform:
    found = Platform.from_json(config)
    if selector.platform is not None and not selector.platform.matches(found):
        raise UserError(
            f"base image platform does not match (got {found}, expected {selector.platform}); "
            "choose a base image for that platform or change the architecture",
            where=where,
        )
    return found


def read_docker_archive(path: Path, selector: Selector, workdir: Path) -> BaseImage:
    """Read and verify one image of a docker-archive; layers are extracted into `workdir`."""
    with Archive(path) as archive:
        entries = _archive_entries(archive)
        entry = _pick_archive_entry(entries, selector, archive.where)
        return _read_entry(archive, entry, selector, workdir, "base-layer")


def read_all_images(path: Path, workdir: Path, blob_dirs: Sequence[Path] = ()) -> list[BaseImage]:
    """Every image of a docker-archive, or the one image of an OCI layout, verified."""
    if path.is_dir():
        return [load_base(path, Selector(), workdir, blob_dirs=blob_dirs)]
    if not path.is_file():
        raise UserError("image not found; check the path", where=str(path))
    return read_all_docker_archive(path, workdir)


def read_all_docker_archive(path: Path, workdir: Path) -> list[BaseImage]:
    """Every image of a docker-archive (in manifest.json order), verified."""
    with Archive(path) as archive:
        return [
            _read_entry(archive, entry, Selector(), workdir, f"image{i}-layer")
            for i, entry in enumerate(_archive_entries(archive))
        ]


def _archive_entries(archive: Archive) -> list[dict[str, Any]]:
    entries = parse_json(archive.read("manifest.json"), "manifest.json", archive.where)
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise UserError("manifest.json is not a list of images", where=archive.where)
    return entries


def _read_entry(
    archive: Archive, entry: dict[str, Any], selector: Selector, workdir: Path, prefix: str
) -> BaseImage:
    where = archive.where
    config_name = entry.get("Config")
    layer_names = entry.get("Layers")
    if not isinstance(config_name, str) or not isinstance(layer_names, list):
        raise UserError("manifest.json entry lacks Config or Layers", where=where)
    config_bytes = archive.read(config_name)
    claimed = _hex_named(config_name)
    actual = hashlib.sha256(config_bytes).hexdigest()
    if claimed is not None and claimed != actual:
        raise digest_mismatch(f"member {config_name!r}", claimed, actual, where)
    config = parse_json(config_bytes, f"member {config_name!r}", where)
    diff_ids = _diff_ids(config, f"{where}: {config_name}")
    if len(diff_ids) != len(layer_names):
        raise UserError(
            f"manifest.json lists {len(layer_names)} layers but the config has "
            f"{len(diff_ids)} diff_ids (got {config_name}); the archive is inconsistent",
            where=where,
        )
    platform = _check_platform(config, selector, where)
    workdir.mkdir(parents=True, exist_ok=True)
    blobs = []
    for i, (name, diff_id) in enumerate(zip(layer_names, diff_ids, strict=True)):
        out = workdir / f"{prefix}-{i}"
        blobs.append(_extract_layer(archive, i, str(name), diff_id, out))
    tags = tuple(_repo_tags(entry))
    return BaseImage(config, tuple(blobs), platform, config_bytes=config_bytes, repo_tags=tags)


def _extract_layer(archive: Archive, index: int, name: str, diff_id: str, out: Path) -> Blob:
    """Copy layer `index` out of the archive, its digest and diff_id taken on the way."""
    with (
        archive.reading(f"layer {index} ({name})"),
        archive.open(name) as src,
        open(out, "wb") as dst,
    ):
        got = digest_stream(src, f"{archive.where}: layer {index} ({name})", dst)
    claimed = _hex_named(name)
    if claimed is not None and "sha256:" + claimed != got.digest:
        raise digest_mismatch("layer", "sha256:" + claimed, got.digest, f"{archive.where}: {name}")
    check_diff_id(archive.where, index, name, diff_id, got.diff_id)
    return Blob(out, got.digest, got.size, diff_id, got.compressor)


# -- OCI image layout --------------------------------------------------------------------------


def read_layout_blob(layout: Path, desc: Any, where: str) -> bytes:
    """The bytes of the blob `desc` names in an OCI layout, checked against its digest."""
    return read_blob(layout, desc, where)


def _candidates(
    layout: Path, index: dict[str, Any], ref: str, where: str, depth: int = 0
) -> list[tuple[str, dict[str, Any]]]:
    """Every manifest descriptor reachable from `index`, with the ref.name it came under."""
    found: list[tuple[str, dict[str, Any]]] = []
    manifests = json_object(index, "index", where).get("manifests")
    if not isinstance(manifests, list) or depth > 8:
        raise UserError("index has no manifests list", where=where)
    for desc in manifests:
        if not isinstance(desc, dict):
            raise UserError("index entry is not an object", where=where)
        if desc.get("artifactType"):
            continue  # an artifact (a referrer such as an SBOM), not an image
        annotations = desc.get("annotations") or {}
        name = ref
        if isinstance(annotations, dict):
            name = str(annotations.get("org.opencontainers.image.ref.name", "") or ref)
        if desc.get("mediaType") in (OCI_INDEX, DOCKER_MANIFEST_LIST):
            data = read_blob(layout, desc, where)
            nested = json_object(parse_json(data, "nested index", where), "nested index", where)
            found += _candidates(layout, nested, name, where, depth + 1)
        else:
            found.append((name, desc))
    return found


def select_manifest(layout: Path, selector: Selector) -> tuple[dict[str, Any], dict[str, Any]]:
    """The descriptor and the (verified) manifest of the one image of an OCI layout
    `selector` picks; its layers are not read."""
    where = str(layout)
    index = read_index(layout, where)
    found = _candidates(layout, index, "", where)
    if selector.name:
        tag = split_tag(selector.name)[1] or selector.name
        found = [(r, d) for r, d in found if r in (selector.name, tag)]
    if selector.platform is not None:
        wanted = selector.platform
        found = [
            (r, d)
            for r, d in found
            if "platform" not in d or wanted.matches(Platform.from_json(d["platform"]))
        ]
    if len(found) != 1:
        refs = sorted({r or "(no name)" for r, _ in _candidates(layout, index, "", where)})
        raise UserError(
            f"{len(found)} images match name {selector.name!r} and platform "
            f"{selector.platform or 'any'} (got refs: {', '.join(refs)}); "
            "give the base image's name and architecture",
            where=where,
        )
    manifest = json_object(
        parse_json(read_blob(layout, found[0][1], where), "manifest", where), "manifest", where
    )
    if manifest.get("mediaType", DOCKER_MANIFEST) not in (
        DOCKER_MANIFEST,
        "application/vnd.oci.image.manifest.v1+json",
    ):
        raise UserError(f"not an image manifest (got {manifest.get('mediaType')!r})", where=where)
    return found[0][1], manifest


def read_oci_layout(layout: Path, selector: Selector) -> BaseImage:
    """Read and verify one image of an OCI layout; layer blobs are used where they lie."""
    where = str(layout)
    descriptor, manifest = select_manifest(layout, selector)
    config_bytes = read_blob(
        layout, json_object(manifest.get("config"), "manifest config", where), where
    )
    config = parse_json(config_bytes, "config", where)
    diff_ids = _diff_ids(config, where)
    layers = manifest.get("layers") or []
    if not isinstance(layers, list) or len(layers) != len(diff_ids):
        count = len(layers) if isinstance(layers, list) else f"no list of ({type(layers).__name__})"
        raise UserError(
            f"manifest lists {count} layers but the config has {len(diff_ids)} diff_ids; "
            "the layout is inconsistent",
            where=where,
        )
    platform = _check_platform(config, selector, where)
    remote = read_remote_blobs(layout, where)
    blobs = []
    for i, (desc, diff_id) in enumerate(zip(layers, diff_ids, strict=True)):
        desc = json_object(desc, f"layer {i}'s descriptor", where)
        shallow = remote_layer(layout, desc, diff_id, remote, where)
        if shallow is not None:
            blobs.append(shallow)
            continue
        path = layout_blob(layout, desc.get("digest"), where)
        name = f"blobs/sha256/{path.name}"
        with open(path, "rb") as f:
            got = digest_stream(f, f"{where}: layer {i} ({name})")
        if got.digest != desc["digest"]:
            raise digest_mismatch(f"blob {path.name}", str(desc["digest"]), got.digest, where)
        check_diff_id(where, i, name, diff_id, got.diff_id)
        blobs.append(Blob(path, got.digest, got.size, diff_id, got.compressor))
    # The name the layout gives the image (as a docker-archive's RepoTags), if any; as in
    # _candidates, annotations that are not an object name nothing.
    annotations = descriptor.get("annotations")
    ref = annotations.get(CONTAINERD_NAME) if isinstance(annotations, dict) else None
    tags = (ref,) if isinstance(ref, str) and ref else ()
    return BaseImage(config, tuple(blobs), platform, config_bytes=config_bytes, repo_tags=tags)
