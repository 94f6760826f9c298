"""A content-addressed blob store: `<root>/sha256/<hex>`, written only after verification.

Pulled blobs are kept by digest, so every image that shares a layer shares one
file and a layer is fetched once however many images use it (what the seed's
per-layer fetchers gave Nix). A blob is streamed into a temporary file beside
its final name while its sha256 and size are taken; it is renamed into place
only when both match the descriptor, so the store never holds a half-written or
wrong blob under a digest's name.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from strata.errors import UserError
from strata.fsutil import atomic_file
from strata.oci.digest import DigestingWriter, split_digest


def default_blob_store() -> Path:
    """`$STRATA_BLOB_STORE`, else `strata/blobs` in the user's cache directory."""
    if os.environ.get("STRATA_BLOB_STORE"):
        return Path(os.environ["STRATA_BLOB_STORE"])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "strata" / "blobs"


class BlobMismatch(UserError):
    """Bytes that arrived do not have the digest or size that names them."""


class BlobStore:
    """Blobs by digest under `root`; safe to share between concurrent pulls (rename wins)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        try:
            _, hexpart = split_digest(digest)
        except ValueError:
            raise UserError(
                f"unsupported or malformed digest (got {digest[:80]!r}); only sha256 is used",
                where=str(self.root),
            ) from None
        return self.root / "sha256" / hexpart

    def has(self, digest: str, size: int) -> bool:
        """True if the blob is stored with the expected size (content was checked on entry)."""
        try:
            return self.path(digest).stat().st_size == size
        except FileNotFoundError:
            return False

    def put_stream(self, digest: str, size: int, chunks: Iterable[bytes], where: str) -> Path:
        """Store `chunks` as `digest`, checking sha256 and size; nothing is kept on a mismatch."""
        final = self.path(digest)
        with atomic_file(final, 0o444, durable=False) as f:
            writer = DigestingWriter(f)
            for chunk in chunks:
                writer.write(chunk)
                if writer.size > size:
                    raise BlobMismatch(
                        f"blob {digest} is larger than its descriptor says (got more than "
                        f"{size} bytes, expected {size}); the registry sent wrong content",
                        where=where,
                    )
            if writer.size != size or writer.digest != digest:
                raise BlobMismatch(
                    f"blob digest mismatch (got {writer.digest}, {writer.size} bytes; "
                    f"expected {digest}, {size} bytes); the registry or a proxy served "
                    "wrong content: nothing was stored, fix the registry and pull again",
                    where=where,
                )
        return final
