"""Blobs an OCI layout names but does not hold: where each one can be fetched.

A `pull_image(shallow = True)` base is its manifest and config only; its
layer blobs stay in the registry. The image layout spec allows exactly this
("the blobs directory MAY be missing referenced blobs, in which case the
missing blobs SHOULD be fulfilled by an external blob store"), and says
nothing of where that store is, so a layout with missing blobs says it in one
more file beside `index.json`:

    remote-blobs.json   {"blobs": {"sha256:<hex>": {"registry": "host[:port]" or
                         "http://host[:port]", "repository": "team/base",
                         "size": N}}, "version": 1}

JSON with sorted keys, so the file depends only on which blobs are missing and
where they came from. Every layout made from such a base (an image built
`from_image` it, an image index of it, an SBOM layout) holds the file too,
listing the base blobs it names and lacks; a layout holding every blob has no
such file. Manifests, configs and digests are the same as from a full pull:
only the bytes are elsewhere, so `index.json` and every blob the layout holds
are byte for byte what a full base gives.

Spec: https://github.com/opencontainers/image-spec/blob/main/image-layout.md#blobs
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.canonical import json_bytes, parse_json
from strata.errors import UserError
from strata.oci.digest import split_digest
from strata.oci.reference import check_repository

FILE = "remote-blobs.json"
VERSION = 1


@dataclass(frozen=True)
class Remote:
    """Where a blob that is not on this machine can be fetched: a registry and repository."""

    registry: str
    """As `pull_image` was given it: `host[:port]`, or `http://host[:port]` for plain HTTP."""
    repository: str
    size: int

    @property
    def host(self) -> str:
        return self.registry.partition("://")[2] or self.registry

    def __str__(self) -> str:
        return f"{self.host}/{self.repository}"


def read_remote_blobs(layout: Path, where: str) -> dict[str, Remote]:
    """The blobs `layout` names without holding them (none if it has no `remote-blobs.json`)."""
    path = layout / FILE
    if not path.is_file():
        return {}
    fix = "the layout is damaged: pull or build it again"
    obj = parse_json(path.read_bytes(), FILE, fix, where)
    blobs = obj.get("blobs") if isinstance(obj, dict) else None
    if not isinstance(obj, dict) or obj.get("version") != VERSION or not isinstance(blobs, dict):
        raise UserError(
            f"{FILE} is not a version {VERSION} list of remote blobs "
            f"(got {str(obj)[:80]!r}); {fix}",
            where=where,
        )
    out = {}
    for digest, entry in blobs.items():
        out[digest] = _remote(digest, entry, fix, where)
    return out


def _remote(digest: str, entry: Any, fix: str, where: str) -> Remote:
    try:
        split_digest(digest)
    except ValueError:
        raise UserError(
            f"{FILE} names a blob by a malformed digest (got {digest[:80]!r}); {fix}", where=where
        ) from None
    ok = isinstance(entry, dict) and set(entry) == {"registry", "repository", "size"}
    registry = entry.get("registry") if ok else None
    size = entry.get("size") if ok else None
    if (
        not isinstance(registry, str)
        or not registry
        or any(c in registry for c in "@ \n")
        or not isinstance(size, int)
        or isinstance(size, bool)
        or size < 0
    ):
        raise UserError(
            f"{FILE} entry of {digest} lacks registry, repository or size (got "
            f"{str(entry)[:80]!r}); {fix}",
            where=where,
        )
    repository = check_repository(str(entry.get("repository")), where)
    return Remote(registry, repository, size)


def remote_blobs_json(blobs: Mapping[str, Remote]) -> bytes:
    return json_bytes(
        {
            "blobs": {
                d: {"registry": r.registry, "repository": r.repository, "size": r.size}
                for d, r in sorted(blobs.items())
            },
            "version": VERSION,
        }
    )


def write_remote_blobs(layout: str | os.PathLike[str], blobs: Mapping[str, Remote]) -> None:
    """Write `remote-blobs.json` into a layout being made (nothing when no blob is missing)."""
    if blobs:
        (Path(layout) / FILE).write_bytes(remote_blobs_json(blobs))


def missing_bytes_error(missing: Iterable[tuple[str, Remote]], base: str) -> UserError:
    """The one line an output that needs base layer bytes gives for a shallow base."""
    items = list(missing)
    digest, remote = items[0]
    return UserError(
        f"this output needs the bytes of {len(items)} base layer(s) that are not on this "
        f"machine (got {digest} of {remote}, a shallow pull_image); set shallow = False on "
        "that pull_image (or build only the OCI layout and push it)",
        where=base,
    )
