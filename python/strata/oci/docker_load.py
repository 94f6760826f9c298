"""A docker-archive without the layers a Docker daemon already has.

`docker load` with Docker's own layer store (moby `image/tarexport/load.go`,
Docker 17 to 2x) walks each image's `rootfs.diff_ids`, takes the chain ID of
every prefix, and opens a layer's file in the archive only when the layer
store lacks that chain ID. An archive whose `manifest.json` still lists every
layer, but which leaves out the members of layers the daemon has, therefore
loads the same image while carrying only the new layers. If such a layer is
gone by the time the daemon looks (an image removed meanwhile), the load fails
with `open .../<member>: no such file or directory`, never with a wrong image.

Chain IDs: https://github.com/opencontainers/image-spec/blob/main/config.md#layer-chainid

The archive is one strata wrote (ImageArchive): an uncompressed tar. Members
kept are copied byte for byte, headers included, so the partial archive is
the full one with some members cut out.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.errors import UserError
from strata.oci.tarscan import REGULAR_TYPES, Header, TarFormatError, scan
from strata.oci.tarwriter import Sink

_CHUNK = 1 << 20
_END = b"\0" * 1024
"""Two zero blocks: the end of a tar archive."""


def chain_ids(diff_ids: Iterable[str]) -> list[str]:
    """The chain ID of each prefix of `diff_ids` (the layer store's key for it)."""
    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            chain = hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest()
            out.append("sha256:" + chain)
    return out


@dataclass(frozen=True)
class ArchiveIndex:
    path: Path
    size: int
    """Bytes of the whole archive file: what a full load sends."""
    members: tuple[Header, ...]
    """Every member, where its blocks start (extension headers included) and end."""
    layer_chains: Mapping[str, frozenset[str]]
    """Layer member name → every chain ID the manifest uses it at (a layer shared by two
    images of a merge may sit at different depths)."""


def _bad(path: Path, what: str) -> UserError:
    return UserError(
        f"not a docker-archive strata can load ({what}); rebuild the image's tarball",
        where=str(path),
    )


def index_archive(path: Path) -> ArchiveIndex:
    """Read the member table, manifest.json and configs of the docker-archive at `path`."""
    try:
        with open(path, "rb") as f:
            members = tuple(scan(f.fileno()))
            files = {h.name: h for h in members if h.kind in REGULAR_TYPES}

            def read(name: Any) -> Any:
                h = files.get(name) if isinstance(name, str) else None
                if h is None:
                    raise _bad(path, f"no member {name!r}")
                try:
                    return json.loads(os.pread(f.fileno(), h.size, h.data))
                except (json.JSONDecodeError, UnicodeDecodeError):
                    raise _bad(path, f"member {name!r} is not JSON") from None

            chains: dict[str, set[str]] = {}
            manifest = read("manifest.json")
            for entry in manifest if isinstance(manifest, list) else [None]:
                if not isinstance(entry, dict) or not isinstance(entry.get("Layers"), list):
                    raise _bad(path, "a manifest.json entry has no Layers list")
                config = read(entry.get("Config"))
                rootfs = config.get("rootfs") if isinstance(config, dict) else None
                diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
                if not isinstance(diff_ids, list) or len(diff_ids) != len(entry["Layers"]):
                    raise _bad(path, "manifest.json and config disagree on the layers")
                for name, chain in zip(entry["Layers"], chain_ids(diff_ids), strict=True):
                    chains.setdefault(name, set()).add(chain)
    except TarFormatError as e:
        raise _bad(path, str(e)) from None
    return ArchiveIndex(
        path,
        path.stat().st_size,
        members,
        {name: frozenset(c) for name, c in chains.items()},
    )


def layers_to_omit(index: ArchiveIndex, present: frozenset[str]) -> frozenset[str]:
    """Layer members the daemon needs no file for: it has them at every place they are used."""
    return frozenset(name for name, chains in index.layer_chains.items() if chains <= present)


def stream_partial(index: ArchiveIndex, omit: frozenset[str], sink: Sink) -> None:
    """Write the archive at `index.path` without the members in `omit` to `sink`
    (with none to omit: the file as it is)."""
    with open(index.path, "rb") as f:
        if not omit:
            while chunk := f.read(_CHUNK):
                sink.write(chunk)
            return
        for member in index.members:
            if member.name in omit:
                continue
            f.seek(member.start)
            left = member.end - member.start
            while left > 0:
                chunk = f.read(min(left, _CHUNK))
                if not chunk:
                    raise _bad(index.path, f"member {member.name!r} is cut short")
                sink.write(chunk)
                left -= len(chunk)
    sink.write(_END)
