#!/usr/bin/env python3
"""Benchmark: popularity grouping and auto-layer on a generated 10,000-path closure.

Goal: each under 1 s. The graph looks like a real closure: a few
hundred low-level libraries everything leans on, most paths referencing a
handful of others, sizes spread over orders of magnitude. Seeded, so every
run measures the same graph. Prints seconds for each phase.

    PYTHONPATH=python tools/bench layering [--paths N] [--max-layers N] [--concat-mb N]

It also times grouped-layer concatenation of cached per-path tars against
`cat` of the same tars (goal: at most 1.2x).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))

from strata.layering.autolayer import auto_layer  # noqa: E402
from strata.layering.graph import Graph  # noqa: E402
from strata.layering.popularity import group_by_popularity, order_by_popularity  # noqa: E402
from strata.store import base32  # noqa: E402
from strata.store.closure import PathInfo, closure_of  # noqa: E402
from strata.store.layer import concat_layers, write_store_layer  # noqa: E402
from strata.store.path import source_path  # noqa: E402


def generate(n: int, seed: int = 1) -> list[PathInfo]:
    rng = random.Random(seed)
    paths = [
        f"/nix/store/{base32.encode(hashlib.sha256(str(i).encode()).digest()[:20])}-pkg{i}"
        for i in range(n)
    ]
    infos = []
    for i, p in enumerate(paths):
        later = n - i - 1
        k = min(later, rng.randint(0, 8))
        # Prefer the low-level end (high indices), like libc, zlib, bash.
        refs = {
            i + 1 + min(later - 1, int(rng.paretovariate(1.2)) * rng.randint(1, 40))
            for _ in range(k)
        }
        size = int(rng.lognormvariate(11, 2.5))
        infos.append(PathInfo(p, tuple(paths[r] for r in refs) + (p,), size, "sha256:"))
    return infos


def timed(label: str, fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn()
    print(f"{label:<32} {time.perf_counter() - start:8.3f} s")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=10_000)
    ap.add_argument("--max-layers", type=int, default=100)
    ap.add_argument("--concat-mb", type=int, default=128, help="0 skips the concat benchmark")
    args = ap.parse_args()
    infos = generate(args.paths)
    roots = [infos[0].path] + [i.path for i in infos[1 : args.paths // 100]]
    closure = timed("closure", lambda: closure_of(roots, infos))
    edges = sum(len(p.references) - 1 for p in closure.paths)
    print(f"{len(closure.paths)} paths, {edges} edges, max_layers {args.max_layers}")
    graph = timed("graph", lambda: Graph.of(closure))
    timed("popularity order", lambda: order_by_popularity(graph))
    layers = timed("popularity grouping", lambda: group_by_popularity(graph, args.max_layers))
    print(f"  {len(layers)} layers, last holds {len(layers[-1])} paths")
    auto = timed("auto-layer", lambda: auto_layer(graph, args.max_layers - 1))
    print(f"  {len(auto)} layers, largest holds {max(len(x) for x in auto)} paths")
    if args.concat_mb:
        bench_concat(args.concat_mb)


def bench_concat(total_mb: int) -> None:
    """Cached tars of 32 store paths (sizes varied), grouped vs cat."""
    rng = random.Random(2)
    with tempfile.TemporaryDirectory(prefix="strata-bench-", dir="/tmp") as tmp:
        root = Path(tmp)
        tars = []
        for i in range(32):
            src = root / f"src{i}"
            src.mkdir()
            for j in range(rng.randint(1, 20)):
                (src / f"f{j}").write_bytes(rng.randbytes(total_mb * 2**20 // 32 // 10))
            sp = str(source_path(hashlib.sha256(str(i).encode()).digest(), f"p{i}"))
            write_store_layer(root / f"{i}.tar", src, sp)
            tars.append(root / f"{i}.tar")
        size = sum(t.stat().st_size for t in tars)
        concat = timed("concatenate (sha256)", lambda: concat_layers(root / "g.tar", tars))
        start = time.perf_counter()
        with open(root / "cat.tar", "wb") as out:
            subprocess.run(["cat", *map(str, tars)], stdout=out, check=True)
        cat_s = time.perf_counter() - start
        print(f"{'cat of the same tars':<32} {cat_s:8.3f} s")
        print(f"  {size / 2**20:.0f} MiB in, {concat.uncompressed_size / 2**20:.0f} MiB out")


if __name__ == "__main__":
    main()
