#!/usr/bin/env python3
"""Generate the end-to-end benchmark workspace: a closure of store paths and one image over it.

At the default scale: 300 store paths, 1.7 GiB in about 58,000 files,
path sizes Zipf-distributed (rank r gets 1/r of the bytes: a few big paths,
many small ones), file sizes from a few dozen bytes to 8 MiB (most small,
some MBs). Path i references up to 6 paths of lower index (low indices are
picked more often, as glibc is); the last path is a leaf, the application.
A third of the paths have a relative link `lib64 -> lib`; programs in `bin/`
and shared objects in `lib/` are executable. Content mixes random runs,
word text and zero runs, so gzip shrinks it about 2.4x.

Every byte comes from SHAKE-128 keyed by the seed and the file's position,
and every choice from integer arithmetic on that stream (no `random`, no
floating-point library calls; e2e_content.py), so the workspace is identical on every
machine and Python version.

A path mentions its references as real ones do: `nix-support/propagated-
build-inputs` lists their store paths (as Nix's setup hooks write it), so
StorePath's reference scan finds every declared reference. Store path names
are content hashes, so the generator computes them itself (Nix's NAR and
"source" store path rules, written out below, not taken from strata: the
build then cross-checks them), path by path in reference order.

`--scale F` multiplies bytes and files by F; the number of paths by sqrt(F)
(at least 8) so a small scale stays a cheap build, and `max_layers` with it
(a third of the paths), so small scales still group paths into layers.

    python3 tools/benchmarks/e2e_gen.py OUT_DIR [--scale 1.0] [--strata CHECKOUT]

OUT_DIR gets `WORKSPACE` (`local_repository` of the strata checkout and
`strata_dependencies()`), `BUILD` (one `store_path` a path; `big_raw`, a
`layered_image` of all of them uncompressed, `big`, the same with gzip, and
`big_stream`, `big_raw` as a `stream_layered_image`),
`warmup/BUILD` (a one-file store path, to install the tool before a timed
build), `store/<path>/...` (the closure's files) and `e2e.json` (what was
generated: paths, references, sizes, file counts, the leaf and one of its
files to edit).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import stat
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_content import (  # noqa: E402
    KIND_BY_SIZE,
    KINDS,
    LOCALES,
    NAME_WORDS,
    SIZE_BANDS,
    TEXT,
    Stream,
    content,
    corpus,
)

STRATA = Path(__file__).resolve().parents[2]

TOTAL_BYTES = 1_825_361_100  # 1.7 GiB at scale 1
PATHS = 300
MAX_DEPS = 6
MAX_LAYERS = 100
STORE_DIR = "/nix/store"
SUPPORT = "nix-support/propagated-build-inputs"
"""The file that names a path's references (absent when it has none)."""
BASE32 = "0123456789abcdfghijklmnpqrsvwxyz"


@dataclass(frozen=True)
class File:
    rel: str  # path inside the store path
    size: int
    kind: str


@dataclass
class StorePath:
    index: int
    name: str
    budget: int
    deps: list[int]
    lib64: bool
    files: list[File] = field(default_factory=list)
    store_path: str = ""
    """`/nix/store/<hash>-<name>`, once the generator has computed it."""
    support: bytes = b""
    """The content of SUPPORT: the references' store paths ("" with none)."""

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files) + len(self.support)

    @property
    def file_count(self) -> int:
        return len(self.files) + bool(self.support)


@dataclass(frozen=True)
class Closure:
    paths: list[StorePath]
    max_layers: int

    @property
    def leaf(self) -> StorePath:
        """The application: the last path, which nothing references (only lower indices are)."""
        return self.paths[-1]

    @property
    def edit(self) -> str:
        """The leaf's file a one-file change edits (its first text file, else its first)."""
        text = [f for f in self.leaf.files if KINDS[f.kind].mix == TEXT]
        return f"store/{self.leaf.name}/{(text or self.leaf.files)[0].rel}"


