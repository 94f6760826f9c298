"""Push an OCI layout or a docker-archive, uploading only the blobs the registry lacks.

Each blob is checked with HEAD first; only missing ones are sent, so pushing the
same image twice sends no blob bytes and a one-layer change sends that layer
(and the new config). When told another repository of the same registry that
already holds the blobs, we ask for a cross-repository mount first (201 means
mounted, 202 means the registry declined and gave an upload session to use).
Uploads are POST then PUT (a small blob in one body: distribution answers 202,
not 201, to a POST carrying the body), or PATCHes of `chunk_size` bytes with
`Content-Range` for blobs above `chunk_threshold`, closed by an empty PUT.
Manifests are pushed with their own media type (Docker v2 schema 2 from a
docker-archive; from an OCI layout, the bytes and types the layout holds, so
digests survive), children before the index that lists them. A layout on a
shallow base names base blobs it lacks (`remote-blobs.json`): those are
skipped when the registry has them, else mounted from the base's repository,
never downloaded; to another registry they are streamed from the base's
(`remote_mount.py`).

Spec: https://github.com/opencontainers/distribution-spec/blob/main/spec.md#push
"""

from __future__ import annotations

import io
import os
import tempfile
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
from strata.registry.client import RegistryClient, pull_scope, push_scope
from strata.registry.remote_mount import send_remote

CHUNK_THRESHOLD = 64 << 20
CHUNK_SIZE = 16 << 20


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


@dataclass
class PushCounters:
    blobs_uploaded: int = 0
    bytes_uploaded: int = 0
    blobs_skipped: int = 0
    bytes_skipped: int = 0
    blobs_mounted: int = 0
    manifests_pushed: int = 0


@dataclass(frozen=True)
class PushResult:
    digest: str
    media_type: str
    tags: tuple[str, ...]
    counters: PushCounters = field(default_factory=PushCounters)

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "media_type": self.media_type, "tags": list(self.tags)} | {
            k: v for k, v in vars(self.counters).items()
        }


# -- reading what to push ----------------------------------------------------------------------


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


# -- pushing -----------------------------------------------------------------------------------


def _location(client: RegistryClient, location: str, where: str) -> str:
    if not location:
        raise UserError("registry gave no upload Location; it is not a v2 registry", where=where)
    return urllib.parse.urljoin(client.registry.base_url + "/", location)


def _with_digest(url: str, digest: str) -> str:
    return url + ("&" if "?" in url else "?") + urllib.parse.urlencode({"digest": digest})


def _reader(blob: BlobSource, start: int, length: int) -> Callable[[], IO[bytes]]:
    def open_range() -> IO[bytes]:
        with blob.open() as f:
            f.seek(start)
            return io.BytesIO(f.read(length))

    return open_range


