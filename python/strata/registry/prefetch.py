"""Pinning a remote image: `REGISTRY/REPO:TAG` → the digest and a ready `pull_image(...)`.

What nix-prefetch-docker does for dockerTools.pullImage: resolve a tag once,
by hand, and write the digest into the BUILD file, so builds never follow a
moving tag. The platform is checked against the index now, so the snippet
works when the repository rule runs.

Reference grammar (registry host detection as docker does it):
https://github.com/distribution/reference/blob/main/normalize.go
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from strata.errors import UserError
from strata.oci.platform import Platform
from strata.oci.reference import is_repository, is_tag
from strata.registry.client import RegistryClient
from strata.registry.endpoint import Registry
from strata.registry.fetch import INDEX_TYPES, get_manifest, is_digest
from strata.registry.pull import choose_manifest

DOCKER_HUB = "docker.io"


@dataclass(frozen=True)
class RemoteRef:
    """A parsed `[host[:port]/]repo[:tag][@digest]`; the registry may carry http://."""

    registry: str
    repository: str
    tag: str = ""
    digest: str = ""


def parse_remote_ref(text: str, where: str = "image") -> RemoteRef:
    raw = text.strip()
    scheme = ""
    if "://" in raw:
        scheme, _, raw = raw.partition("://")
        scheme += "://"
    name, _, digest = raw.partition("@")
    slash, colon = name.rfind("/"), name.rfind(":")
    tag = ""
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, repository = scheme + first, rest
    else:
        registry, repository = scheme + DOCKER_HUB, name
        if "/" not in repository:
            repository = "library/" + repository
    if digest and not is_digest(digest):
        raise UserError(f"invalid digest (got {digest!r}); use sha256:<64 hex>", where=where)
    for what, value, valid in (
        ("repository", repository, is_repository(repository)),
        ("tag", tag, not tag or is_tag(tag)),
    ):
        if not valid:
            raise UserError(
                f"invalid {what} (got {value!r} in {text!r}); use "
                "REGISTRY/REPOSITORY:TAG, e.g. registry.example.com:5000/team/app:1.0",
                where=where,
            )
    if not tag and not digest:
        tag = "latest"
    return RemoteRef(registry, repository, tag, digest)


@dataclass(frozen=True)
class Pinned:
    ref: RemoteRef
    digest: str
    platform: Platform
    index: bool


def pin(client: RegistryClient, ref: RemoteRef, platform: Platform, where: str) -> Pinned:
    """Resolve `ref` to a digest and check that `platform` is available under it."""
    top = get_manifest(client, ref.repository, ref.digest or ref.tag, where)
    if top.media_type in INDEX_TYPES:
        choose_manifest(top.json(where), platform, where)
    return Pinned(ref, top.digest, platform, top.media_type in INDEX_TYPES)


def _starlark_name(repository: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", repository.rsplit("/", 1)[-1]) or "image"


def pull_image_snippet(
    pinned: Pinned, registry: Registry, tls_verify: bool = True, ca_file: str = ""
) -> str:
    """The `pull_image(...)` call to paste into WORKSPACE: what it took to reach the
    registry here (`ca_file`, `tls_verify`) is in it, so the build reaches it too."""
    ref = pinned.ref
    lines = [
        "pull_image(",
        f'    name = "{_starlark_name(ref.repository)}",',
        f'    registry = "{registry}",',
        f'    repository = "{ref.repository}",',
        f'    digest = "{pinned.digest}",',
    ]
    if ref.tag:
        lines.append(f'    # tag = "{ref.tag}" resolved to the digest above; pin, do not follow')
    if pinned.index or pinned.platform.architecture != "amd64":
        lines += [
            f'    os = "{pinned.platform.os}",',
            f'    architecture = "{pinned.platform.architecture}",',
        ]
        if pinned.platform.variant:
            lines.append(f'    variant = "{pinned.platform.variant}",')
    if not tls_verify:
        lines.append("    tls_verify = False,")
    elif ca_file and registry.scheme == "https":
        lines.append(f"    ca_file = {json.dumps(ca_file, ensure_ascii=False)},")
    lines.append(")")
    return "\n".join(lines) + "\n"
