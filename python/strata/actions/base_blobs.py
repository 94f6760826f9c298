"""`BaseBlobs`: the layer blobs a shallow base left in its registry, as a directory.

Request (keys sorted, `schema_version` 1):

    image        the base's OCI layout (a `pull_image(shallow = True)` repository's)
    blob_store   optional: the shared blob store the pull used (default
                 $STRATA_BLOB_STORE, else ~/.cache/strata/blobs)
    tls_verify, ca_file   optional, as the pull's (default: verify, system CAs)
    output       directory to write: `sha256/<hex>` per blob the layout's
                 `remote-blobs.json` lists, each checked against its digest and size

The pulled repository's `:image` target declares it; it runs only when an
output holds the base's bytes (a docker-archive, export_image, run_as_root,
merge_images). It needs the network (`requires-network`) and is never
remote-cached; what it writes depends only on the digests, so it is
deterministic. Blobs come through the shared store, once per digest
(strata.registry.remote_fetch). Prints what it fetched on stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from strata.actions.request import check_keys, field
from strata.fsutil import atomic_dir
from strata.oci.remote_blobs import read_remote_blobs
from strata.registry.blobstore import BlobStore, default_blob_store
from strata.registry.client import Options
from strata.registry.remote_fetch import fetch_remote_blobs

_KEYS = ("blob_store", "ca_file", "image", "output", "schema_version", "tls_verify")


def run(req: dict[str, Any], where: str) -> None:
    check_keys(req, _KEYS, where)
    layout = Path(field(req, "image", str, where))
    remote = read_remote_blobs(layout, str(layout))
    shared = BlobStore(field(req, "blob_store", str, where, "") or default_blob_store())
    with atomic_dir(field(req, "output", str, where)) as tmp:
        options = Options(
            tls_verify=field(req, "tls_verify", bool, where, True),
            ca_file=field(req, "ca_file", str, where, ""),
        )
        counts = fetch_remote_blobs(remote, BlobStore(tmp), shared, str(layout), options)
    if counts.fetched or counts.from_store:
        print(
            f"{layout}: {len(remote)} base layer blob(s): {counts.fetched} downloaded "
            f"({counts.fetched_bytes} bytes), {counts.from_store} from the blob store",
            file=sys.stderr,
        )
