"""Engine speed on a generated workspace of 1,000 targets, with Bazel in the same run.

Measures, for strata: loading + analysis in-process, a cold build (fresh
output base and cache), and a no-op rebuild as a user runs it (a new
process; goal <= 0.3 s). For Bazel (when installed): the cold build and the
no-op rebuild with its server already running, on the same workspace.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "python"))

from engine_gen import generate  # noqa: E402

from strata.engine.analysis.analysis import analyze  # noqa: E402


def timed(argv: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr[-3000:]}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packages", type=int, default=100)
    ap.add_argument("--targets", type=int, default=10)
    ap.add_argument("--noop-runs", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="strata-bench-engine-"))
    ws = tmp / "ws"
    try:
        generate(ws, args.packages, args.targets)
        n = args.packages * args.targets
        print(f"workspace: {n} targets in {args.packages} packages")

        t0 = time.perf_counter()
        result = analyze(ws, ["//..."], output_base=tmp / "analysis-ob")
        took = time.perf_counter() - t0
        print(f"strata load+analysis (in-process): {took:6.2f}s  ({len(result.actions)} actions)")

        strata = [sys.executable, "-m", "strata", "build", f"--output_base={tmp / 'ob'}", "//..."]
        cold = timed(strata, ws)
        noop = min(timed(strata, ws) for _ in range(args.noop_runs))
        print(f"strata cold build                 : {cold:6.2f}s")
        print(f"strata no-op rebuild (new process): {noop:6.2f}s  (goal <= 0.3 s)")

        if shutil.which("bazel"):
            root = tmp / "bazel-root"
            bazel = ["bazel", f"--output_user_root={root}"]
            build = [*bazel, "build", "--spawn_strategy=processwrapper-sandbox", "//..."]
            try:
                bcold = timed(build, ws)
                bnoop = min(timed(build, ws) for _ in range(args.noop_runs))
            finally:
                subprocess.run([*bazel, "shutdown"], cwd=ws, capture_output=True)
            print(f"bazel cold build (incl. server)   : {bcold:6.2f}s")
            print(f"bazel no-op rebuild (warm server) : {bnoop:6.2f}s")
            print(f"ratio strata/bazel: cold {cold / bcold:.2f}x, no-op {noop / bnoop:.2f}x")
        else:
            print("bazel not installed: no Bazel baseline")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
