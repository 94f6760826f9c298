"""`ImagePush`: push an OCI layout or docker-archive to a registry, only what is missing.

The request is `ImagePushRequest` below.

Run by the `image_push` rule's run script (`strata run //img:push`), never as a
build action. Prints `<registry>/<repository>@<digest>` and what was uploaded.
Referrers an OCI layout holds (an image's `.sbom.oci`: its SBOMs) are pushed
after the image, by the referrers API or the tag schema (strata.registry.referrers).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.actions.registry_request import ENDPOINT_KEYS, Endpoint, endpoint_from, repository_from
from strata.actions.request import Request, check_keys, field, read_with
from strata.canonical import json_bytes
from strata.errors import UserError
from strata.fsutil import write_bytes_atomic
from strata.oci.reference import check_repository, check_tag
from strata.registry.push import push
from strata.registry.referrers import layout_referrers, push_referrers


def _tags(req: dict[str, Any], where: str) -> list[str]:
    tags: list[str] = field(req, "tags", list, where, [])
    if not all(isinstance(t, str) and t for t in tags):
        raise UserError(f"tags must be a list of non-empty strings (got {tags!r})", where=where)
    for tag in tags:
        check_tag(tag, where)
    return tags


def _outputs(req: dict[str, Any], where: str) -> dict[str, Any]:
    outputs: dict[str, Any] = field(req, "outputs", dict, where, {})
    check_keys(outputs, ("push_info",), where)
    return outputs


def _mount_from(req: dict[str, Any], where: str) -> str:
    mount_from: str = field(req, "mount_from", str, where, "")
    if mount_from:
        check_repository(mount_from, where, "mount_from")
    return mount_from


@dataclass(frozen=True, kw_only=True)
class ImagePushRequest(Request):
    # The user ran a target, not a request file: errors name the target.
    where_key = "label"
    label: str = ""
    """The image_push target (`//app:push`); "": the request file."""
    tags: list[str] = read_with(_tags)
    """["v1", ...]; none pushes by digest only."""
    outputs: dict[str, Any] = read_with(_outputs)
    """Optional {"push_info": path}."""
    endpoint: Endpoint = read_with(endpoint_from, keys=ENDPOINT_KEYS)
    """`registry` (host[:port], optionally with http:// or https://), `tls_verify`
    (default true), `ca_file` (a PEM file of CAs to trust), `timeout`."""
    repository: str = read_with(repository_from)
    """E.g. "team/app"."""
    mount_from: str = read_with(_mount_from)
    """A repository of the same registry to mount blobs from ("": none)."""
    image: str
    """An OCI layout directory or a docker-archive file."""
    image_name: str = ""
    """Which image of a docker-archive holding several."""


def run(req: dict[str, Any], where: str) -> None:
    request = ImagePushRequest.from_json(req, where)
    where = request.label or where
    tags = request.tags
    outputs = request.outputs
    client = request.endpoint.client(where)
    repository = request.repository
    result = push(
        client,
        repository,
        request.image,
        tags,
        name=request.image_name,
        mount_from=request.mount_from,
        where=where,
    )
    image = Path(request.image)
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
