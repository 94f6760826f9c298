"""Fetching the layers a shallow base left in its registry, for outputs that hold them.

An image on `pull_image(shallow = True)` names base layers it lacks
(strata.oci.remote_blobs). The docker-archive, `export_image`, `run_as_root`
and `merge_images` need their bytes: the `BaseBlobs` action of the pulled
repository fetches them, only when one of those runs, into its output
directory (`sha256/<hex>`, read by `oci.base.load_base`'s `blob_dirs`).

Each blob goes through the shared blob store `pull_image` uses (blobstore.py),
so a digest is downloaded once per machine: a blob the store holds is copied
from it, any other is fetched into it and then copied. Both steps check the
digest and size. Where the store cannot be written (a sandbox that shows the
host read-only), the blob is fetched straight into the output, still verified.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from strata.oci.remote_blobs import Remote
from strata.registry.blobstore import BlobStore
from strata.registry.client import RegistryClient
from strata.registry.endpoint import Options, Registry
from strata.registry.fetch import fetch_blob

_CHUNK = 1 << 20


@dataclass
class FetchCounts:
    fetched: int = 0
    """Blobs downloaded from a registry."""
    fetched_bytes: int = 0
    from_store: int = 0
    """Blobs the shared store already held."""


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


def _writable(store: BlobStore) -> bool:
    try:
        (store.root / "sha256").mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(store.root / "sha256", os.W_OK)


def fetch_remote_blobs(
    blobs: Mapping[str, Remote],
    out: BlobStore,
    shared: BlobStore | None,
    where: str,
    options: Options | None = None,
) -> FetchCounts:
    """Put every blob of `blobs` into `out`, downloading each through `shared` once."""
    counts = FetchCounts()
    clients: dict[str, RegistryClient] = {}
    through = shared if shared is not None and _writable(shared) else None
    for digest, remote in sorted(blobs.items()):
        if out.has(digest, remote.size):
            continue
        if shared is not None and shared.has(digest, remote.size):
            counts.from_store += 1
        else:
            client = clients.get(remote.registry)
            if client is None:
                registry = Registry.parse(remote.registry, where=where)
                client = RegistryClient(registry, options or Options(), where=where)
                clients[remote.registry] = client
            fetch_blob(client, through or out, remote.repository, digest, remote.size, where)
            counts.fetched += 1
            counts.fetched_bytes += remote.size
            if through is None:
                continue
        # Copied, not linked: outputs are chmod-ed, which must not reach the store.
        src = (shared or out).path(digest)
        out.put_stream(digest, remote.size, _chunks(src), where)
    return counts
