"""Flattening an image's layers into one root-filesystem tar (dockerTools' exportImage).

Layers are applied in order as an overlay filesystem would: a later entry
replaces an earlier one at the same path (a non-directory replacing a
directory removes the directory's content), `.wh.<name>` deletes `<name>`
from the layers below, and `.wh..wh..opq` hides everything the layers below
put in its directory. Whiteouts never appear in the output.

Spec: https://github.com/opencontainers/image-spec/blob/main/layer.md#whiteouts

The result is written in `tar --sort=name` order with the lead tar writer:
fixed mtime, owners kept as numeric uid/gid (names dropped), hard links
stored as regular files. File contents are staged in a work directory while
layers stream past, so each layer is read once, never seeked.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from strata.errors import UserError
from strata.fsutil import atomic_file
from strata.oci.compress import open_decompressed
from strata.oci.digest import DigestingWriter
from strata.oci.image import Blob
from strata.oci.tarwriter import TarWriter
from strata.oci.tree import sort_key

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


@dataclass(frozen=True)
class _Node:
    kind: str  # "dir" | "file" | "symlink"
    mode: int
    uid: int
    gid: int
    layer: int
    size: int = 0
    content: str = ""
    target: str = ""


@dataclass(frozen=True)
class Exported:
    digest: str
    size: int
    warnings: tuple[str, ...]


def _norm(name: str, where: str) -> str:
    stripped = name.lstrip("/")
    norm = posixpath.normpath(stripped) if stripped else "."
    if norm == ".." or norm.startswith("../"):
        raise UserError(
            f"layer member escapes the root (got {name!r}); the image is malformed", where=where
        )
    return "" if norm == "." else norm


class _Root:
    def __init__(self, stage: Path) -> None:
        self.nodes: dict[str, _Node] = {}
        self.stage = stage
        self.count = 0

    def remove_below(self, path: str, layer: int, *, keep_self: bool) -> None:
        """Drop `path` (unless `keep_self`) and everything under it from layers below `layer`."""
        prefix = path + "/" if path else ""
        for name in [n for n in self.nodes if n.startswith(prefix) or n == path]:
            if name == path and keep_self:
                continue
            if self.nodes[name].layer < layer:
                del self.nodes[name]

    def put(self, name: str, node: _Node) -> None:
        old = self.nodes.get(name)
        if old is not None and old.kind == "dir" and node.kind != "dir":
            prefix = name + "/"
            for n in [n for n in self.nodes if n.startswith(prefix)]:
                del self.nodes[n]
        parent = posixpath.dirname(name)
        while parent and parent not in self.nodes:
            self.nodes[parent] = _Node("dir", 0o755, 0, 0, node.layer)
            parent = posixpath.dirname(parent)
        self.nodes[name] = node

    def stage_file(self, src: IO[bytes] | None) -> str:
        self.count += 1
        path = self.stage / str(self.count)
        with open(path, "wb") as f:
            if src is not None:
                shutil.copyfileobj(src, f, 1 << 20)
        return str(path)


def _apply_layer(root: _Root, blob: Blob, index: int, warnings: list[str]) -> None:
    where = f"layer {index} ({blob.digest})"
    with open_decompressed(blob.path) as raw, tarfile.open(fileobj=raw, mode="r|") as tf:
        for m in tf:
            name = _norm(m.name, where)
            base = posixpath.basename(name)
            parent = posixpath.dirname(name)
            if base == OPAQUE:
                root.remove_below(parent, index, keep_self=True)
                continue
            if base.startswith(WHITEOUT):
                root.remove_below(
                    posixpath.join(parent, base[len(WHITEOUT) :]), index, keep_self=False
                )
                continue
            if not name:
                continue
            mode = m.mode & 0o7777
            if m.isdir():
                root.put(name, _Node("dir", mode, m.uid, m.gid, index))
            elif m.issym():
                root.put(name, _Node("symlink", 0o777, m.uid, m.gid, index, target=m.linkname))
            elif m.islnk():
                target = root.nodes.get(_norm(m.linkname, where))
                if target is None or target.kind != "file":
                    raise UserError(
                        f"hard link {m.name!r} points at a missing file (got {m.linkname!r}); "
                        "the image is malformed",
                        where=where,
                    )
                root.put(
                    name, _Node("file", mode, m.uid, m.gid, index, target.size, target.content)
                )
            elif m.isfile():
                content = root.stage_file(tf.extractfile(m))
                root.put(name, _Node("file", mode, m.uid, m.gid, index, m.size, content))
            else:
                warnings.append(
                    f"{where}: skipped {m.name!r}: device nodes, FIFOs and sockets are not "
                    "exported; create them at run time"
                )


def export_rootfs(
    layers: Sequence[Blob], out: str | os.PathLike[str], workdir: Path, *, mtime: int = 1
) -> Exported:
    """Write the flattened root filesystem of `layers` as a plain tar at `out` (atomically)."""
    stage = workdir / "export-stage"
    stage.mkdir(parents=True, exist_ok=True)
    root = _Root(stage)
    warnings: list[str] = []
    for i, blob in enumerate(layers):
        _apply_layer(root, blob, i, warnings)
    with atomic_file(out) as f:
        sink = DigestingWriter(f)
        tar = TarWriter(sink, mtime=mtime)
        for name in sorted(root.nodes, key=sort_key):
            n = root.nodes[name]
            if n.kind == "dir":
                tar.add_dir(name, n.mode, uid=n.uid, gid=n.gid)
            elif n.kind == "symlink":
                tar.add_symlink(name, n.target, uid=n.uid, gid=n.gid)
            else:
                tar.add_file(name, n.content, n.size, n.mode, uid=n.uid, gid=n.gid)
        tar.close()
    return Exported(sink.digest, sink.size, tuple(warnings))
