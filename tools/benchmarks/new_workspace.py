"""tools/bench new_workspace: the first build of a new workspace, the tools installed elsewhere.

A new workspace (new output base) builds one `store_path` of one file, the
way a user's first `strata build` does: loading, `@strata_tools` and the
action. Measured in the same run, in fresh temporary directories:

* shared: `$STRATA_TOOLS_CACHE` already holds the tool's install (made by a
  throwaway workspace first), so `@strata_tools` is hard links to it, checked
  file by file (goal <= 10 s);
* unshared (the baseline): `STRATA_TOOLS_CACHE=""`, so pip installs the
  lock's wheels into the output base, as every first build did before;
* a no-op rebuild of the shared workspace: the engine's start and analysis,
  which every build pays.

The load average is printed at start and end: on a shared machine wall time
is noisy. Usage: tools/bench new_workspace [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORKSPACE = """local_repository(name = "strata", path = "{root}")

load("@strata//rules:repositories.bzl", "strata_dependencies")

strata_dependencies()
"""
BUILD = """load("@strata//rules:defs.bzl", "store_path")

store_path(name = "one-1.0", srcs = {"one.txt": "share/one.txt"})
"""


def new_workspace(tmp: Path, name: str) -> Path:
    ws = tmp / name
    ws.mkdir()
    (ws / "WORKSPACE").write_text(WORKSPACE.format(root=ROOT))
    (ws / "BUILD").write_text(BUILD)
    (ws / "one.txt").write_text("one file\n")
    return ws


def build(ws: Path, cache: str) -> float:
    """Wall seconds of `strata build //:one-1.0` in `ws` (its output base beside it)."""
    argv = [sys.executable, "-m", "strata", "build", f"--output_base={ws}.ob", "//:one-1.0"]
    env = {**os.environ, "STRATA_TOOLS_CACHE": cache, "PYTHONPATH": str(ROOT / "python")}
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=ws, env=env, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"strata build in {ws} failed:\n{proc.stderr[-3000:]}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="new workspaces per case (best is shown)")
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    tmp = Path(tempfile.mkdtemp(prefix="strata-bench-new-ws-"))
    try:
        cache = str(tmp / "tools-cache")
        build(new_workspace(tmp, "warm-up"), cache)  # installs the tools in the cache
        shared = [build(new_workspace(tmp, f"shared{i}"), cache) for i in range(args.runs)]
        noop = min(build(tmp / f"shared{i}", cache) for i in range(args.runs))
        unshared = [build(new_workspace(tmp, f"unshared{i}"), "") for i in range(args.runs)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    best, base = min(shared), min(unshared)
    print(f"first build, tools shared    : {best:6.2f}s  (goal <= 10 s; runs: {_list(shared)})")
    print(f"first build, tools unshared  : {base:6.2f}s  (pip: {_list(unshared)})")
    print(f"no-op rebuild (new process)  : {noop:6.2f}s  (engine start and analysis)")
    print(f"ratio shared/unshared: {best / base:.2f}x; tool set-up ~{max(best - noop, 0):.2f}s")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


def _list(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}s" for t in times)


if __name__ == "__main__":
    raise SystemExit(main())
