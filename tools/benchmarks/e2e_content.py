"""The e2e benchmark's file contents: names, sizes, kinds and bytes (tools/benchmarks/e2e_gen.py).

Every byte comes from SHAKE-128 keyed by the seed and the file's position, and every
choice from integer arithmetic on that stream (`Stream`; never `random`, no
floating-point library calls), so the same on every machine and Python version.
Content mixes random runs, word text and zero runs, so gzip shrinks it about 2.4x.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

SEED = b"strata-e2e-1"

T = TypeVar("T")

# File size bands: (weight, (smallest, largest)) in bytes; the mean is about 35 KiB.
SIZE_BANDS: tuple[tuple[int, tuple[int, int]], ...] = (
    (2600, (40, 512)),
    (2500, (512, 2048)),
    (2000, (2048, 8192)),
    (1700, (8192, 32768)),
    (800, (32768, 131072)),
    (300, (131072, 524288)),
    (60, (524288, 2097152)),
    (12, (2097152, 8388608)),
)

_WORDS = (
    "the of and to in is for on with as by at from this that be are or it not an which "
    "store path layer image digest closure reference build action cache output input "
    "file directory symlink link library shared object symbol version module package "
    "config option value default error warning info debug trace return function const "
    "static inline struct union enum typedef unsigned signed char int long short float "
    "double void size_t uint8_t uint32_t uint64_t pointer buffer length offset count index "
    "begin end start stop open close read write seek flush sync lock unlock wait notify "
    "thread process signal handler callback event queue stack heap memory alloc free "
    "init exit main args argv argc env path name type mode owner group time date locale "
    "string number boolean true false null none self class def import export require "
    "test check assert expect result status code message text data bytes chunk block "
    "hash sha256 gzip zstd tar header entry record table column row key map list set "
    "node edge graph tree root leaf parent child sibling depth width height weight "
    "http https server client request response socket port host address network proxy"
)

WORDS = tuple(_WORDS.split())

NAME_WORDS = tuple(w for w in WORDS if "_" not in w)

LOCALES = ("de", "fr", "es", "it", "ja", "pt_BR", "ru", "zh_CN", "nl", "pl", "sv", "cs")

# The same block opens every larger text file, as licence headers do.
HEADER = b"".join(
    b"# %s\n" % line
    for line in (
        b"Copyright (c) The strata e2e benchmark authors. All rights reserved.",
        b"Permission is hereby granted, free of charge, to any person obtaining a copy",
        b"of this software and associated documentation files, to deal in the software",
        b"without restriction, including without limitation the rights to use, copy,",
        b"modify, merge, publish, distribute, sublicense, and/or sell copies of it.",
        b"THE SOFTWARE IS PROVIDED AS IS, WITHOUT WARRANTY OF ANY KIND.",
    )
)

CORPUS_BYTES = 2 << 20

SEGMENT = (256, 65536)  # a file is runs of random bytes, text and zeros of these lengths

ZEROS = memoryview(bytes(SEGMENT[1]))


class Stream:
    """Deterministic integers from SHAKE-128 of a key (never `random`: it may change)."""

    def __init__(self, *key: object) -> None:
        self._key = SEED + b"/" + "/".join(map(str, key)).encode()
        self._buf = b""
        self._pos = 0
        self._blocks = 0

    def below(self, n: int) -> int:
        """An integer in [0, n) (the bias of a 64-bit modulo is negligible here)."""
        if self._pos + 8 > len(self._buf):
            self._buf = hashlib.shake_128(self._key + b"#%d" % self._blocks).digest(4096)
            self._blocks += 1
            self._pos = 0
        v = int.from_bytes(self._buf[self._pos : self._pos + 8], "little")
        self._pos += 8
        return v % n

    def between(self, lo: int, hi: int) -> int:
        return lo + self.below(hi - lo + 1)

    def choose(self, table: Sequence[tuple[int, T]]) -> T:
        """A value of a table of (integer weight, value)."""
        x = self.below(sum(w for w, _ in table))
        for w, value in table:
            if x < w:
                return value
            x -= w
        raise AssertionError("unreachable: x < the sum of the weights")

    def word(self, words: Sequence[str] = WORDS) -> str:
        return words[self.below(len(words))]


def random_bytes(n: int, *key: object) -> bytes:
    return hashlib.shake_128(SEED + b"/r/" + "/".join(map(str, key)).encode()).digest(n)


@functools.cache  # one per process of the pool
def corpus() -> bytes:
    """Word text, lines of 4 to 19 words: where every text run is cut from.

    One SHAKE byte picks each word, one more each line's length (a loop of
    Stream.below calls would take seconds).
    """
    picks = hashlib.shake_128(SEED + b"/corpus").digest(CORPUS_BYTES // 3)
    lines: list[str] = []
    n = i = 0
    while n < CORPUS_BYTES:
        count = 4 + picks[i] % 16
        line = " ".join([WORDS[b % len(WORDS)] for b in picks[i + 1 : i + 1 + count]])
        lines.append(line)
        n += len(line) + 1
        i += count + 1
    return ("\n".join(lines) + "\n").encode()[:CORPUS_BYTES]


@dataclass(frozen=True)
class Kind:
    """A kind of file: where it lives, its name, its mode, what its bytes are made of."""

    directory: str  # {pname} and {locale} are filled in
    prefix: str
    suffix: str
    executable: bool
    mix: tuple[tuple[int, str], ...]  # (weight, "random" | "text" | "zeros")


BINARY = ((30, "random"), (45, "text"), (25, "zeros"))

TEXT = ((1, "text"),)

PACKED = ((1, "random"),)

# Executables are exactly bin/* and lib/*.so: the BUILD file globs them so.
KINDS = {
    "so": Kind("lib", "lib", ".so", True, BINARY),
    "bin": Kind("bin", "", "", True, BINARY),
    "script": Kind("bin", "", "", True, TEXT),
    "dat": Kind("share/{pname}", "", ".dat", False, BINARY),
    "py": Kind("lib/python3/site-packages/{pname}", "", ".py", False, TEXT),
    "h": Kind("include/{pname}", "", ".h", False, TEXT),
    "doc": Kind("share/doc/{pname}", "", ".txt", False, TEXT),
    "html": Kind("share/doc/{pname}/html", "", ".html", False, TEXT),
    "man": Kind("share/man/man1", "", ".1.gz", False, PACKED),
    "png": Kind("share/icons/hicolor/48x48/apps", "", ".png", False, PACKED),
    "mo": Kind("share/locale/{locale}/LC_MESSAGES", "", ".mo", False, BINARY),
}

# The kind of a file by its size: (least size, (weight, kind)...), largest first.
KIND_BY_SIZE: tuple[tuple[int, tuple[tuple[int, str], ...]], ...] = (
    (524288, ((60, "so"), (20, "dat"), (20, "bin"))),
    (8192, ((25, "so"), (10, "bin"), (20, "html"), (25, "py"), (10, "png"), (10, "mo"))),
    (0, ((30, "h"), (30, "py"), (10, "man"), (20, "doc"), (10, "script"))),
)


def content(
    index: int, n: int, size: int, kind: str, text: memoryview
) -> Iterator[bytes | memoryview]:
    """The bytes of file n (`size` bytes of `kind`) of store path `index`, in runs (views
    into shared buffers: no copies); `text` is `corpus()`."""
    mix = KINDS[kind].mix
    s = Stream("content", index, n)
    left = size
    if mix == TEXT and left >= 2 * len(HEADER):
        yield HEADER
        left -= len(HEADER)
    run = 0
    while left > 0:
        size = min(left, s.between(*SEGMENT))
        what = s.choose(mix)
        if what == "random":
            yield random_bytes(size, index, n, run)
        elif what == "zeros":
            yield ZEROS[:size]
        else:
            at = s.below(len(text) - size)
            yield text[at : at + size]
        left -= size
        run += 1
