"""tools/bench remote_cache: a fresh clone built from a real nginx cache vs a local cold build.

Two workloads, each measured in this one run:

* the layered example (`//examples/layered:layered`, the issue's benchmark),
  in copies of this checkout, built by `tools/strata build`: a local cold build
  (empty output base, no remote cache), team A filling the cache, and team B,
  a fresh copy with an empty output base, building through the cache;
* a generated layered workspace (N store-path directories of a few files each;
one deterministic tar+gzip layer action per path; one image action over all
layers, tagged no-remote-cache as the image rules tag it) is built:

  1. cold, locally, no remote cache                 (the baseline)
  2. by team A with --remote_cache                  (fills the server)
  3. by team B, a fresh copy with an empty cache    (the measured case)

and the bytes moved and wall times are printed. Each cold build of the example
includes making @strata_tools (pip from the lock file) and the analysis, as a
fresh clone's first build does. With `--latency-ms N`, team B is built a second
time, through a proxy that delays every request by N ms (a cache on another
machine rather than on 127.0.0.1; latency_proxy.py).
Usage: tools/bench remote_cache [--only example|synthetic] [--paths N] [--kib K]
                                [--latency-ms N]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

sys.path.insert(0, str(Path(__file__).resolve().parent))

from latency_proxy import LatencyProxy  # noqa: E402

from nginx_server import NginxCache  # noqa: E402
from strata.engine.action import Action  # noqa: E402
from strata.engine.build import ExecutionConfig, execute  # noqa: E402
from strata.engine.cache.http import RemoteOptions  # noqa: E402
from strata.engine.execution.report import BuildStats, Reporter  # noqa: E402
from strata.engine.execution.scheduler import BuildOptions  # noqa: E402
from strata.engine.outputbase import OutputBase  # noqa: E402

BIN = "bazel-out/k8-fastbuild/bin"
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = "//examples/layered:layered"
_SUMMARY = re.compile(r"(\d+) actions: (\d+) executed, (\d+) cache hits")
TAR = "tar --sort=name --mtime=@1 --owner=0 --group=0 --numeric-owner --format=gnu -h -cf -"


def make_workspace(root: Path, paths: int, kib: int) -> list[Action]:
    rng = random.Random(7)
    (root / "WORKSPACE").parent.mkdir(parents=True, exist_ok=True)
    (root / "WORKSPACE").write_text("")
    actions = []
    layers = []
    for i in range(paths):
        d = root / "store" / f"p{i:03d}"
        d.mkdir(parents=True)
        for j in range(4):
            (d / f"f{j}").write_bytes(rng.randbytes(kib * 1024))
        inputs = sorted(f"store/p{i:03d}/f{j}" for j in range(4))
        out = f"{BIN}/layers/p{i:03d}.tar.gz"
        layers.append(out)
        actions.append(
            Action(
                owner=f"//store:p{i:03d}",
                mnemonic="StorePath",
                progress_message="",
                argv=("/bin/sh", "-c", f"{TAR} store/p{i:03d} | gzip -n > {out}"),
                inputs=tuple(inputs),
                outputs=(out,),
            )
        )
    actions.append(
        Action(
            owner="//img:app",
            mnemonic="ImageAssemble",
            progress_message="",
            argv=("/bin/sh", "-c", f"cat {' '.join(layers)} > {BIN}/img/app.tar"),
            inputs=tuple(sorted(layers)),
            outputs=(f"{BIN}/img/app.tar",),
            tags=("no-remote-cache",),
        )
    )
    return actions


def build(
    ws: Path, out: Path, actions: list[Action], remote: RemoteOptions | None
) -> tuple[float, BuildStats, str]:
    stream = io.StringIO()
    config = ExecutionConfig(BuildOptions(jobs=2), disk_cache=out / "disk", remote=remote)
    wanted = [o for a in actions for o in a.outputs]
    t0 = time.perf_counter()
    stats = execute(OutputBase(out / "base", ws), actions, wanted, config, Reporter(stream))
    return time.perf_counter() - t0, stats, stream.getvalue()


def moved(log: str) -> tuple[int, int]:
    m = re.search(r"(\d+) bytes downloaded, (\d+) bytes uploaded", log)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def copy_checkout(dest: Path) -> Path:
    """A fresh clone of this checkout's working tree (tracked and new files, not ignored)."""
    names = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for rel in filter(None, names):
        src = ROOT / os.fsdecode(rel)
        if src.is_file() and not src.is_symlink():
            out = dest / os.fsdecode(rel)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out)
    return dest


def strata_build(ws: Path, base: Path, *flags: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(ROOT / "tools" / "strata"), "build", f"--output_base={base}", *flags, EXAMPLE],
        cwd=ws,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"strata build {EXAMPLE} failed:\n{proc.stderr[-3000:]}")
    return elapsed, proc.stderr


