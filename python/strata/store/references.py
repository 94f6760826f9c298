"""Finding a store path's real references by scanning its bytes.

Nix decides what a build output refers to by searching the NAR of the output
for the 32-character hash part of every candidate store path (the build's
inputs); see "Scanning for references" in Dolstra's thesis, section 5.5.1,
and `src/libstore/references.cc` (`RefScanSink`). We do the same over the
NAR stream, so file names and symlink targets count as mentions exactly as
they do for Nix, and a hash split across chunks is still seen.

How, fast: hash parts are nix-base32, so a match can only lie inside a run
of at least 32 characters of that alphabet. `bytes.translate` maps a chunk
to a mask (1 for an alphabet byte, 0 for any other) and `bytes.find` looks
for 32 ones in it: both loops run in C, at about a gigabyte a second on
binary and text alike (a regular expression for the runs does a tenth of
that). Each run found is then tested window by window against the set of
hash parts not found yet, or, for a long run, by searching it for each of
them (`bytes.find`, faster when the run is long and the candidates few);
where runs are dense (a listing of store paths), the rest of the chunk is
searched for each candidate instead of run by run. Candidates already found
are not looked for again, and once all are found the rest of the stream is
not looked at. Small chunks (the NAR's tokens) are gathered before a search.

Declared references are then checked against what was found: a declared
reference that is never mentioned is only a warning (it keeps a path alive
for nothing), but a mention of a store path that is not declared is an
error, because the image would lack a path the program may need.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from strata.errors import UserError
from strata.store import base32, nar
from strata.store.closure import PathInfo
from strata.store.path import DEFAULT_STORE_DIR, HASH_CHARS, parse, source_path

_HASH = HASH_CHARS
_MASK = bytes(1 if chr(b) in base32.ALPHABET else 0 for b in range(256))
_NEEDLE = b"\1" * _HASH
_BATCH = 1 << 18
"""Chunks smaller than this are gathered until they add up to it before a search."""
_FIND_ALL_BELOW = 4
"""With this few candidates left, `bytes.find` for each over the whole chunk is fastest."""
_WINDOW_COST = 750
"""Testing one 32-byte window in Python costs about what `bytes.find` spends on this many
bytes; `_search` uses it to choose between the two for a run."""
_RUN_COST = 5000
"""Visiting one run costs about what `bytes.find` spends on this many bytes."""


class ReferenceScanner:
    """A NAR sink that records which candidate hash parts appear in the stream."""

    def __init__(self, hash_parts: Iterable[str]) -> None:
        self._left = {h.encode() for h in hash_parts}
        self._found: set[bytes] = set()
        self._tail = b""
        """The last 31 bytes searched: a hash may start there and end in the next chunk."""
        self._pending = bytearray()

    @property
    def found(self) -> set[str]:
        """The candidates seen so far (in every byte given, small chunks included)."""
        if self._pending:
            self._scan(bytes(self._pending))
            self._pending.clear()
        return {h.decode() for h in self._found}

    def __call__(self, chunk: bytes) -> None:
        if not self._left:
            return  # every candidate is found: nothing left to learn from the stream
        if len(chunk) < _BATCH:
            self._pending += chunk
            if len(self._pending) < _BATCH:
                return
            chunk = bytes(self._pending)
            self._pending.clear()
        elif self._pending:
            self._scan(bytes(self._pending))
            self._pending.clear()
        self._scan(chunk)

    def _scan(self, chunk: bytes) -> None:
        """Search `chunk`, which follows the bytes already searched."""
        if self._tail:  # the windows that begin in the tail and end in this chunk
            self._search(self._tail + chunk[: _HASH - 1])
        self._search(chunk)
        keep = _HASH - 1
        self._tail = chunk[-keep:] if len(chunk) >= keep else (self._tail + chunk)[-keep:]

    def _search(self, data: bytes) -> None:
        left = self._left
        if len(left) <= _FIND_ALL_BELOW:
            self._find_each(data, 0, len(data))
            return
        mask = data.translate(_MASK)
        find = mask.find
        start = find(_NEEDLE)
        runs = 0
        while start >= 0:
            end = find(b"\0", start + _HASH)
            if end < 0:
                end = len(data)
            if end - start == _HASH:  # the common run: one window
                window = data[start:end]
                if window in left:
                    self._hit(window)
            elif len(left) * (_WINDOW_COST + end - start) < _WINDOW_COST * (end - start):
                self._find_each(data, start, end)
            else:
                for i in range(start, end - _HASH + 1):
                    window = data[i : i + _HASH]
                    if window in left:
                        self._hit(window)
            runs += 1
            if not runs % 64:
                if not left:
                    return
                # Dense runs (a list of store paths): searching the rest for each
                # candidate costs less than visiting every run.
                if runs * _RUN_COST > len(left) * end:
                    self._find_each(data, end, len(data))
                    return
            start = find(_NEEDLE, end)

    def _hit(self, window: bytes) -> None:
        self._left.discard(window)
        self._found.add(window)

    def _find_each(self, data: bytes, start: int, end: int) -> None:
        for h in [h for h in self._left if data.find(h, start, end) >= 0]:
            self._hit(h)


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
    unused = sorted(declared_set - found_set)
    if not unused:
        return ()
    return (_unused_warning(path, unused),)


_NAMED = 3
"""Unused references a warning names; the others are counted."""


def _unused_warning(path: str, unused: list[str]) -> str:
    """One line for all of a path's unused references (a closure can have hundreds)."""
    if len(unused) == 1:
        return (
            f"{path} declares a reference it never mentions (got {unused[0]}); "
            "drop it from the references unless it must be kept alive"
        )
    named = ", ".join(unused[:_NAMED])
    more = f" and {len(unused) - _NAMED} more" if len(unused) > _NAMED else ""
    return (
        f"{path} declares {len(unused)} references it never mentions (got {named}{more}); "
        "drop them from the references unless they must be kept alive"
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
