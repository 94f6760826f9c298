"""Grouped layers kept as recipes: which byte ranges of which store path layers make them.

A layer grouping several store paths is their uncompressed layers joined
(strata.store.layer.concat_layers): each path's own entries whole, the
directories above them once, then two end blocks. A recipe is that layer not
written: the ranges, by index into the list of store path layers the action
was given, and the digest of the bytes they make, taken in one read. A
streamed image (StreamImage) reads the ranges as it streams, so building it
never stores a copy of its grouped layers, as nixpkgs' stream_layered_image
reads store paths as it streams.

Recipe file (JSON): {"parts": [[INDEX, START, END], ...], "trailer": 1024}.
Whoever reads one is given the same list of layers and checks every range
against the file it names: a recipe names no path, so a forged one reads
nothing but those layers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from strata.canonical import json_bytes, read_json
from strata.errors import UserError
from strata.oci.digest import DigestingWriter
from strata.oci.image import Join
from strata.oci.layer import LayerDescriptor
from strata.oci.tarwriter import BLOCK
from strata.store.layer import kept_spans, open_layer

TRAILER = 2 * BLOCK
_CHUNK = 8 << 20


def plan_join(
    tars: Sequence[str | os.PathLike[str]], spans: Sequence[tuple[int, int]]
) -> tuple[list[tuple[int, int, int]], LayerDescriptor]:
    """The ranges joining the uncompressed layers `tars` (`spans`: each one's own entries,
    from its listing) and the descriptor of the layer they make, read once, not written."""
    parts: list[tuple[int, int, int]] = []
    digests = DigestingWriter()
    seen: set[str] = set()
    buf = bytearray(_CHUNK)
    for i, (src, own) in enumerate(zip(tars, spans, strict=True)):
        where = os.fspath(src)
        with open_layer(src) as f:
            fd = f.fileno()
            for start, end in kept_spans(fd, seen, where, own):
                parts.append((i, start, end))
                while start < end:
                    got = os.preadv(fd, [memoryview(buf)[: min(_CHUNK, end - start)]], start)
                    if got == 0:
                        raise UserError(
                            "layer to join is shorter than its tar headers say; rebuild it",
                            where=where,
                        )
                    digests.write(memoryview(buf)[:got])
                    start += got
    digests.write(bytes(TRAILER))
    return parts, LayerDescriptor.from_writers(digests, digests, "none")


def recipe_bytes(parts: Sequence[tuple[int, int, int]]) -> bytes:
    return json_bytes({"parts": [list(p) for p in parts], "trailer": TRAILER})


def read_join(recipe: Path, sources: Sequence[Path], size: int, where: str) -> Join:
    """The recipe at `recipe`, its indices resolved in `sources`, every range checked
    against its file and the total against the descriptor's `size`."""
    fix = "rebuild it with LayerGroups"
    data = read_json(recipe, "join recipe", fix, where)
    parts = data.get("parts") if isinstance(data, dict) else None
    trailer = data.get("trailer") if isinstance(data, dict) else None
    if not isinstance(parts, list) or trailer != TRAILER:
        raise UserError(f"{recipe} is not a join recipe (got {str(data):.60}); {fix}", where=where)
    sizes: dict[int, int] = {}
    out: list[tuple[Path, int, int]] = []
    for part in parts:
        if not (
            isinstance(part, list)
            and len(part) == 3
            and all(type(n) is int for n in part)
            and 0 <= part[0] < len(sources)
            and 0 <= part[1] < part[2]
        ):
            raise UserError(
                f"{recipe}: a part is not [layer index < {len(sources)}, start, end] "
                f"(got {part!r:.60}); {fix}",
                where=where,
            )
        index, start, end = part
        if index not in sizes:
            try:
                sizes[index] = sources[index].stat().st_size
            except OSError as e:
                raise UserError(
                    f"store path layer {sources[index]} of a join cannot be read "
                    f"(got {e.strerror}); pass the store path layers LayerGroups was given",
                    where=where,
                ) from None
        if end > sizes[index]:
            raise UserError(
                f"{recipe}: range {start}-{end} is past the end of {sources[index]} "
                f"({sizes[index]} bytes); pass the store path layers LayerGroups was given",
                where=where,
            )
        out.append((sources[index], start, end))
    join = Join(tuple(out), trailer)
    if join.size != size:
        raise UserError(
            f"{recipe} makes {join.size} bytes, its descriptor says {size}; {fix}", where=where
        )
    return join
