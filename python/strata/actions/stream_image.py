"""`strata action StreamImage @request.json`: streamLayeredImage, the image never stored.

dockerTools.streamLayeredImage builds a script that writes the image's
docker-archive to stdout (`$(nix-build ...) | docker load`), so a large
image is never written to disk as one tarball: only its layers are (and
those are cached per store path). This action is that script: it reads the
layer blobs, generates config, manifest.json and repositories, and writes
the archive to stdout or a file descriptor. The bytes are exactly those
ImageAssemble stores as `docker_archive` for the same request (both go
through `strata.oci.docker_archive.stream_docker_archive`).

The request is `StreamImageRequest` below: an `ImageRequest`
(strata.actions.image_request, everything ImageAssemble takes except
`outputs`) and where to stream it. stdout that is a terminal is refused.
Warnings go to stderr.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from strata.actions.image_request import ImageRequest, build_image
from strata.errors import UserError
from strata.oci.docker_archive import compatibility_warnings, stream_docker_archive


@dataclass(frozen=True, kw_only=True)
class StreamImageRequest(ImageRequest):
    output: str = "-"
    """"-": stdout; "fd:N": an open file descriptor; else a file path (written as it
    streams, not atomically: that is the point of streaming)."""


def _open_output(output: str, where: str) -> tuple[BinaryIO, bool]:
    """(file object, whether we opened it and must close it)."""
    if output == "-":
        if sys.stdout.isatty():
            raise UserError(
                "refusing to write a docker-archive to a terminal (got stdout); "
                "redirect it: `... > image.tar` or `| docker load`",
                where=where,
            )
        sys.stdout.flush()
        return sys.stdout.buffer, False
    if output.startswith("fd:"):
        try:
            fd = int(output[3:])
            return os.fdopen(fd, "wb", closefd=False), True
        except (ValueError, OSError) as e:
            raise UserError(
                f"output is not an open file descriptor (got {output!r}: {e}); "
                'use "fd:N" with an inherited descriptor',
                where=where,
            ) from None
    return open(output, "wb"), True  # noqa: SIM115 - closed below


def run(req: dict[str, Any], where: str) -> None:
    request = StreamImageRequest.from_json(req, where)
    output = request.output
    with tempfile.TemporaryDirectory(prefix="strata-stream-") as work:
        # Everything is checked and decided before the first byte goes out.
        result = build_image(request, where, Path(work), need_bytes=True)
        for warning in [*result.warnings, *compatibility_warnings([result.image])]:
            print(f"warning: {where}: {warning}", file=sys.stderr)
        f, close = _open_output(output, where)
        try:
            stream_docker_archive(f, [result.image])
            f.flush()
        finally:
            if close:
                f.close()
