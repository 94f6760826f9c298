"""Finding a store path's real references by scanning its bytes.

Nix decides what a build output refers to by searching the NAR of the output
for the 32-character hash part of every candidate store path (the build's
inputs); see "Scanning for references" in Dolstra's thesis, section 5.5.1,
and `src/libstore/references.cc` (`RefScanSink`). We do the same over the
NAR stream, so file names and symlink targets count as mentions exactly as
they do for Nix. Hash parts never contain '-' or '/', so a match can only be
found inside a run of nix-base32 characters; we look for such runs and test
each 32-character window, carrying the tail of one chunk into the next so a
hash split across chunks is still seen.

Declared references are then checked against what was found: a declared
reference that is never mentioned is only a warning (it keeps a path alive
for nothing), but a mention of a store path that is not declared is an
error, because the image would lack a path the program may need.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from strata.errors import UserError
from strata.store import base32, nar
from strata.store.closure import PathInfo
from strata.store.path import DEFAULT_STORE_DIR, HASH_CHARS, parse, source_path

_RUN = re.compile(rb"[" + base32.ALPHABET.encode() + rb"]{%d,}" % HASH_CHARS)


class ReferenceScanner:
    """A NAR sink that records which candidate hash parts appear in the stream."""

    def __init__(self, hash_parts: Iterable[str]) -> None:
        self._wanted = {h.encode() for h in hash_parts}
        self._tail = b""
        self.found: set[str] = set()

    def __call__(self, chunk: bytes) -> None:
        if not self._wanted:
            return
        data = self._tail + chunk
        for m in _RUN.finditer(data):
            run = m.group()
            for i in range(len(run) - HASH_CHARS + 1):
                window = run[i : i + HASH_CHARS]
                if window in self._wanted:
                    self.found.add(window.decode())
        self._tail = data[-(HASH_CHARS - 1) :]


def scan(
    path: str | os.PathLike[str], candidates: Iterable[str], store_dir: str = DEFAULT_STORE_DIR
) -> frozenset[str]:
    """The candidate store paths whose hash part occurs in the NAR of `path`."""
    by_hash = {parse(c, store_dir, "candidate").hash_part: c for c in candidates}
    scanner = ReferenceScanner(by_hash)
    for chunk in nar.dump(path):
        scanner(chunk)
    return frozenset(by_hash[h] for h in scanner.found)


@dataclass(frozen=True)
class Described:
    """A new store path's facts, plus warnings about declared but unused references."""

    info: PathInfo
    warnings: tuple[str, ...]


def check_references(
    path: str, declared: Iterable[str], found: Iterable[str], where: str
) -> tuple[str, ...]:
    """Compare declared references with found mentions: warnings, or UserError if undeclared."""
    declared_set = set(declared)
    found_set = set(found)
    undeclared = sorted(found_set - declared_set - {path})
    if undeclared:
        raise UserError(
            f"{path} mentions store path {undeclared[0]} but does not declare it as a reference "
            f"(got references {sorted(declared_set)}); add it to the references",
            where=where,
        )
    return tuple(
        f"{path} declares reference {ref} but never mentions it; "
        "drop it from the references unless it must be kept alive"
        for ref in sorted(declared_set - found_set)
    )


def describe(
    src: str | os.PathLike[str],
    name: str,
    references: Iterable[str] = (),
    candidates: Iterable[str] = (),
    store_dir: str = DEFAULT_STORE_DIR,
    where: str = "store path",
) -> Described:
    """Hash, name and reference-check the content at `src` in one pass over its NAR.

    `candidates` are other store paths the content might mention (for
    example every path known to the build); all of them and the declared
    references are scanned for.
    """
    return describe_nar(nar.dump(src), name, references, candidates, store_dir, where)


def describe_nar(
    chunks: Iterable[bytes],
    name: str,
    references: Iterable[str] = (),
    candidates: Iterable[str] = (),
    store_dir: str = DEFAULT_STORE_DIR,
    where: str = "store path",
) -> Described:
    """`describe` for a NAR given as chunks (e.g. `nar.dump_entries` of planned sources)."""
    refs = sorted(set(references))
    pool = {parse(c, store_dir, "candidate").hash_part: c for c in (*candidates, *refs)}
    scanner = ReferenceScanner(pool)
    digest = nar.digest_chunks(chunks, scanner)
    store_path = str(source_path(digest.sha256, name, refs, store_dir))
    found = {pool[h] for h in scanner.found}
    warnings = check_references(store_path, refs, found, where)
    return Described(PathInfo(store_path, tuple(refs), digest.size, digest.nix_hash), warnings)
