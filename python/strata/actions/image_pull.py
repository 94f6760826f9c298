"""`ImagePull`: fetch one image by digest from a registry into an OCI image layout.

Request (keys sorted, `schema_version` 1):

    registry            host[:port], optionally with http:// or https://
    repository          e.g. "library/busybox"
    digest              "sha256:..." (the reproducible way)
    tag                 allowed without a digest, with a warning naming the digest to pin
    os, architecture, variant   which image of an index (default linux/x86_64)
    tls_verify          default true; ca_file: a PEM file of CAs to trust
    label               what errors name (`@busybox`, the pull_image repository;
                        default: the request file)
    final_image_name, final_image_tag   the name the layout's image carries
    shallow             default false; true fetches manifest, index and config only: the
                        layout lacks the layer blobs and lists them in remote-blobs.json
    blob_store          shared directory of blobs by digest (default ~/.cache/strata/blobs)
    timeout             seconds the whole pull may take (default: no bound); every read is
                        also bounded (60 s) and must keep up 1 KiB/s over each minute
    outputs             {"oci_layout": dir, "pull_info": path (optional)}

Not a build action (it needs the network): the `pull_image` repository rule
and `strata pull-digest` run it. Warnings go to stderr; the layout appears
whole or not at all.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from strata.actions.registry_request import client_from, platform_from
from strata.actions.request import check_keys, field
from strata.canonical import json_bytes
from strata.errors import UserError
from strata.fsutil import write_bytes_atomic
from strata.oci.reference import check_repository, check_tag, parse_image_name
from strata.registry.blobstore import BlobStore, default_blob_store
from strata.registry.pull import is_digest, pull

_KEYS = {
    "architecture",
    "blob_store",
    "ca_file",
    "digest",
    "final_image_name",
    "final_image_tag",
    "label",
    "os",
    "outputs",
    "registry",
    "repository",
    "schema_version",
    "shallow",
    "tag",
    "timeout",
    "tls_verify",
    "variant",
}


def run(req: dict[str, Any], where: str) -> None:
    check_keys(req, _KEYS, where)
    # The user wrote a pull_image, not a request file: name the repository.
    where = field(req, "label", str, where, where) or where
    outputs = field(req, "outputs", dict, where)
    check_keys(outputs, ("oci_layout", "pull_info"), where)
    layout = Path(field(outputs, "oci_layout", str, where))
    repository = check_repository(field(req, "repository", str, where), where)
    digest = field(req, "digest", str, where, "")
    tag = field(req, "tag", str, where, "")
    if tag:
        check_tag(tag, where)
    if digest and not is_digest(digest):
        raise UserError(f"digest must be sha256:<64 hex> (got {digest!r})", where=where)
    if not digest and not tag:
        raise UserError(
            "give digest (or tag) of the image to pull (got neither); "
            "run `strata pull-digest REGISTRY/REPO:TAG` to get the digest",
            where=where,
        )
    client = client_from(req, where)
    ref = parse_image_name(
        field(req, "final_image_name", str, where, "") or repository,
        field(req, "final_image_tag", str, where, "") or tag or None,
        default_tag="latest",
        where=where,
    )
    store = BlobStore(field(req, "blob_store", str, where, "") or default_blob_store())
    shallow = field(req, "shallow", bool, where, False)
    result = pull(client, store, repository, digest or tag, platform_from(req, where), layout, ref,
                  where, shallow=shallow)  # fmt: skip
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
