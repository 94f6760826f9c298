"""Store path names: `<store_dir>/<hash>-<name>`, computed as Nix does.

For a content-addressed "source" path (what `nix-store --add` and
`builtins.path` make) Nix hashes the fingerprint

    source[:<reference>...][:self]:sha256:<hex sha256 of the NAR>:<store_dir>:<name>

with sha256, folds the 32-byte digest to 20 bytes by XOR (byte i goes to
i mod 20), and prints it in nix-base32 (32 characters). References are full
store paths, sorted. The store directory is part of the fingerprint, so the
same content has a different name in a different store: `store_dir` is a
parameter everywhere and never assumed to be /nix/store.

Specs: https://nixos.org/manual/nix/stable/protocols/store-path and Nix's
`src/libstore/store-api.cc` (`makeStorePath`, `makeType`, `compressHash`).
Self-references ("self") are not supported: a source path that mentions its
own hash needs hash rewriting that `nix-store --add` does not do either.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from strata.errors import UserError
from strata.store import base32

DEFAULT_STORE_DIR = "/nix/store"
HASH_CHARS = 32
MAX_NAME_LENGTH = 211
_NAME_RE = re.compile(r"[A-Za-z0-9+\-._?=]+")
_HASH_RE = re.compile(f"[{base32.ALPHABET}]{{{HASH_CHARS}}}")


def compress_hash(digest: bytes, size: int = 20) -> bytes:
    """Nix's `compressHash`: XOR-fold a digest to `size` bytes."""
    out = bytearray(size)
    for i, b in enumerate(digest):
        out[i % size] ^= b
    return bytes(out)


def check_store_dir(store_dir: str, where: str = "store_dir") -> str:
    if not store_dir.startswith("/") or store_dir.endswith("/") or "//" in store_dir:
        raise UserError(
            f"store directory must be an absolute path without a trailing slash "
            f"(got {store_dir!r}); use e.g. {DEFAULT_STORE_DIR!r}",
            where=where,
        )
    return store_dir


def check_name(name: str, where: str = "store path name") -> str:
    """Refuse names Nix would refuse, with the rule that was broken."""
    if not name:
        raise UserError("store path name is empty (got ''); give the path a name", where=where)
    if len(name) > MAX_NAME_LENGTH:
        raise UserError(
            f"store path name is longer than {MAX_NAME_LENGTH} characters "
            f"(got {len(name)}: {name[:40]!r}...); shorten it",
            where=where,
        )
    if not _NAME_RE.fullmatch(name):
        bad = next(c for c in name if not _NAME_RE.fullmatch(c))
        raise UserError(
            f"store path name contains {bad!r}, which Nix does not allow (got {name!r}); "
            "use only letters, digits and + - . _ ? =",
            where=where,
        )
    if name.startswith("."):
        raise UserError(
            f"store path name starts with '.' (got {name!r}); Nix does not allow that, "
            "drop the leading dot",
            where=where,
        )
    return name


@dataclass(frozen=True, order=True)
class StorePath:
    """A parsed store path; orders and compares as its full path string."""

    store_dir: str
    hash_part: str
    name: str

    def __str__(self) -> str:
        return f"{self.store_dir}/{self.hash_part}-{self.name}"

    @property
    def base_name(self) -> str:
        return f"{self.hash_part}-{self.name}"


def parse(path: str, store_dir: str = DEFAULT_STORE_DIR, where: str = "store path") -> StorePath:
    """Split `<store_dir>/<hash>-<name>`, checking every part."""
    check_store_dir(store_dir)
    prefix = store_dir + "/"
    rest = path[len(prefix) :] if path.startswith(prefix) else None
    if rest is None or "/" in rest:
        raise UserError(
            f"not a path directly inside store directory {store_dir!r} (got {path!r}); "
            "pass a top-level store path or set store_dir",
            where=where,
        )
    hash_part, dash, name = rest.partition("-")
    if not dash or not _HASH_RE.fullmatch(hash_part):
        raise UserError(
            f"store path does not start with a {HASH_CHARS}-character nix-base32 hash "
            f"and '-' (got {path!r}); use a path Nix or strata created",
            where=where,
        )
    check_name(name, where)
    return StorePath(store_dir, hash_part, name)


def make_store_path(type_: str, inner_hex: str, name: str, store_dir: str) -> StorePath:
    """Nix's `makeStorePath`: hash the fingerprint and fold it to a 32-char name."""
    check_store_dir(store_dir)
    check_name(name)
    fingerprint = f"{type_}:sha256:{inner_hex}:{store_dir}:{name}"
    digest = compress_hash(hashlib.sha256(fingerprint.encode()).digest())
    return StorePath(store_dir, base32.encode(digest), name)


def source_path(
    nar_sha256: bytes,
    name: str,
    references: Iterable[str] = (),
    store_dir: str = DEFAULT_STORE_DIR,
) -> StorePath:
    """Name of a content-addressed "source" path with the given NAR sha256 and references.

    Equals `nix-store --add` for a reference-free path, and Nix's
    `addTextToStore`/`builtins.path` rule for one with references.
    """
    refs = sorted(set(references))
    for ref in refs:
        parse(ref, store_dir, where="reference")
    type_ = ":".join(["source", *refs])
    return make_store_path(type_, nar_sha256.hex(), name, store_dir)