def executed(log: str) -> str:
    m = _SUMMARY.search(log)
    return f"{m.group(2)} of {m.group(1)} actions executed" if m else "?"


def bench_example(tmp: Path, server: NginxCache) -> None:
    url = f"--remote_cache={server.url}/example"
    snapshot = copy_checkout(tmp / "ex-snapshot")  # one snapshot: all three see the same files

    def clone(name: str) -> Path:
        return Path(shutil.copytree(snapshot, tmp / name, symlinks=True))

    t_local, log_local = strata_build(clone("ex-local"), tmp / "ex-out-local")
    t_a, log_a = strata_build(clone("ex-a"), tmp / "ex-out-a", url)
    t_b, log_b = strata_build(clone("ex-b"), tmp / "ex-out-b", url)
    down_a, up_a = moved(log_a)
    down_b, up_b = moved(log_b)
    image = next((tmp / "ex-out-b").glob(f"execroot/*/{BIN}/examples/layered/layered.tar"))
    print(f"{EXAMPLE} (image {image.stat().st_size} B, in copies of this checkout)")
    print(f"  local cold build       : {t_local:7.2f} s  {executed(log_local)}")
    print(
        f"  team A (fills cache)   : {t_a:7.2f} s  {executed(log_a)}  "
        f"uploaded {up_a} B, downloaded {down_a} B"
    )
    print(
        f"  team B (fresh clone)   : {t_b:7.2f} s  {executed(log_b)}  "
        f"downloaded {down_b} B, uploaded {up_b} B"
    )
    print(f"  fresh clone vs local cold build: {t_b / t_local:.2f}x the time")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=("example", "synthetic"), help="run one workload")
    p.add_argument("--paths", type=int, default=60)
    p.add_argument("--kib", type=int, default=64, help="approximate KiB per file")
    p.add_argument(
        "--latency-ms", type=float, default=0, help="also team B with this delay per request"
    )
    args = p.parse_args()
    nginx_bin = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if nginx_bin is None:
        print(
            "error: tools/bench remote_cache: nginx is not installed; apt-get install nginx-light"
        )
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="strata-bench-rc-"))
    server = NginxCache(tmp / "nginx")
    server.start(nginx_bin)
    try:
        if args.only != "synthetic":
            bench_example(tmp, server)
        if args.only == "example":
            return 0
        actions = make_workspace(tmp / "ws-local", args.paths, args.kib)
        make_workspace(tmp / "ws-a", args.paths, args.kib)
        make_workspace(tmp / "ws-b", args.paths, args.kib)
        remote = RemoteOptions(url=server.url + "/bench")
        t_local, s_local, _ = build(tmp / "ws-local", tmp / "out-local", actions, None)
        t_a, s_a, log_a = build(tmp / "ws-a", tmp / "out-a", actions, remote)
        t_b, s_b, log_b = build(tmp / "ws-b", tmp / "out-b", actions, remote)
        down_a, up_a = moved(log_a)
        down_b, up_b = moved(log_b)
        layer_bytes = sum(p.stat().st_size for p in (tmp / "out-b/base").rglob("*.tar.gz"))
        image = next((tmp / "out-b/base").rglob("app.tar"))
        print(
            f"generated workspace: {args.paths} store paths, {len(actions)} actions, "
            f"{layer_bytes} bytes of layers, image {image.stat().st_size} bytes"
        )
        print(f"local cold build       : {t_local:7.2f} s  executed {s_local.executed}")
        print(
            f"team A (fills cache)   : {t_a:7.2f} s  executed {s_a.executed}  "
            f"uploaded {up_a} B, downloaded {down_a} B"
        )
        print(
            f"team B (fresh clone)   : {t_b:7.2f} s  executed {s_b.executed}  "
            f"remote hits {s_b.cache_hits}  downloaded {down_b} B, uploaded {up_b} B"
        )
        print(f"fresh clone vs local cold build: {t_b / t_local:.2f}x the time")
        if args.latency_ms:
            proxy = LatencyProxy(("127.0.0.1", server.port), args.latency_ms / 1000)
            try:
                far = RemoteOptions(url=f"http://127.0.0.1:{proxy.port}/bench")
                make_workspace(tmp / "ws-c", args.paths, args.kib)
                t_c, s_c, _ = build(tmp / "ws-c", tmp / "out-c", actions, far)
            finally:
                proxy.close()
            print(
                f"team B, {args.latency_ms:g} ms a request: {t_c:7.2f} s  executed "
                f"{s_c.executed}  remote hits {s_c.cache_hits}  ({t_c / t_local:.2f}x local cold)"
            )
        print(
            f"server holds {sum(len(v) for v in server.entries('cas').values())} B of blobs "
            f"(image not uploaded: {image.stat().st_size} B saved)"
        )
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
