"""Nix's base-32: the alphabet and bit order of store path hashes.

Nix does not use RFC 4648 base32. Its alphabet omits e, o, u and t (to avoid
accidental words), and it emits characters from the *last* 5-bit group to the
first, reading bits little-endian across bytes. A 20-byte hash gives 32
characters, a 32-byte sha256 gives 52. Spec: Nix source,
`src/libutil/hash.cc` (`printHash32`, `base32Chars`), and the Nix manual's
store path description: https://nixos.org/manual/nix/stable/protocols/store-path
"""

from __future__ import annotations

ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}


def encoded_length(n_bytes: int) -> int:
    return (n_bytes * 8 - 1) // 5 + 1


def encode(data: bytes) -> str:
    """Encode bytes the way Nix prints hashes (`nix-hash --to-base32`)."""
    n = len(data)
    value = int.from_bytes(data, "little")
    out = []
    for k in range(encoded_length(n) - 1, -1, -1):
        out.append(ALPHABET[(value >> (k * 5)) & 0x1F])
    return "".join(out)


def decode(text: str, n_bytes: int) -> bytes:
    """Inverse of `encode`; raises ValueError on a bad character, length or overflow."""
    if len(text) != encoded_length(n_bytes):
        raise ValueError(f"nix-base32 of {n_bytes} bytes has {encoded_length(n_bytes)} characters")
    value = 0
    for k, c in enumerate(reversed(text)):
        digit = _INDEX.get(c)
        if digit is None:
            raise ValueError(f"invalid nix-base32 character {c!r}")
        value |= digit << (k * 5)
    if value >> (n_bytes * 8):
        raise ValueError("nix-base32 value does not fit")
    return value.to_bytes(n_bytes, "little")
