"""What `image_push` sends, read from an OCI layout or a docker-archive: manifests and blobs.

A `Node` is a manifest or index with the blobs it names and (an index) the
manifests it lists, each checked before anything is sent: a blob is named by
its sha256 (so a descriptor cannot make the push read a host file), present
and of its descriptor's size, and a manifest holds the bytes its digest names.
A layout on a shallow base lists the base blobs it lacks (`remote-blobs.json`):
those become sources in the registry they live in (`BlobSource.remote`).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from strata.errors import UserError
from strata.oci.base import Selector, read_docker_archive
from strata.oci.digest import sha256_bytes
from strata.oci.image import Image
from strata.oci.manifest import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    index_bytes,
)
from strata.oci.platform import Platform
from strata.oci.reader import blob_path, json_object, parse_json, read_blob, read_index
from strata.oci.remote_blobs import Remote, read_remote_blobs


@dataclass(frozen=True)
class BlobSource:
    """A blob to push: its digest and size, and where to read it (a file or bytes)."""

    digest: str
    size: int
    path: Path | None = None
    data: bytes | None = None
    remote: Remote | None = None
    """A shallow base's blob: not here, but in this registry and repository."""

    def open(self) -> IO[bytes]:
        if self.path is not None:
            return open(self.path, "rb")
        return io.BytesIO(self.data or b"")


@dataclass(frozen=True)
class Node:
    """A manifest or index to push, with its blobs and (for an index) its child manifests."""

    data: bytes
    media_type: str
    blobs: tuple[BlobSource, ...] = ()
    children: tuple[Node, ...] = ()

    @property
    def digest(self) -> str:
        return sha256_bytes(self.data)


def _read_layout_blob(
    layout: Path, desc: Any, where: str, remote: dict[str, Remote] | None = None
) -> BlobSource:
    desc = json_object(desc, "descriptor", where)
    digest = str(desc.get("digest", ""))
    size = desc.get("size")
    # Checked before it names a file: `sha256:../../..` must not read (and send) a host file.
    path = blob_path(layout, digest)
    if path is None:
        raise UserError(
            f"malformed blob digest in the layout (got {digest[:80]!r}); only sha256:<64 hex "
            "digits> names a blob: rebuild the layout",
            where=where,
        )
    source = (remote or {}).get(digest)
    if source is not None and source.size == size and not path.exists():
        return BlobSource(digest, source.size, remote=source)
    if not path.is_file():
        raise UserError(
            f"blob is missing from the layout (got {digest or 'no digest'}); "
            "rebuild or copy the layout again",
            where=where,
        )
    actual = path.stat().st_size
    if actual != size:
        raise UserError(
            f"blob size differs from its descriptor (got {actual}, expected {size}) for "
            f"{digest}; the layout is corrupt: rebuild it",
            where=where,
        )
    return BlobSource(digest, actual, path=path)


def layout_node(
    layout: Path,
    desc: dict[str, Any],
    where: str,
    depth: int = 0,
    remote: dict[str, Remote] | None = None,
) -> Node:
    """The manifest or index `desc` names in an OCI layout, with its blobs and children
    (layers listed in `remote` need not be in the layout)."""
    _read_layout_blob(layout, desc, where)  # named by sha256, present, of its size
    data = read_blob(layout, desc, where)  # and holding the bytes its digest names
    obj = json_object(parse_json(data, "manifest", where), "manifest", where)
    media_type = str(desc.get("mediaType") or obj.get("mediaType") or OCI_MANIFEST)
    if media_type in (OCI_INDEX, DOCKER_MANIFEST_LIST):
        if depth > 4:
            raise UserError("indexes nested too deeply (got more than 4 levels)", where=where)
        children = tuple(
            layout_node(layout, d, where, depth + 1, remote) for d in obj.get("manifests") or []
        )
        return Node(data, media_type, children=children)
    if media_type not in (OCI_MANIFEST, DOCKER_MANIFEST):
        raise UserError(
            f"unsupported manifest type in the layout (got {media_type!r}); "
            "push OCI or Docker v2 schema 2 images",
            where=where,
        )
    blobs = [_read_layout_blob(layout, obj.get("config") or {}, where)]
    blobs += [_read_layout_blob(layout, d, where, remote) for d in obj.get("layers") or []]
    return Node(data, media_type, blobs=tuple(blobs))


def _listed(node: Node) -> set[str]:
    """Digests of every manifest below `node` (its children, theirs, ...)."""
    out: set[str] = set()
    for child in node.children:
        out |= {child.digest} | _listed(child)
    return out


def read_layout(layout: Path) -> Node:
    """What to push from an OCI layout: its one image or index, or an index of its images.

    `index.json` may also list what an index already holds (image_index names each
    platform's manifest `<tag>-<arch>` beside the index): those entries are not pushed
    on their own, so an index and its children are one image, pushed byte for byte.
    """
    where = str(layout)
    index = read_index(layout, where)
    # Referrers (entries with an artifactType, such as an image's SBOMs) are not the image:
    # strata.registry.referrers pushes them after it.
    entries = [
        d for d in index.get("manifests") or [] if isinstance(d, dict) and not d.get("artifactType")
    ]
    if not entries:
        raise UserError("the layout's index.json lists no manifests", where=where)
    remote = read_remote_blobs(layout, where)
    nodes = [layout_node(layout, d, where, 0, remote) for d in entries]
    below: set[str] = set()
    for node in nodes:
        below |= _listed(node)
    roots: dict[str, tuple[dict[str, Any], Node]] = {}
    for desc, node in zip(entries, nodes, strict=True):
        if node.digest not in below:
            roots.setdefault(node.digest, (desc, node))
    if len(roots) == 1:
        return next(iter(roots.values()))[1]
    missing = [d.get("digest") for d, _ in roots.values() if not d.get("platform")]
    if missing:
        raise UserError(
            f"the layout holds {len(roots)} images, not one index, and some have no platform "
            f"(got {missing[0]}); push a layout with one image or index, or one image per "
            "platform",
            where=where,
        )
    descriptors = [
        Descriptor(
            str(d.get("mediaType") or OCI_MANIFEST),
            c.digest,
            len(c.data),
            platform=Platform.from_json(d["platform"]),
        )
        for d, c in roots.values()
    ]
    children = tuple(c for _, c in roots.values())
    return Node(index_bytes(descriptors), OCI_INDEX, children=children)


def read_archive(path: Path, name: str, workdir: Path) -> Node:
    """What to push from a docker-archive: a Docker v2 schema 2 manifest over its blobs."""
    base = read_docker_archive(path, Selector(name), workdir)
    config_bytes = base.config_bytes  # the archive's own bytes, checked against their name
    image = Image(config_bytes, base.layers, None, platform=base.platform)
    blobs = [BlobSource(image.config_digest, len(config_bytes), data=config_bytes)]
    blobs += [BlobSource(b.digest, b.size, path=b.path) for b in base.layers]
    return Node(image.manifest(docker=True), DOCKER_MANIFEST, blobs=tuple(blobs))


def load_source(path: str | os.PathLike[str], name: str, workdir: Path) -> Node:
    """An OCI layout directory or a docker-archive file, as something to push."""
    p = Path(path)
    if p.is_dir():
        if not (p / "oci-layout").is_file():
            raise UserError(
                "directory is not an OCI image layout (no oci-layout file); "
                "give an OCI layout or a docker-archive",
                where=str(p),
            )
        return read_layout(p)
    if not p.is_file():
        raise UserError("image to push not found (got no such file); check the path", where=str(p))
    return read_archive(p, name, workdir)