def scaled(scale: float) -> tuple[int, int, int]:
    """(total bytes, number of paths, max_layers) at `scale`."""
    if not 0 < scale <= 16:
        raise ValueError(f"--scale: must be in (0, 16] (got {scale}); use e.g. 0.01 or 1")
    paths = max(8, round(PATHS * math.sqrt(scale)))  # sqrt is exactly rounded: no libm drift
    return round(TOTAL_BYTES * scale), paths, max(3, paths * MAX_LAYERS // PATHS)


def plan(scale: float = 1.0) -> Closure:
    """The closure's paths, references and files at `scale`, without writing anything."""
    total, n, max_layers = scaled(scale)
    s = Stream("plan")
    ranks = list(range(1, n + 1))  # Zipf: rank r weighs 1/r; ranks shuffled over the paths
    for i in range(n - 1, 0, -1):
        j = s.below(i + 1)
        ranks[i], ranks[j] = ranks[j], ranks[i]
    weights = [10**12 // r for r in ranks]
    weight = sum(weights)
    paths: list[StorePath] = []
    for i in range(n):
        deps: set[int] = set()
        for _ in range(s.below(min(MAX_DEPS, i) + 1)):
            u, v = s.below(1 << 16), s.below(1 << 16)
            deps.add(i * u * v >> 32)  # i * u^2 for uniform u in [0, 1): low indices likelier
        name = f"p{i:03d}-{s.word(NAME_WORDS)}-{s.word(NAME_WORDS)}-{s.between(0, 9)}.{s.below(30)}"
        budget = max(64, total * weights[i] // weight)
        path = StorePath(i, name, budget, sorted(deps), lib64=i % 3 == 1)
        _plan_files(path)
        paths.append(path)
    return Closure(paths, max_layers)


def _plan_files(p: StorePath) -> None:
    s = Stream("files", p.index)
    pname = p.name.split("-")[1]
    left = p.budget
    while left > 0:
        lo, hi = s.choose(SIZE_BANDS)
        size = min(left, s.between(lo, hi))
        if not p.files and p.lib64:
            kind = "so"  # so that lib64 -> lib points at a directory
        else:
            kind = s.choose(next(t for least, t in KIND_BY_SIZE if size >= least))
        k = KINDS[kind]
        directory = k.directory.format(pname=pname, locale=s.word(LOCALES))
        stem = s.word(NAME_WORDS)
        p.files.append(File(f"{directory}/{k.prefix}{stem}-{len(p.files)}{k.suffix}", size, kind))
        left -= size


def build_file(closure: Closure) -> str:
    out = [
        '"""Generated by tools/benchmarks/e2e_gen.py: the e2e benchmark closure and its images."""',
        "",
        'load("@strata//rules:defs.bzl", "layered_image", "store_path", "stream_layered_image")',
        "",
    ]
    for p in closure.paths:
        d = f"store/{p.name}"
        cut = len(d) + 1
        out += ["store_path(", f'    name = "{p.name}",']
        out.append(f'    srcs = {{f: f[{cut}:] for f in glob(["{d}/**"])}},')
        exe = sorted(
            {f.rel.split("/")[0] for f in p.files if KINDS[f.kind].executable}
        )  # "bin", "lib"
        if exe:
            pats = ", ".join(f'"{d}/{x}/*"' if x == "bin" else f'"{d}/lib/*.so"' for x in exe)
            out.append(f"    executables = [f[{cut}:] for f in glob([{pats}])],")
        if p.deps:
            deps = ", ".join(f'":{closure.paths[i].name}"' for i in p.deps)
            out.append(f"    deps = [{deps}],")
        if p.lib64:
            out.append('    symlinks = {"lib64": "lib"},')
        out.append(")")
        out.append("")
    out.append("ALL = [")
    out += [f'    ":{p.name}",' for p in closure.paths]
    out += ["]", ""]
    none = '\n    compressor = "none",'
    images = [("layered_image", "big_raw", none), ("layered_image", "big", "")]
    for rule, name, extra in [*images, ("stream_layered_image", "big_stream", none)]:
        out.append(f'{rule}(\n    name = "{name}",\n    contents = ALL,{extra}\n')
        out[-1] += f"    max_layers = {closure.max_layers},\n)\n"
    return "\n".join(out)


WORKSPACE = """workspace(name = "strata_e2e")

local_repository(name = "strata", path = "{strata}")

load("@strata//rules:repositories.bzl", "strata_dependencies")

strata_dependencies()
"""

WARMUP = """load("@strata//rules:defs.bzl", "store_path")

# Built once before timing, so a cold build does not count installing the tool.
store_path(
    name = "warmup",
    srcs = {"warmup.txt": "warmup.txt"},
)
"""


def generate(out: Path, scale: float = 1.0, strata: Path = STRATA) -> Closure:
    """Write the workspace into `out` (which must not exist or be empty)."""
    closure = plan(scale)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(
            f"{out}: not empty (got {sorted(os.listdir(out))[:3]}); pick a new directory"
        )
    jobs = sorted(closure.paths, key=lambda p: -p.size)  # the big ones first: even finish
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        for _ in pool.map(_write_path, [out / "store"] * len(jobs), jobs):
            pass
        _name_paths(out / "store", closure, pool)
    (out / "WORKSPACE").write_text(WORKSPACE.format(strata=strata))
    (out / "BUILD").write_text(build_file(closure))
    (out / "warmup").mkdir()
    (out / "warmup" / "BUILD").write_text(WARMUP)
    (out / "warmup" / "warmup.txt").write_text("warm-up\n")
    (out / "e2e.json").write_text(
        json.dumps(summary(closure, scale), indent=1, sort_keys=True) + "\n"
    )
    return closure


def _name_paths(store: Path, closure: Closure, pool: ProcessPoolExecutor) -> None:
    """Name every path (references first, in waves run in parallel); write their SUPPORT."""
    left = list(closure.paths)
    while left:
        ready = [p for p in left if all(closure.paths[d].store_path for d in p.deps)]
        for p in ready:
            refs = sorted(closure.paths[d].store_path for d in p.deps)
            p.support = (" ".join(refs) + "\n").encode() if refs else b""
        for p, named in zip(ready, pool.map(_name_path, [store] * len(ready), ready), strict=True):
            p.store_path = named
        left = [p for p in left if not p.store_path]


def _name_path(store: Path, p: StorePath) -> str:
    """Write the path's SUPPORT file, then name it as Nix names a "source" path."""
    root = store / p.name
    if p.support:
        (root / SUPPORT).parent.mkdir()
        _write(root / SUPPORT, iter([p.support]), 0o644)
    h = hashlib.sha256()
    _nar(h, root, {"lib64": "lib"} if p.lib64 else {})
    refs = p.support.decode().split()  # the references' store paths, sorted
    kind = ":".join(["source", *refs])
    fingerprint = f"{kind}:sha256:{h.hexdigest()}:{STORE_DIR}:{p.name}".encode()
    digest = hashlib.sha256(fingerprint).digest()
    folded = bytearray(20)  # Nix's compressHash: XOR the digest down to 20 bytes
    for i, b in enumerate(digest):
        folded[i % 20] ^= b
    return f"{STORE_DIR}/{_base32(bytes(folded))}-{p.name}"


def _base32(data: bytes) -> str:
    """Nix's base32: the last 5-bit group first, bits read little-endian across bytes."""
    value = int.from_bytes(data, "little")
    n = (len(data) * 8 - 1) // 5 + 1
    return "".join(BASE32[(value >> (5 * k)) & 31] for k in range(n - 1, -1, -1))


def _nar(h: Any, path: Path, links: dict[str, str]) -> None:
    """Feed the NAR of `path` to `h` (Dolstra's thesis, fig. 5.2); `links`: extra
    top-level symlinks the BUILD file adds (`symlinks = {...}`), by name."""

    def string(data: bytes) -> None:
        h.update(len(data).to_bytes(8, "little") + data + bytes(-len(data) % 8))

    def node(p: Path, target: str | None) -> None:
        string(b"(")
        string(b"type")
        if target is not None:
            for token in (b"symlink", b"target", target.encode()):
                string(token)
            string(b")")
            return
        mode = p.lstat().st_mode
        if stat.S_ISDIR(mode):
            string(b"directory")
            children: dict[bytes, tuple[Path, str | None]] = {
                os.fsencode(c): (p / c, None) for c in os.listdir(p)
            }
            if p == path:
                children.update({n.encode(): (p / n, t) for n, t in links.items()})
            for name in sorted(children):
                for token in (b"entry", b"(", b"name", name, b"node"):
                    string(token)
                node(*children[name])
                string(b")")
        else:
            string(b"regular")
            if mode & 0o100:
                string(b"executable")
                string(b"")
            string(b"contents")
            string(p.read_bytes())
        string(b")")

    string(b"nix-archive-1")
    node(path, None)


def _write_path(store: Path, p: StorePath) -> None:
    text = memoryview(corpus())
    made: set[Path] = set()
    for n, f in enumerate(p.files):
        dest = store / p.name / f.rel
        if dest.parent not in made:
            dest.parent.mkdir(parents=True, exist_ok=True)
            made.add(dest.parent)
        mode = 0o755 if KINDS[f.kind].executable else 0o644
        _write(dest, content(p.index, n, f.size, f.kind, text), mode)


def _write(dest: Path, chunks: Iterator[bytes | memoryview], mode: int) -> None:
    # os.open, not open(): the buffered file object costs an isatty ioctl and a copy.
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        os.fchmod(fd, mode)  # whatever the umask
    finally:
        os.close(fd)


def summary(closure: Closure, scale: float) -> dict[str, object]:
    return {
        "bytes": sum(p.size for p in closure.paths),
        "edit": closure.edit,
        "files": sum(p.file_count for p in closure.paths),
        "leaf": closure.leaf.name,
        "max_layers": closure.max_layers,
        "paths": [
            {
                "bytes": p.size,
                "deps": [closure.paths[i].name for i in p.deps],
                "files": p.file_count,
                "lib64": p.lib64,
                "name": p.name,
                "store_path": p.store_path,
            }
            for p in closure.paths
        ],
        "scale": scale,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory to create (must be new or empty)")
    parser.add_argument("--scale", type=float, default=1.0, help="bytes and files x F (default 1)")
    parser.add_argument("--strata", type=Path, default=STRATA, help="strata checkout for WORKSPACE")
    args = parser.parse_args()
    try:
        closure = generate(args.out, args.scale, args.strata.resolve())
    except (ValueError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    files = sum(p.file_count for p in closure.paths)
    size = sum(p.size for p in closure.paths)
    print(f"{args.out}: {len(closure.paths)} store paths, {files} files, {size / 2**30:.2f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