def upload_blob(
    client: RegistryClient,
    repository: str,
    blob: BlobSource,
    counters: PushCounters,
    *,
    mount_from: str = "",
    chunk_threshold: int = CHUNK_THRESHOLD,
    chunk_size: int = CHUNK_SIZE,
    where: str,
) -> None:
    """Make sure `repository` has `blob`; counts what was skipped, mounted or sent."""
    scopes: tuple[str, ...] = (push_scope(repository),)
    head = client.request(
        "HEAD", f"/v2/{repository}/blobs/{blob.digest}", scopes=scopes, where=where, ok=(200, 404)
    )
    if head.status == 200:
        counters.blobs_skipped += 1
        counters.bytes_skipped += blob.size
        return
    if blob.remote is not None:
        sent = send_remote(
            client, repository, blob.digest, blob.remote, chunk_size=chunk_size, where=where
        )
        counters.blobs_mounted += 0 if sent else 1
        counters.blobs_uploaded += 1 if sent else 0
        counters.bytes_uploaded += sent
        return
    start = f"/v2/{repository}/blobs/uploads/"
    if mount_from and mount_from != repository:
        scopes = (push_scope(repository), pull_scope(mount_from))
        query = urllib.parse.urlencode({"mount": blob.digest, "from": mount_from})
        resp = client.request("POST", f"{start}?{query}", scopes=scopes, where=where, ok=(201, 202))
        if resp.status == 201:
            counters.blobs_mounted += 1
            return
    else:
        resp = client.request("POST", start, scopes=scopes, where=where, ok=(202,))
    url = _location(client, resp.header("location"), where)
    octets = {"Content-Type": "application/octet-stream"}
    if blob.size > chunk_threshold:
        for offset in range(0, blob.size, chunk_size):
            length = min(chunk_size, blob.size - offset)
            resp = client.request(
                "PATCH",
                url,
                scopes=scopes,
                headers={
                    **octets,
                    "Content-Length": str(length),
                    "Content-Range": f"{offset}-{offset + length - 1}",
                },
                body=_reader(blob, offset, length),
                where=where,
                ok=(202,),
            )
            url = _location(client, resp.header("location"), where)
        body: Callable[[], IO[bytes]] = _reader(blob, 0, 0)
        headers = {**octets, "Content-Length": "0"}
    else:
        body = blob.open
        headers = {**octets, "Content-Length": str(blob.size)}
    client.request(
        "PUT",
        _with_digest(url, blob.digest),
        scopes=scopes,
        headers=headers,
        body=body,
        where=where,
        ok=(201, 204),
    )
    counters.blobs_uploaded += 1
    counters.bytes_uploaded += blob.size


def put_manifest(
    client: RegistryClient, repository: str, node: Node, reference: str, where: str
) -> str:
    resp = client.request(
        "PUT",
        f"/v2/{repository}/manifests/{reference}",
        scopes=(push_scope(repository),),
        headers={"Content-Type": node.media_type},
        body=node.data,
        where=where,
        ok=(201, 202, 200),
    )
    answered = resp.header("docker-content-digest")
    if answered and answered != node.digest:
        raise UserError(
            f"registry stored the manifest under another digest (got {answered}, expected "
            f"{node.digest}); the registry rewrote it: check its version",
            where=where,
        )
    return node.digest


def push_node(
    client: RegistryClient,
    repository: str,
    node: Node,
    references: Sequence[str],
    counters: PushCounters,
    seen: set[str],
    *,
    mount_from: str = "",
    chunk_threshold: int = CHUNK_THRESHOLD,
    chunk_size: int = CHUNK_SIZE,
    where: str,
) -> str:
    """Push `node`'s children and blobs, then the manifest under each of `references`."""
    for child in node.children:
        push_node(
            client,
            repository,
            child,
            [],
            counters,
            seen,
            mount_from=mount_from,
            chunk_threshold=chunk_threshold,
            chunk_size=chunk_size,
            where=where,
        )
    for blob in node.blobs:
        if blob.digest in seen:
            continue
        seen.add(blob.digest)
        upload_blob(
            client,
            repository,
            blob,
            counters,
            mount_from=mount_from,
            chunk_threshold=chunk_threshold,
            chunk_size=chunk_size,
            where=where,
        )
    for ref in list(references) or [node.digest]:
        put_manifest(client, repository, node, ref, where)
        counters.manifests_pushed += 1
    return node.digest


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


def push(
    client: RegistryClient,
    repository: str,
    source: str | os.PathLike[str],
    tags: Sequence[str],
    *,
    name: str = "",
    mount_from: str = "",
    chunk_threshold: int = CHUNK_THRESHOLD,
    chunk_size: int = CHUNK_SIZE,
    where: str,
) -> PushResult:
    """Push the image at `source` to `repository` under `tags` (or by digest if none)."""
    counters = PushCounters()
    with tempfile.TemporaryDirectory(prefix="strata-push-") as work:
        node = load_source(source, name, Path(work))
        digest = push_node(
            client,
            repository,
            node,
            tags,
            counters,
            set(),
            mount_from=mount_from,
            chunk_threshold=chunk_threshold,
            chunk_size=chunk_size,
            where=where,
        )
    return PushResult(digest, node.media_type, tuple(tags), counters)
