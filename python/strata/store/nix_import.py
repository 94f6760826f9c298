"""Describing paths that already live in a real Nix store.

Two ways in, giving the same `PathInfo` records:

* `query_nix_store` asks `nix-store -q` (`--requisites`, `--references`,
  `--hash`, `--size`), for a machine with Nix on it;
* `parse_registration` reads the validity-registration format, which is what
  nixpkgs' `closureInfo` writes to `$out/registration` and what
  `nix-store --dump-db` prints, so a build can import a closure without
  running Nix at all.

Registration format (Nix `src/libstore/store-api.cc`,
`makeValidityRegistration`; nixpkgs `closure-info.nix`): for each path, one
line each for the path, its NAR hash (base16, or `sha256:` plus base16 or
nix-base32), its NAR size, its deriver (may be empty), the number of
references, then one line per reference. Hashes are normalised to the
`sha256:<nix-base32>` form `nix-store -q --hash` prints.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence

from strata.errors import UserError
from strata.store import base32
from strata.store.closure import Closure, PathInfo, closure_of
from strata.store.path import DEFAULT_STORE_DIR, parse

Runner = Callable[[Sequence[str]], str]


def normalise_hash(text: str, where: str) -> str:
    """Any sha256 spelling Nix prints → `sha256:<nix-base32>`."""
    algo, colon, digest = text.partition(":")
    if not colon:
        algo, digest = "sha256", text
    ok = algo == "sha256"
    raw = b""
    if ok and len(digest) == 64:
        try:
            raw = bytes.fromhex(digest)
        except ValueError:
            ok = False
    elif ok and len(digest) == base32.encoded_length(32):
        try:
            raw = base32.decode(digest, 32)
        except ValueError:
            ok = False
    else:
        ok = False
    if not ok:
        raise UserError(
            f"not a sha256 NAR hash (got {text!r}); expect 64 hex digits or sha256:<nix-base32>",
            where=where,
        )
    return "sha256:" + base32.encode(raw)


def parse_registration(
    text: str, store_dir: str = DEFAULT_STORE_DIR, where: str = "registration"
) -> list[PathInfo]:
    """Parse `closureInfo`'s registration file (or `nix-store --dump-db` output)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    infos: list[PathInfo] = []
    i = 0

    def take(what: str) -> str:
        nonlocal i
        if i >= len(lines):
            raise UserError(
                f"line {i + 1}: registration ends early, expected {what} "
                f"(got end of file); regenerate it with closureInfo or nix-store --dump-db",
                where=where,
            )
        line = lines[i]
        i += 1
        return line

    def number(what: str) -> int:
        line = take(what)
        if not line.isdigit():
            raise UserError(
                f"line {i}: expected {what} as a number (got {line!r}); "
                "the file is not in registration format",
                where=where,
            )
        return int(line)

    while i < len(lines):
        path = take("a store path")
        parse(path, store_dir, f"{where}:{i}")
        nar_hash = normalise_hash(take("a NAR hash"), f"{where}:{i}")
        nar_size = number("the NAR size")
        take("the deriver")
        refs = [take("a reference") for _ in range(number("the reference count"))]
        for r in refs:
            parse(r, store_dir, f"{where}:{i}")
        infos.append(PathInfo(path, tuple(refs), nar_size, nar_hash))
    return infos


def subprocess_runner(
    nix_store: str, env: Mapping[str, str] | None, where: str = "nix import"
) -> Runner:
    """Run `nix-store ARGS` and return its stdout; a missing tool or a failure is a UserError."""

    def run(args: Sequence[str]) -> str:
        try:
            proc = subprocess.run(
                [nix_store, *args],
                capture_output=True,
                text=True,
                env=None if env is None else {**os.environ, **env},
                check=False,
            )
        except FileNotFoundError:
            raise UserError(
                f"cannot run nix-store (got {nix_store!r}); install Nix (Debian: nix-bin) "
                "and point nix_store at it, or import the closure from a closureInfo "
                "registration file instead",
                where=where,
            ) from None
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(
                f"nix-store {' '.join(args[:2])} failed (got {last!r}); check that the paths "
                "are valid in that store (NIX_STORE_DIR, NIX_STATE_DIR)",
                where=where,
            )
        return proc.stdout

    return run


UNKNOWN_DERIVER = "unknown-deriver"
"""What `nix-store -q --deriver` prints for a path without one (added, not built)."""


def query_derivers(paths: Sequence[str], runner: Runner) -> dict[str, str]:
    """Each path's deriver (`nix-store -q --deriver`); paths without one are left out."""
    if not paths:
        return {}
    found = runner(["-q", "--deriver", *paths]).split()
    if len(found) != len(paths):
        raise UserError(
            f"nix-store answered {len(found)} derivers for {len(paths)} paths (got a "
            "mismatch); check the nix-store version",
            where="nix import",
        )
    return {p: d for p, d in zip(paths, found, strict=True) if d != UNKNOWN_DERIVER}


def query_nix_store(
    roots: Iterable[str],
    store_dir: str = DEFAULT_STORE_DIR,
    nix_store: str = "nix-store",
    env: Mapping[str, str] | None = None,
    runner: Runner | None = None,
) -> Closure:
    """The closure of `roots` as a real Nix store records it."""
    run = runner or subprocess_runner(nix_store, env)
    root_list = sorted(set(roots))
    for r in root_list:
        parse(r, store_dir, "nix import root")
    if not root_list:
        return Closure((), ())
    paths = sorted(set(run(["-q", "--requisites", *root_list]).split()))
    hashes = run(["-q", "--hash", *paths]).split()
    sizes = run(["-q", "--size", *paths]).split()
    if len(hashes) != len(paths) or len(sizes) != len(paths):
        raise UserError(
            f"nix-store answered {len(hashes)} hashes and {len(sizes)} sizes for "
            f"{len(paths)} paths (got a mismatch); check the nix-store version",
            where="nix import",
        )
    infos = []
    for path, h, size in zip(paths, hashes, sizes, strict=True):
        refs = run(["-q", "--references", path]).split()
        infos.append(PathInfo(path, tuple(refs), int(size), normalise_hash(h, path)))
    return closure_of(root_list, infos, "nix import")
