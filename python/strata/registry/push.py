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
from strata.registry.client import RegistryClient
from strata.registry.endpoint import pull_scope, push_scope
from strata.registry.push_source import BlobSource, Node, load_source
from strata.registry.remote_mount import send_remote

CHUNK_THRESHOLD = 64 << 20
CHUNK_SIZE = 16 << 20


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
