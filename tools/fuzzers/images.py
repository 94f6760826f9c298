"""Base-image readers: docker-archive files and OCI layout directories.

Inputs start from a consistent image (config digest naming the config,
layer digests and diff_ids right) whose JSON documents, member names and
bytes are then bent, so the readers' later checks are reached too.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from fuzzers.gen import (
    BOOLS,
    COMPRESSIONS,
    ONE_IN_TEN,
    TAR_FORMAT,
    damage,
    json_doc,
    layer,
    members,
    seeded,
    sha256,
    tar_of,
)
from fuzzers.harness import Files, Target, write_files
from strata.oci.base import Selector, load_base, read_all_docker_archive
from strata.oci.compress import detect_compressor
from strata.registry.push_source import read_archive, read_layout

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_HOWS = st.lists(st.sampled_from(COMPRESSIONS), max_size=3)
_STYLES = st.sampled_from(["legacy", "blobs"])


def _diff_id(blob: bytes) -> str:
    kind = detect_compressor(blob[:4])
    if kind == "gzip":
        try:
            return sha256(gzip.decompress(blob))
        except (OSError, EOFError, zlib.error):
            return sha256(blob)
    return sha256(blob)  # zstd and damaged blobs: a wrong diff_id is a fine input too


def _config(diff_ids: list[str]) -> dict[str, Any]:
    return {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }


@st.composite
def docker_archives(draw: Any) -> Files:
    rng = draw(seeded())
    hows = draw(_HOWS)
    layers = [layer(rng, how) for how in hows]
    config = json_doc(rng, _config([_diff_id(b) for b in layers]))
    style = draw(_STYLES)
    files: dict[str, bytes] = {}
    if style == "legacy":
        config_name = sha256(config)[7:] + ".json"
        layer_names = [f"{sha256(b)[7:15]}{i}/layer.tar" for i, b in enumerate(layers)]
    else:
        config_name = "blobs/sha256/" + sha256(config)[7:]
        layer_names = ["blobs/sha256/" + sha256(b)[7:] for b in layers]
    files[config_name] = config
    files.update(zip(layer_names, layers, strict=True))
    manifest = [{"Config": config_name, "Layers": layer_names, "RepoTags": ["img:latest"]}]
    files["manifest.json"] = json_doc(rng, manifest)
    names = [*files, "manifest.json", "x", "../x", "/etc/passwd"]
    extra = members(rng, names, n=3) if draw(BOOLS) else []
    archive = tar_of(files, extra, fmt=draw(TAR_FORMAT))
    return {"archive.tar": damage(rng, archive, 0.3)}


def run_docker_archive(files: Files, scratch: Path) -> str:
    write_files(files, scratch)
    path = scratch / "archive.tar"
    work = scratch / "work"
    base = load_base(path, Selector(), work)
    read_all_docker_archive(path, work)
    read_archive(path, "", work)
    return f"{len(base.layers)} layers"


@st.composite
def oci_layouts(draw: Any) -> Files:
    blobs: dict[str, bytes] = {}

    def put(data: bytes) -> dict[str, Any]:
        blobs[sha256(data)[7:]] = data
        return {"digest": sha256(data), "size": len(data)}

    rng = draw(seeded())
    layers = [layer(rng, how) for how in draw(_HOWS)]
    config = json_doc(rng, _config([_diff_id(b) for b in layers]))
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **put(config)},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", **put(b)} for b in layers
        ],
    }
    desc = {
        "mediaType": OCI_MANIFEST,
        **put(json_doc(rng, manifest)),
        "platform": {"architecture": "amd64", "os": "linux"},
        "annotations": {"org.opencontainers.image.ref.name": "latest"},
    }
    if draw(BOOLS):  # a nested index
        nested = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc]}
        desc = {"mediaType": OCI_INDEX, **put(json_doc(rng, nested))}
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc]}
    files = {f"blobs/sha256/{h}": data for h, data in blobs.items()}
    files["index.json"] = json_doc(rng, index)
    files["oci-layout"] = json_doc(rng, {"imageLayoutVersion": "1.0.0"}, max_edits=1)
    if draw(ONE_IN_TEN) == 0:  # a file lost
        del files[rng.choice(sorted(files))]
    return files


def run_oci_layout(files: Files, scratch: Path) -> str:
    layout = scratch / "layout"
    layout.mkdir()
    write_files(files, layout)
    base = load_base(layout, Selector(), scratch / "work")
    read_layout(layout)
    return f"{len(base.layers)} layers"


TARGETS = [
    Target(
        "docker-archive",
        "oci/base.py docker-archive reader (load_base, read_all_docker_archive) and push's"
        " read_archive",
        docker_archives(),
        run_docker_archive,
    ),
    Target(
        "oci-layout",
        "oci/base.py OCI layout reader (load_base) and push's read_layout",
        oci_layouts(),
        run_oci_layout,
    ),
]
