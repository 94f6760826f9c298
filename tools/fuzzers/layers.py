"""Tar readers of layers: export (flatten), run_as_root's unpacking, store path listings."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from fuzzers.gen import (
    COMPRESSIONS,
    TAR_FORMAT,
    damage,
    layer,
    members,
    path,
    seeded,
    sha256,
    tar_of,
)
from fuzzers.harness import Files, Target, write_files
from strata.actions.run_as_root import apply_layer
from strata.oci.export import export_rootfs
from strata.oci.image import Blob
from strata.oci.rootfs import copy_slice
from strata.store.listing import StoreView, read_members

STORE_PATH = "/nix/store/00000000000000000000000000000000-x"
_HOWS = st.lists(st.sampled_from(COMPRESSIONS), min_size=1, max_size=3)


@st.composite
def layer_stacks(draw: Any) -> Files:
    """One to three layers, applied in order (names `layer-<i>`)."""
    rng = draw(seeded())
    hows = draw(_HOWS)
    return {f"layer-{i}": layer(rng, how) for i, how in enumerate(hows)}


def _blobs(files: Files, scratch: Path) -> list[Blob]:
    write_files(files, scratch / "in")
    out = []
    for name in sorted(files):
        data = files[name]
        out.append(Blob(scratch / "in" / name, sha256(data), len(data), sha256(data), "none"))
    return out


def run_export(files: Files, scratch: Path) -> str:
    exported = export_rootfs(_blobs(files, scratch), scratch / "out.tar", scratch / "work")
    return f"{len(exported.warnings)} warnings"


def run_unpack(files: Files, scratch: Path) -> str:
    root = scratch / "root"
    root.mkdir()
    for blob in _blobs(files, scratch):
        apply_layer(root, str(blob.path), f"layer {blob.path.name}")
    return "ok"


@st.composite
def store_layers(draw: Any) -> Files:
    """A StorePath-style layer: members under STORE_PATH (and a few elsewhere)."""
    rng = draw(seeded())
    top = STORE_PATH.lstrip("/")
    names = [top] + [top + "/" + path(rng).lstrip("/") for _ in range(8)]
    base = [
        ("nix", tarfile.DIRTYPE, "", b"", 0o755, 0, 0),
        ("nix/store", tarfile.DIRTYPE, "", b"", 0o755, 0, 0),
        (STORE_PATH.lstrip("/"), tarfile.DIRTYPE, "", b"", 0o755, 0, 0),
    ]
    items = base + members(rng, names)
    data = tar_of({}, items, fmt=draw(TAR_FORMAT))
    return {"layer": damage(rng, data, 0.3)}


def run_listing(files: Files, scratch: Path) -> str:
    write_files(files, scratch)
    layer = str(scratch / "layer")
    found = read_members(layer, STORE_PATH, "fuzz")
    view = StoreView({STORE_PATH: layer}, "fuzz")
    for name, m in sorted(found.items()):
        view.resolve(f"{STORE_PATH}/{name}" if name else STORE_PATH)
        if m.kind == "file":
            copy_slice(view.data(STORE_PATH, m), io.BytesIO())  # as a layer writer copies it
    return f"{len(found)} members"


TARGETS = [
    Target("layer-export", "oci/export.py export_rootfs (exportImage)", layer_stacks(), run_export),
    Target(
        "layer-unpack",
        "actions/run_as_root.py apply_layer over oci/rootfs.py (runAsRoot's unpacking)",
        layer_stacks(),
        run_unpack,
    ),
    Target(
        "store-listing",
        "store/listing.py read_members and StoreView (store paths read from their layer)",
        store_layers(),
        run_listing,
    ),
]
