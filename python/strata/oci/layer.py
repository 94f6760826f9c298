"""Writing one layer blob in a single pass, and the descriptor that names it.

tar → sha256 (diff_id) → compressor → sha256 (blob digest) → file: every byte
is produced once and digested as it flows past; nothing is tarred twice and
the blob is never re-read. The blob appears atomically under its final name.

The descriptor JSON (`LayerDescriptor.to_json`) is the contract between the
layer actions and image assembly.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

from strata import written
from strata.canonical import json_bytes
from strata.errors import UserError
from strata.fsutil import atomic_file, write_bytes_atomic
from strata.oci.compress import compressing, layer_media_type
from strata.oci.digest import DigestingWriter
from strata.oci.pipeline import BackgroundSink
from strata.oci.tarwriter import TarWriter
from strata.oci.tree import BYTES, DIR, FILE, SYMLINK, Entry

DEFAULT_MTIME = 1  # 1970-01-01T00:00:01Z, as dockerTools uses


@dataclass(frozen=True)
class Ownership:
    uid: int = 0
    gid: int = 0
    uname: str = ""
    gname: str = ""
    mtime: int = DEFAULT_MTIME


@dataclass(frozen=True)
class LayerDescriptor:
    digest: str
    """sha256 of the blob as stored (compressed, if it is)."""
    size: int
    diff_id: str
    """sha256 of the uncompressed tar: what the image config lists."""
    uncompressed_size: int
    compressor: str
    media_type: str
    """OCI media type; Docker manifests use `compress.layer_media_type(c, docker=True)`."""

    def to_json(self) -> dict[str, Any]:
        return {
            "compressor": self.compressor,
            "diff_id": self.diff_id,
            "digest": self.digest,
            "media_type": self.media_type,
            "size": self.size,
            "uncompressed_size": self.uncompressed_size,
        }

    @classmethod
    def from_writers(
        cls, blob: DigestingWriter, raw: DigestingWriter, compressor: str
    ) -> LayerDescriptor:
        """The descriptor of a layer just written: `blob` saw the stored bytes, `raw` the tar."""
        return cls(
            digest=blob.digest,
            size=blob.size,
            diff_id=raw.digest,
            uncompressed_size=raw.size,
            compressor=compressor,
            media_type=layer_media_type(compressor),
        )

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "layer descriptor") -> LayerDescriptor:
        try:
            return cls(
                digest=str(data["digest"]),
                size=int(data["size"]),
                diff_id=str(data["diff_id"]),
                uncompressed_size=int(data["uncompressed_size"]),
                compressor=str(data["compressor"]),
                media_type=str(data["media_type"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(
                f"not a layer descriptor (missing or bad field {e}); "
                "it must be the .json output of a layer action",
                where=where,
            ) from None


def write_layer(
    out_path: str | os.PathLike[str],
    compressor: str,
    fill: Callable[[TarWriter], None],
    owner: Ownership = Ownership(),
) -> LayerDescriptor:
    """Write a layer blob whose tar members `fill` adds; return its digests and sizes."""
    with atomic_file(out_path, durable=False) as f:
        blob = DigestingWriter(f, xxh3=True)
        with compressing(compressor, blob) as sink:
            raw = DigestingWriter(sink) if compressor != "none" else blob
            background = BackgroundSink(raw)
            tar = TarWriter(
                background,
                mtime=owner.mtime,
                uid=owner.uid,
                gid=owner.gid,
                uname=owner.uname,
                gname=owner.gname,
            )
            try:
                fill(tar)
                tar.close()
            finally:
                background.close()
    written.note(out_path, blob.xxh3_hexdigest, blob.hexdigest)
    return LayerDescriptor.from_writers(blob, raw, compressor)


def write_layer_from_tar(
    out_path: str | os.PathLike[str], compressor: str, src: BinaryIO
) -> LayerDescriptor:
    """A layer blob from an uncompressed tar read from `src`, digested as it is compressed."""
    with atomic_file(out_path, durable=False) as f:
        blob = DigestingWriter(f, xxh3=True)
        with compressing(compressor, blob) as sink:
            raw = DigestingWriter(sink) if compressor != "none" else blob
            while chunk := src.read(1 << 20):
                raw.write(chunk)
    written.note(out_path, blob.xxh3_hexdigest, blob.hexdigest)
    return LayerDescriptor.from_writers(blob, raw, compressor)


def write_descriptor(
    descriptor_path: str | os.PathLike[str],
    descriptor: LayerDescriptor,
    blob_path: str | os.PathLike[str],
) -> None:
    """Write a blob's descriptor; if that fails, remove the blob (no half-written outputs)."""
    try:
        write_bytes_atomic(descriptor_path, json_bytes(descriptor.to_json()), durable=False)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(blob_path)
        raise


def add_entries(tar: TarWriter, entries: Iterable[Entry]) -> None:
    """Write planned entries (see `strata.oci.tree`) in the order given."""
    for e in entries:
        owner: dict[str, int | str] = {}
        if e.uid is not None:
            owner["uid"] = e.uid
        if e.gid is not None:
            owner["gid"] = e.gid
        if e.kind == DIR:
            tar.add_dir(e.name, e.mode, **owner)
        elif e.kind == FILE:
            tar.add_file(e.name, e.source, e.size, e.mode, offset=e.offset, **owner)
        elif e.kind == SYMLINK:
            tar.add_symlink(e.name, e.target, **owner)
        elif e.kind == BYTES:
            tar.add_bytes(e.name, e.data, e.mode, **owner)
        else:
            raise ValueError(f"unknown entry kind {e.kind!r}")


def write_layer_from_entries(
    out_path: str | os.PathLike[str],
    compressor: str,
    entries: Iterable[Entry],
    owner: Ownership = Ownership(),
) -> LayerDescriptor:
    return write_layer(out_path, compressor, lambda tar: add_entries(tar, entries), owner)
