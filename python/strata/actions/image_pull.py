"""`ImagePull`: fetch one image by digest from a registry into an OCI image layout.

The request is `ImagePullRequest` below.

Not a build action (it needs the network): the `pull_image` repository rule
and `strata pull-digest` run it. Warnings go to stderr; the layout appears
whole or not at all.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.actions.registry_request import (
    ENDPOINT_KEYS,
    PLATFORM_KEYS,
    Endpoint,
    endpoint_from,
    platform_from,
    repository_from,
)
from strata.actions.request import Request, check_keys, field, read_with
from strata.canonical import json_bytes
from strata.errors import UserError
from strata.fsutil import write_bytes_atomic
from strata.oci.platform import Platform
from strata.oci.reference import check_tag, parse_image_name
from strata.registry.blobstore import BlobStore, default_blob_store
from strata.registry.fetch import is_digest
from strata.registry.pull import pull


def _outputs(req: dict[str, Any], where: str) -> dict[str, Any]:
    outputs: dict[str, Any] = field(req, "outputs", dict, where)
    check_keys(outputs, ("oci_layout", "pull_info"), where)
    field(outputs, "oci_layout", str, where)
    return outputs


def _tag(req: dict[str, Any], where: str) -> str:
    tag: str = field(req, "tag", str, where, "")
    if tag:
        check_tag(tag, where)
    return tag


@dataclass(frozen=True, kw_only=True)
class ImagePullRequest(Request):
    # The user wrote a pull_image, not a request file: errors name the repository.
    where_key = "label"
    label: str = ""
    """What errors name (`@busybox`, the pull_image repository); "": the request file."""
    outputs: dict[str, Any] = read_with(_outputs)
    """{"oci_layout": dir, "pull_info": path (optional)}."""
    repository: str = read_with(repository_from)
    """E.g. "library/busybox"."""
    digest: str = ""
    """"sha256:..." (the reproducible way)."""
    tag: str = read_with(_tag)
    """Allowed without a digest, with a warning naming the digest to pin."""
    endpoint: Endpoint = read_with(endpoint_from, keys=ENDPOINT_KEYS)
    """`registry` (host[:port], optionally with http:// or https://), `tls_verify`
    (default true), `ca_file` (a PEM file of CAs to trust), `timeout` (seconds the
    whole pull may take; default: no bound; every read is also bounded (60 s) and
    must keep up 1 KiB/s over each minute)."""
    final_image_name: str = ""
    """The name the layout's image carries ("": the repository)."""
    final_image_tag: str = ""
    """Its tag ("": the tag, else "latest")."""
    blob_store: str = ""
    """Shared directory of blobs by digest ("": ~/.cache/strata/blobs)."""
    shallow: bool = False
    """True fetches manifest, index and config only: the layout lacks the layer blobs
    and lists them in remote-blobs.json."""
    platform: Platform = read_with(platform_from, keys=PLATFORM_KEYS)
    """`os`, `architecture`, `variant`: which image of an index (default linux/x86_64)."""


def run(req: dict[str, Any], where: str) -> None:
    request = ImagePullRequest.from_json(req, where)
    where = request.label or where
    outputs = request.outputs
    layout = Path(outputs["oci_layout"])
    repository = request.repository
    digest = request.digest
    tag = request.tag
    if digest and not is_digest(digest):
        raise UserError(f"digest must be sha256:<64 hex> (got {digest!r})", where=where)
    if not digest and not tag:
        raise UserError(
            "give digest (or tag) of the image to pull (got neither); "
            "run `strata pull-digest REGISTRY/REPO:TAG` to get the digest",
            where=where,
        )
    client = request.endpoint.client(where)
    ref = parse_image_name(
        request.final_image_name or repository,
        request.final_image_tag or tag or None,
        default_tag="latest",
        where=where,
    )
    store = BlobStore(request.blob_store or default_blob_store())
    result = pull(client, store, repository, digest or tag, request.platform, layout, ref,
                  where, shallow=request.shallow)  # fmt: skip
    if not digest:
        print(
            f"warning: {where}: pulling {client.registry}/{repository} by tag {tag!r} is not "
            f'reproducible; pin it with: digest = "{result.digest}"',
            file=sys.stderr,
        )
    if "pull_info" in outputs:
        info = {
            "config_digest": result.config_digest,
            "digest": result.digest,
            "layout_manifest_digest": result.layout_manifest_digest,
            "manifest_digest": result.manifest_digest,
            "name": ref.name,
            "platform": str(result.platform),
            "registry": str(client.registry),
            "repository": repository,
            "tag": ref.tag,
        }
        write_bytes_atomic(field(outputs, "pull_info", str, where), json_bytes(info) + b"\n")
