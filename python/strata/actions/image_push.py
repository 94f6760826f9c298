"""`ImagePush`: push an OCI layout or docker-archive to a registry, only what is missing.

Request (keys sorted, `schema_version` 1):

    image               an OCI layout directory or a docker-archive file
    image_name          which image of a docker-archive holding several (optional)
    label               the image_push target (`//app:push`), named by errors (optional;
                        default: the request file)
    registry            host[:port], optionally with http:// or https://
    repository          e.g. "team/app"
    tags                ["v1", ...]; none pushes by digest only
    mount_from          optional repository of the same registry to mount blobs from
    tls_verify          default true; ca_file: a PEM file of CAs to trust
    outputs             optional {"push_info": path}

Run by the `image_push` rule's run script (`strata run //img:push`), never as a
build action. Prints `<registry>/<repository>@<digest>` and what was uploaded.
Referrers an OCI layout holds (an image's `.sbom.oci`: its SBOMs) are pushed
after the image, by the referrers API or the tag schema (strata.registry.referrers).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from strata.actions.registry_request import client_from
from strata.actions.request import check_keys, field
from strata.canonical import json_bytes
from strata.errors import UserError
from strata.fsutil import write_bytes_atomic
from strata.oci.reference import check_repository, check_tag
from strata.registry.push import push
from strata.registry.referrers import layout_referrers, push_referrers

_KEYS = {
    "ca_file",
    "image",
    "image_name",
    "label",
    "mount_from",
    "outputs",
    "registry",
    "repository",
    "schema_version",
    "tags",
    "tls_verify",
}


def run(req: dict[str, Any], where: str) -> None:
    check_keys(req, _KEYS, where)
    # The user ran a target, not a request file: name the target.
    where = field(req, "label", str, where, where) or where
    tags = field(req, "tags", list, where, [])
    if not all(isinstance(t, str) and t for t in tags):
        raise UserError(f"tags must be a list of non-empty strings (got {tags!r})", where=where)
    for tag in tags:
        check_tag(tag, where)
    outputs = field(req, "outputs", dict, where, {})
    check_keys(outputs, ("push_info",), where)
    client = client_from(req, where)
    # Names go into registry URLs: the same grammar the image_push rule checks.
    repository = check_repository(field(req, "repository", str, where), where)
    mount_from = field(req, "mount_from", str, where, "")
    if mount_from:
        check_repository(mount_from, where, "mount_from")
    result = push(
        client,
        repository,
        field(req, "image", str, where),
        tags,
        name=field(req, "image_name", str, where, ""),
        mount_from=mount_from,
        where=where,
    )
    image = Path(field(req, "image", str, where))
    referred = []
    if image.is_dir():
        found = layout_referrers(image, where)
        referred = push_referrers(client, repository, found, result.counters, where=where)
    c = result.counters
    print(f"{client.registry}/{repository}@{result.digest}")
    for r in referred:
        how = f"tag {r.fallback_tag}" + ("" if r.fallback_changed else " (unchanged)")
        print(
            f"referrers of {r.subject}: {len(r.pushed)} ("
            + (how if r.fallback_tag else "referrers API")
            + ")",
            file=sys.stderr,
        )
    print(
        f"uploaded {c.blobs_uploaded} blobs ({c.bytes_uploaded} bytes), skipped "
        f"{c.blobs_skipped} already present, mounted {c.blobs_mounted}; tags: "
        + (", ".join(result.tags) or "none"),
        file=sys.stderr,
    )
    if "push_info" in outputs:
        info = result.to_json() | {"registry": str(client.registry), "repository": repository}
        write_bytes_atomic(field(outputs, "push_info", str, where), json_bytes(info) + b"\n")
