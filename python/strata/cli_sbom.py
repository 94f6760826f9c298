"""`strata sbom TARGET`: build an image target's `sbom` output group and summarise it."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from strata.errors import UserError


def add_sbom_command(
    sub: Any, add_common: Callable[..., None], run: Callable[[argparse.Namespace], int]
) -> None:
    p = sub.add_parser("sbom", help="build an image's SBOM and print a summary: sbom TARGET")
    p.add_argument("target", metavar="TARGET")
    add_common(p, build=True)
    p.set_defaults(func=run)


def cyclonedx_files(built: list[str], target: str) -> list[str]:
    """The CycloneDX documents among a target's built `sbom` files; none is a user mistake."""
    found = sorted(f for f in built if f.endswith(".cdx.json"))
    if not found:
        raise UserError(
            "not an image target (got no output group 'sbom'); name a docker_image, "
            "layered_image, stream_layered_image, run_as_root, merge_images or image_index",
            where=target,
        )
    return found


def print_summaries(paths: list[tuple[Path, str]]) -> None:
    """Print the summary of each (document, the name to show it by)."""
    from strata.sbom.summary import summary_lines

    for i, (path, shown) in enumerate(paths):
        if i:
            print()
        doc = json.loads(path.read_bytes())
        print("\n".join(summary_lines(doc)))
        print(f"(SBOM: {shown}, {shown[: -len('.cdx.json')]}.spdx.json)")
    sys.stdout.flush()
