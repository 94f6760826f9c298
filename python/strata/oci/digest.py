"""Digests computed while bytes flow past, so nothing is read twice.

A layer's `diff_id` is the sha256 of its uncompressed tar and its blob digest
the sha256 of the compressed bytes (OCI image spec, "Layer DiffID":
https://github.com/opencontainers/image-spec/blob/main/config.md#layer-diffid).
Both are taken by `DigestingWriter`s stacked around the compressor, in the
same pass that writes the blob.
"""

from __future__ import annotations

import hashlib
import os

import xxhash

from strata.oci.tarwriter import Sink


class DigestingWriter:
    """Passes writes on to `sink` (if any), keeping their sha256 and byte count."""

    def __init__(self, sink: Sink | None = None, *, xxh3: bool = False) -> None:
        self._sink = sink
        self._hash = hashlib.sha256()
        self._xxh3 = xxhash.xxh3_128() if xxh3 else None
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        self._hash.update(data)
        if self._xxh3 is not None:
            self._xxh3.update(data)
        self.size += len(data)
        if self._sink is not None:
            self._sink.write(data)
        return len(data)

    def flush(self) -> None:
        flush = getattr(self._sink, "flush", None)
        if flush is not None:
            flush()

    @property
    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    @property
    def xxh3_hexdigest(self) -> str:
        """The xxh3-128 of the bytes, when asked for (`xxh3=True`): the engine's local key."""
        if self._xxh3 is None:
            raise ValueError("this writer was not asked to keep an xxh3 digest")
        return self._xxh3.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """`sha256:<hex>` of a file's content."""
    with open(path, "rb", buffering=0) as f:
        return "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def split_digest(digest: str) -> tuple[str, str]:
    """`sha256:<hex>` → ("sha256", hex); anything else is a ValueError."""
    algo, sep, hexpart = digest.partition(":")
    if sep != ":" or algo != "sha256" or len(hexpart) != 64 or not _is_lower_hex(hexpart):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return algo, hexpart


def _is_lower_hex(s: str) -> bool:
    return all(c in "0123456789abcdef" for c in s)
