"""`BaseBlobs`: the layer blobs a shallow base left in its registry, as a directory.

The request is `BaseBlobsRequest` below.

The pulled repository's `:image` target declares it; it runs only when an
output holds the base's bytes (a docker-archive, export_image, run_as_root,
merge_images). It needs the network (`requires-network`) and is never
remote-cached; what it writes depends only on the digests, so it is
deterministic. Blobs come through the shared store, once per digest
(strata.registry.remote_fetch). Prints what it fetched on stderr.

Credentials: a build action's environment is `PATH` alone, so the pull
passes on the variables that say where `docker login` / `podman login` keep
them (`credential_env`: HOME, DOCKER_CONFIG, REGISTRY_AUTH_FILE,
XDG_RUNTIME_DIR, PATH, as the repository rule saw them). Only where the
credentials are travels in the request, never a secret.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

from strata.actions.request import Request
from strata.fsutil import atomic_dir
from strata.oci.remote_blobs import read_remote_blobs
from strata.registry.blobstore import BlobStore, default_blob_store
from strata.registry.endpoint import Options
from strata.registry.remote_fetch import fetch_remote_blobs


@dataclass(frozen=True, kw_only=True)
class BaseBlobsRequest(Request):
    image: str
    """The base's OCI layout (a `pull_image(shallow = True)` repository's)."""
    blob_store: str = ""
    """The shared blob store the pull used ("": $STRATA_BLOB_STORE, else
    ~/.cache/strata/blobs)."""
    output: str
    """Directory to write: `sha256/<hex>` per blob the layout's `remote-blobs.json`
    lists, each checked against its digest and size."""
    tls_verify: bool = True
    """As the pull's."""
    ca_file: str = ""
    """As the pull's ("": the system's CAs)."""
    credential_env: dict[str, str] = dataclass_field(default_factory=dict)
    """The pull's environment variables that locate registry credentials (see above)."""


def run(req: dict[str, Any], where: str) -> None:
    request = BaseBlobsRequest.from_json(req, where)
    layout = Path(request.image)
    remote = read_remote_blobs(layout, str(layout))
    shared = BlobStore(request.blob_store or default_blob_store())
    with atomic_dir(request.output) as tmp:
        env = {**os.environ, **request.credential_env}
        options = Options(tls_verify=request.tls_verify, ca_file=request.ca_file, env=env)
        counts = fetch_remote_blobs(remote, BlobStore(tmp), shared, str(layout), options)
    if counts.fetched or counts.from_store:
        print(
            f"{layout}: {len(remote)} base layer blob(s): {counts.fetched} downloaded "
            f"({counts.fetched_bytes} bytes), {counts.from_store} from the blob store",
            file=sys.stderr,
        )
