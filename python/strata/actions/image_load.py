"""`ImageLoad`: load a docker-archive into Docker, sending only the layers it lacks.

The request is `ImageLoadRequest` below.

Run by the `image_load` rule's run script (`strata run //app:load`), never as
a build action. The daemon is asked which layers it has (by chain ID), and
`docker load` gets the archive without them (strata.oci.docker_load). When
the daemon cannot be asked, or the partial load fails (a layer removed since
it was asked), the full archive is sent instead, with a one-line note.
Prints what `docker load` prints, then the bytes sent against the archive's
size (on stderr, as image_push's summary).
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.actions.request import Request
from strata.errors import UserError
from strata.oci.docker_daemon import DaemonQueryError, LoadResult, docker_load, present_chain_ids
from strata.oci.docker_load import ArchiveIndex, index_archive, layers_to_omit, stream_partial


@dataclass(frozen=True, kw_only=True)
class ImageLoadRequest(Request):
    where_key = "label"
    label: str = ""
    """The image_load target (`//app:load`), named by errors; "": the request file."""
    docker: str = "docker"
    """The docker program."""
    image: str
    """The docker-archive (an image's tarball output group)."""


def _load(docker: str, index: ArchiveIndex, omit: frozenset[str]) -> LoadResult:
    return docker_load(docker, functools.partial(stream_partial, index, omit))


def _reason(result: LoadResult) -> str:
    lines = result.stderr.strip().splitlines() or [f"exit {result.returncode}"]
    return lines[-1]


def run(req: dict[str, Any], where: str) -> None:
    request = ImageLoadRequest.from_json(req, where)
    where = request.label or where
    docker = request.docker
    index = index_archive(Path(request.image))
    notes = []
    try:
        omit = layers_to_omit(index, present_chain_ids(docker))
    except DaemonQueryError as e:
        omit = frozenset()
        notes.append(
            f"note: {where}: cannot ask the daemon which layers it has ({e}); "
            "sending the full archive"
        )
    result = _load(docker, index, omit)
    if result.returncode != 0 and omit:
        notes.append(
            f"note: {where}: the load without the daemon's layers failed ({_reason(result)}); "
            "sending the full archive"
        )
        omit = frozenset()
        result = _load(docker, index, omit)
    for note in notes:
        print(note, file=sys.stderr)
    if result.returncode != 0:
        raise UserError(
            f"docker load failed (got {_reason(result)}); check the daemon with docker info",
            where=where,
        )
    sys.stdout.write(result.stdout)
    layers = len(index.layer_chains)
    print(
        f"sent {result.sent} bytes of the {index.size}-byte image archive: "
        f"{layers - len(omit)} of {layers} layers (the daemon had {len(omit)})",
        file=sys.stderr,
    )
