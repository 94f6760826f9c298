"""Flattening an image's layers into one root-filesystem tar (dockerTools' exportImage).

Layers are applied in order as an overlay filesystem would: a later entry
replaces an earlier one at the same path (a non-directory replacing a
directory removes the directory's content), `.wh.<name>` deletes `<name>`
from the layers below, and `.wh..wh..opq` hides everything the layers below
put in its directory. Whiteouts never appear in the output.

Paths are resolved as a container runtime resolves them while unpacking:
inside the image's root, as a chroot would (strata.oci.rootfs). A symlink in
a member's parents is followed, its absolute target or `..` clamped at the
root, so a layer holding `x -> /` and then `x/etc/motd` exports the entry as
`etc/motd`, beside the link `x`, exactly what the container would see. The
same holds for whiteouts, opaque whiteouts and hard link targets. An entry
below a file is refused, as runtimes refuse to unpack it.

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
from strata.oci.compress import open_decompressed, reading_layer
from strata.oci.digest import DigestingWriter
from strata.oci.image import Blob
from strata.oci.rootfs import resolve
from strata.oci.tarwriter import TarWriter, check_id
from strata.oci.tree import sort_key
from strata.oci.whiteout import parse as parse_whiteout


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

    def _readlink(self, parts: tuple[str, ...]) -> str | None:
        node = self.nodes.get("/".join(parts))
        return node.target if node is not None and node.kind == "symlink" else None

    def resolve(self, name: str, where: str, *, follow_last: bool = False) -> str:
        """`name` with the symlinks in its parents followed, inside the root."""
        parts = resolve(name, self._readlink, follow_last=follow_last, where=where)
        return "/".join(parts)

    def remove_below(self, path: str, layer: int, *, keep_self: bool) -> None:
        """Drop `path` (unless `keep_self`) and everything under it from layers below `layer`."""
        prefix = path + "/" if path else ""
        for name in [n for n in self.nodes if n.startswith(prefix) or n == path]:
            if name == path and keep_self:
                continue
            if self.nodes[name].layer < layer:
                del self.nodes[name]

    def put(self, name: str, node: _Node, where: str) -> None:
        old = self.nodes.get(name)
        if old is not None and old.kind == "dir" and node.kind != "dir":
            prefix = name + "/"
            for n in [n for n in self.nodes if n.startswith(prefix)]:
                del self.nodes[n]
        parent = posixpath.dirname(name)
        while parent:
            found = self.nodes.get(parent)
            if found is not None and found.kind != "dir":
                raise UserError(
                    f"{parent} is not a directory, so the layer entry cannot go below it "
                    f"(got {name!r}); the image is malformed: rebuild it",
                    where=where,
                )
            if found is None:
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


def _apply_layer(root: _Root, blob: Blob, index: int, warnings: list[str], image: str) -> None:
    where = f"{image + ': ' if image else ''}layer {index} ({blob.digest})"
    with reading_layer(where), open_decompressed(blob.path) as raw:
        _apply_members(root, raw, index, where, warnings)


def _apply_members(
    root: _Root, raw: IO[bytes], index: int, where: str, warnings: list[str]
) -> None:
    with tarfile.open(fileobj=raw, mode="r|") as tf:
        for m in tf:
            lexical = _norm(m.name, where)
            if not lexical:
                continue
            wh = parse_whiteout(lexical)
            if wh is not None and wh.deletes_nothing:
                continue
            if wh is not None and wh.opaque:
                parent = root.resolve(wh.parent, where, follow_last=True)
                root.remove_below(parent, index, keep_self=True)
                continue
            name = root.resolve(lexical, where)
            if wh is not None:
                gone = posixpath.join(posixpath.dirname(name), wh.name)
                root.remove_below(gone, index, keep_self=False)
                continue
            mode = m.mode & 0o7777
            check_id(m.uid, f"{where}: {m.name}")
            check_id(m.gid, f"{where}: {m.name}")
            if m.isdir():
                root.put(name, _Node("dir", mode, m.uid, m.gid, index), where)
            elif m.issym():
                root.put(
                    name, _Node("symlink", 0o777, m.uid, m.gid, index, target=m.linkname), where
                )
            elif m.islnk():
                target = root.nodes.get(root.resolve(_norm(m.linkname, where), where))
                if target is None or target.kind != "file":
                    raise UserError(
                        f"hard link {m.name!r} points at a missing file (got {m.linkname!r}); "
                        "the image is malformed",
                        where=where,
                    )
                node = _Node("file", mode, m.uid, m.gid, index, target.size, target.content)
                root.put(name, node, where)
            elif m.isfile():
                content = root.stage_file(tf.extractfile(m))
                root.put(name, _Node("file", mode, m.uid, m.gid, index, m.size, content), where)
            else:
                warnings.append(
                    f"{where}: skipped {m.name!r}: device nodes, FIFOs and sockets are not "
                    "exported; create them at run time"
                )


def export_rootfs(
    layers: Sequence[Blob],
    out: str | os.PathLike[str],
    workdir: Path,
    *,
    mtime: int = 1,
    image: str = "",
) -> Exported:
    """Write the flattened root filesystem of `layers` as a plain tar at `out` (atomically).

    `image` names the image the layers come from in errors."""
    stage = workdir / "export-stage"
    stage.mkdir(parents=True, exist_ok=True)
    root = _Root(stage)
    warnings: list[str] = []
    for i, blob in enumerate(layers):
        _apply_layer(root, blob, i, warnings, image)
    with atomic_file(out, durable=False) as f:
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
