"""Layer writing throughput and memory, against command-line baselines in the same run.

Baseline (the floor a one-pass writer can hope for):
    tar --sort=name -cf - DIR | tee OUT | openssl dgst -sha256
Ours: `strata.oci.layer` writing the same tree uncompressed (tar + diff_id +
blob file), then gzip and zstd, compared with `tar | pigz` and `tar | zstd -T0`
where those are installed. Each measurement runs in a fresh process, after one
warm-up pass, so the page cache is equally warm for all; peak RSS is that
process's ru_maxrss.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OURS = """
import sys
from strata.oci.layer import write_layer_from_entries
from strata.oci.tree import LayerTree
tree = LayerTree()
tree.add_path(sys.argv[1], "data")
d = write_layer_from_entries(sys.argv[2], sys.argv[3], tree.entries())
print(d.digest)
"""


def generate(root: Path, size_mib: int) -> tuple[int, int]:
    """Many small files and a few large ones; half random, half compressible text."""
    rnd = random.Random(1)
    words = b"layer store path image digest reproducible content address nix bazel ".split()
    budget = size_mib << 20
    large = budget // 3
    files = 0
    for i in range(4):
        with open(root / f"large-{i}.bin", "wb") as f:
            left = large // 4
            while left > 0:
                n = min(left, 4 << 20)
                f.write(
                    rnd.randbytes(n // 2) + b" ".join(rnd.choices(words, k=n // 16))[: n - n // 2]
                )
                left -= n
        files += 1
    small_budget = budget - large
    written = 0
    i = 0
    while written < small_budget:
        d = root / f"pkg{i % 97:02d}" / f"sub{i % 13}"
        d.mkdir(parents=True, exist_ok=True)
        n = rnd.choice((200, 1500, 8000, 40000, 120000))
        body = rnd.randbytes(n // 2) + b" ".join(rnd.choices(words, k=n // 12))[: n - n // 2]
        (d / f"f{i}").write_bytes(body)
        written += n
        files += 1
        i += 1
    return files, large + written


def timed(cmd: list[str], shell: bool = False) -> tuple[float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run(
        cmd if not shell else " ".join(cmd), shell=shell, check=True, stdout=subprocess.DEVNULL
    )
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(after, before)


def best(n: int, cmd: list[str], shell: bool = False) -> tuple[float, int]:
    runs = [timed(cmd, shell) for _ in range(n)]
    return min(r[0] for r in runs), max(r[1] for r in runs)


def rss_of(cmd: list[str]) -> int:
    """Peak RSS (KiB) of one child, measured by GNU time-like wait4."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"benchmark command failed: {cmd}")
    return usage.ru_maxrss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024, help="tree size (default 1024)")
    ap.add_argument("--runs", type=int, default=2, help="runs per measurement; the best counts")
    ap.add_argument("--dir", default=None, help="work directory (default: a temp dir)")
    args = ap.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="strata-bench-"))
    tree = work / "tree"
    tree.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    try:
        t0 = time.perf_counter()
        files, size = generate(tree, args.size_mib)
        took = time.perf_counter() - t0
        print(f"tree: {files} files, {size / 2**20:.0f} MiB (generated in {took:.1f}s)")
        out = work / "out"
        base_cmd = [f"tar --sort=name -cf - -C {tree} . | tee {out} | openssl dgst -sha256"]
        ours = [py, "-c", OURS, str(tree), str(out), "none"]
        best(1, base_cmd, shell=True)  # warm the page cache
        base_t, _ = best(args.runs, base_cmd, shell=True)
        ours_t, _ = best(args.runs, ours)
        rss = rss_of(ours)
        print(f"floor  tar|tee|openssl : {base_t:6.2f}s  {size / base_t / 2**20:7.0f} MiB/s")
        print(
            f"strata layer (none)    : {ours_t:6.2f}s  {size / ours_t / 2**20:7.0f} MiB/s"
            f"  ratio {ours_t / base_t:.2f}x (goal <= 1.3x)"
            f"  peak RSS {rss / 1024:.0f} MiB (goal <= 150)"
        )
        for kind, tool in (("gzip", "pigz"), ("zstd", "zstd")):
            ours_c = [py, "-c", OURS, str(tree), str(out), kind]
            our_t, _ = best(args.runs, ours_c)
            rss = rss_of(ours_c)
            csize = out.stat().st_size
            line = (
                f"strata layer ({kind})    : {our_t:6.2f}s  {size / our_t / 2**20:7.0f} MiB/s"
                f"  {csize / size:.1%} of input  peak RSS {rss / 1024:.0f} MiB"
            )
            if shutil.which(tool):
                flags = "-T0 -3 -q" if tool == "zstd" else ""
                cmd = [f"tar --sort=name -cf - -C {tree} . | {tool} {flags} -c > {out}"]
                tool_t, _ = best(args.runs, cmd, shell=True)
                line += f"  vs tar|{tool} {tool_t:.2f}s: ratio {our_t / tool_t:.2f}x"
            else:
                line += f"  ({tool} not installed: no baseline)"
            print(line)
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
