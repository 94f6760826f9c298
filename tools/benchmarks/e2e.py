"""End to end at scale: a 300-path, 1.7 GiB closure into one layered image, with baselines.

Everything runs once, in this order, on the workspace of e2e_gen.py, so each
figure has its baseline from the same run on the same (page-cached) files:

  floor     tar --sort=name -cf - store | tee out.tar | openssl dgst -sha256
            (three times: the median is the floor)
  pigz      tar --sort=name -cf - store | pigz -nT | tee out.tgz | openssl dgst -sha256
  strata    in output base A: cold `big_raw`, then its OCI layout on request
            (`--output_groups=+oci`), two no-ops (new processes), `big`
            (gzip) with the store paths built, then one file of the leaf path
            changed and `big_raw` rebuilt (the file is restored afterwards);
            in output base B: cold `big`; in output base S: cold `big_stream`
            (`big_raw` as a stream_layered_image), then `strata run` of it
            piped, as the floor's tar is, into `tee out.tar | openssl`.
  cache     team A builds `big_raw` cold through an nginx WebDAV cache, team B
            a copy of the workspace through the warm cache (e2e_remote.py).
  bazel     Bazel (4.2.3 in CI) in output base C: server start, tool set-up,
            `build //:big_raw`, a no-op with the server up; then, untimed, its
            OCI layout: the image record (image.json) and the big_raw.oci layout
            (every file) are compared with strata's byte for byte.

Builds are plain `build`s: an image's default output is its record
(image.json, every digest), made from the layers' descriptors; the OCI layout
and the docker-archive are output groups, written when asked for. The one
build that asks for the layout is timed on its own, after the cold build, and
the two are added up against the floor, which writes the whole image.

"Cold" is a fresh output base with an empty disk cache, the strata tool
already installed: a throwaway build of //warmup installs it (pip), then
everything in the output base but external/ is deleted. Bazel's "build" is
likewise the build command alone, after `info` started its server and
`sync --only=strata_tools` installed the tool; its total counts all three.

Peak RSS: the engine's own (ru_maxrss of the strata process, written by a
wrapper at exit), the largest action's of each engine (VmHWM of the build's
processes, sampled: see e2e_measure.py) and Bazel's server (VmHWM).
Sizes are apparent bytes (`du -sb`, hard links counted once); output bases
are counted without external/ (the installed tool, the same for any closure).

No thresholds: the figures are printed, with ratios, and written as JSON
(--json). The machine may be shared: the load average at start and end is
printed with them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import e2e_gen  # noqa: E402
import e2e_remote  # noqa: E402
from e2e_bench import NO, Bench, mib, print_table, ratio, secs, size  # noqa: E402
from e2e_measure import (  # noqa: E402
    Run,
    du,
    existing_ancestor,
    process_cpu,
    remove,
    self_cpu,
    tree_sha256,
    vm_hwm,
)
from tree_cpu import children_cpu, how_measured  # noqa: E402

STRATA = HERE.parents[1]


BAZEL_FLAGS = ["--symlink_prefix=/", "--spawn_strategy=processwrapper-sandbox"]
FLOOR_RUNS = 3


def bin_dir(ob: Path) -> Path:
    return ob / "execroot" / "strata_e2e" / "bazel-out" / "k8-fastbuild" / "bin"


def measure(b: Bench, closure: e2e_gen.Closure, bazel: str | None) -> None:
    f = b.figures
    f["closure_bytes"] = sum(p.size for p in closure.paths)  # file bytes, as images hold them
    tar = "tar --sort=name -cf - store"
    # Writing the closure once is the floor's main cost, and on a virtual machine that
    # returns free memory to its host it swung from 3.4 to 11.1 s between three runs in a
    # row: the median of FLOOR_RUNS is the floor.
    runs = [
        b.shell(f"floor-{i}", f"{tar} | tee {b.work}/out.tar | openssl dgst -sha256")
        for i in range(1, FLOOR_RUNS + 1)
    ]
    floor = sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]
    f["floor_runs_s"] = [r.seconds for r in runs]
    b.record("floor", floor)
    f["tar_bytes"] = (b.work / "out.tar").stat().st_size
    b.drop(b.work / "out.tar")
    b.timed("floor: tar | tee | openssl", floor)
    b.row(f"  floor runs (the median of {FLOOR_RUNS})", " / ".join(secs(r.seconds) for r in runs))
    base = ("floor", floor)
    gz = base
    if shutil.which("pigz"):
        pigz = b.shell("pigz", f"{tar} | pigz -nT | tee {b.work}/out.tgz | openssl dgst -sha256")
        b.record("pigz", pigz)
        f["pigz_bytes"] = (b.work / "out.tgz").stat().st_size
        b.drop(b.work / "out.tgz")
        b.timed("tar | pigz | tee | openssl", pigz, base)
        b.row("  gzip ratio (tar bytes / tgz bytes)", f"{f['tar_bytes'] / f['pigz_bytes']:.2f}x")
        gz = ("tar | pigz", pigz)
    else:
        print("pigz not installed: no gzip baseline (apt-get install pigz)")

    # output base A: cold big_raw, two no-ops, big with the paths built, a one-file change
    ob = b.cold_output_base("strata-a")
    cold, engine = b.strata("strata-cold-big_raw", ob, "//:big_raw")
    b.record("strata_cold_big_raw", cold)
    record = bin_dir(ob) / "big_raw.image.json"
    f.update(
        strata_engine_rss_kib=engine,
        strata_largest_action_rss_kib=cold.peak_kib,
        strata_largest_action=cold.peak_what,
        strata_warning_lines=cold.warnings,
        strata_big_raw_record_sha256=hashlib.sha256(record.read_bytes()).hexdigest(),
        strata_big_raw_diff_ids=json.loads(record.read_bytes())["diff_ids"],
        strata_output_base_bytes=du(ob) - du(ob / "external"),
        strata_disk_cache_bytes=du(ob / "cache"),
    )
    layout, _ = b.strata("strata-big_raw-layout", ob, "//:big_raw", "--output_groups=+oci")
    b.record("strata_big_raw_layout", layout)
    f.update(
        strata_big_raw_layout_sha256=tree_sha256(bin_dir(ob) / "big_raw.oci"),
        strata_output_base_with_layout_bytes=du(ob) - du(ob / "external"),
    )
    with_layout = Run(cold.seconds + layout.seconds, cold.cpu + layout.cpu, "")
    b.timed("strata cold big_raw", cold, base)
    b.row("  actions run / warning lines", f"{cold.executed} / {cold.warnings}")
    b.timed("  then its OCI layout (+oci)", layout, base)
    b.timed("  cold + layout", with_layout, base)
    noops = []
    for i in (1, 2):
        noop, engine = b.strata(f"strata-noop-{i}", ob, "//:big_raw")
        b.record(f"strata_noop_{i}", noop)
        f[f"strata_noop_{i}_engine_rss_kib"] = engine
        b.timed(f"strata no-op {i} (new process)", noop, ("strata cold", cold))
        noops.append(noop)
    after, _ = b.strata("strata-big-after-big_raw", ob, "//:big")
    b.record("strata_big_after_big_raw", after)
    b.timed("strata big (gzip), paths built", after, gz)
    edit = b.ws / closure.edit
    original = edit.read_bytes()
    edit.write_bytes(original + b"one more line from tools/bench e2e\n")
    try:
        changed, _ = b.strata("strata-one-file-change", ob, "//:big_raw")
    finally:
        edit.write_bytes(original)
    b.record("strata_one_file_change", changed)
    b.timed("strata one-file change in the leaf", changed, ("strata cold", cold))
    b.row("  actions run", str(changed.executed))
    b.drop(ob)

    # output base B: cold big (gzip)
    ob = b.cold_output_base("strata-b")
    cold_big, engine = b.strata("strata-cold-big", ob, "//:big")
    b.record("strata_cold_big", cold_big)
    f.update(
        strata_cold_big_engine_rss_kib=engine,
        strata_cold_big_largest_action_rss_kib=cold_big.peak_kib,
        strata_cold_big_largest_action=cold_big.peak_what,
        strata_big_layers_bytes=du(bin_dir(ob) / "big.layers"),
    )
    b.drop(ob)
    b.timed("strata cold big (gzip)", cold_big, gz)
    measure_stream(b, base)

    e2e_remote.measure(b, cold, f["closure_bytes"], "//:big_raw", bin_dir)

    if bazel is None:
        print("bazel not installed: no Bazel baseline (apt-get install bazel-bootstrap)")
    else:
        run_bazel(b, bazel, cold, min(noops, key=lambda r: r.seconds))

    server = f.get("bazel_server_rss_kib")
    vs = ("bazel server", mib(server), ratio(f["strata_engine_rss_kib"], server)) if server else NO
    b.row("strata engine peak RSS (cold big_raw)", mib(f["strata_engine_rss_kib"]), vs)
    action = f"{mib(cold.peak_kib)} {cold.peak_what}"
    if "bazel_largest_action_rss_kib" in f:
        bazel_action = f"{mib(f['bazel_largest_action_rss_kib'])} {f['bazel_largest_action']}"
        vs = (
            "bazel largest action",
            bazel_action,
            ratio(cold.peak_kib, f["bazel_largest_action_rss_kib"]),
        )
    else:
        vs = NO
    b.row("strata largest action peak RSS", action, vs)
    closure_bytes = ("closure", size(f["closure_bytes"]))
    for what, key in (
        ("strata output base (no external/)", "strata_output_base_bytes"),
        ("strata disk cache", "strata_disk_cache_bytes"),
        ("strata output base, then + layout", "strata_output_base_with_layout_bytes"),
        ("bazel output base (no external/)", "bazel_output_base_bytes"),
    ):
        if key in f:
            b.row(what, size(f[key]), (*closure_bytes, ratio(f[key], f["closure_bytes"])))


def measure_stream(b: Bench, floor: tuple[str, Run]) -> None:
    """Output base S: the image streamed (streamLayeredImage's way), against the floor."""
    f = b.figures
    ob = b.cold_output_base("strata-s")
    built, _ = b.strata("strata-cold-big_stream", ob, "//:big_stream")
    b.record("strata_cold_big_stream", built)
    out = b.work / "out.tar"
    streamed = b.strata_run(
        "strata-stream", ob, "//:big_stream", f"tee {out} | openssl dgst -sha256"
    )
    b.record("strata_stream", streamed)
    f["strata_stream_bytes"] = out.stat().st_size
    same = archive_diff_ids(out) == f["strata_big_raw_diff_ids"]
    f["strata_stream_layers_identical"] = same
    b.drop(out)
    b.drop(ob)
    both = Run(built.seconds + streamed.seconds, built.cpu + streamed.cpu, "")
    b.timed("strata cold big_stream (build)", built, floor)
    b.timed("  then run | tee | openssl", streamed, floor)
    b.timed("  build + stream", both, floor)
    b.row("  its layers, against big_raw's", "MATCH" if same else "DIFFER")


def archive_diff_ids(path: Path) -> list[str]:
    """The layer diff_ids a docker-archive's config lists, checked against its layer members."""
    with tarfile.open(path) as tar:
        [manifest] = json.loads(_member(tar, "manifest.json"))
        listed: list[str] = json.loads(_member(tar, manifest["Config"]))["rootfs"]["diff_ids"]
        got = []
        for name in manifest["Layers"]:
            h = hashlib.sha256()
            src = tar.extractfile(name)
            while src is not None and (chunk := src.read(8 << 20)):
                h.update(chunk)
            got.append("sha256:" + h.hexdigest())
    return listed if got == listed else []


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    f = tar.extractfile(name)
    if f is None:
        raise SystemExit(f"error: tools/bench e2e: the streamed archive has no file {name}")
    return f.read()


def run_bazel(b: Bench, bazel: str, strata_cold: Run, strata_noop: Run) -> None:
    f = b.figures
    ob = b.work / "bazel-ob"
    cmd = [bazel, f"--output_base={ob}"]
    try:
        start = b.run("bazel-server-start", [*cmd, "info", "output_base"])
        pid = int(b.run("bazel-server-pid", [*cmd, "info", "server_pid"]).output.split()[-1])
        if not start.cpu_exact:  # the server's own start: in the start's cgroup, if it has one
            start.cpu += process_cpu(pid)
        tools = b.run("bazel-tool-setup", [*cmd, "sync", "--only=strata_tools"], server=pid)
        build = b.run("bazel-build", [*cmd, "build", *BAZEL_FLAGS, "//:big_raw"], server=pid)
        noop = b.run("bazel-noop", [*cmd, "build", *BAZEL_FLAGS, "//:big_raw"], server=pid)
        f["bazel_server_rss_kib"] = vm_hwm(pid)
        f["bazel_output_base_bytes"] = du(ob) - du(ob / "external")
        layout_flags = [*BAZEL_FLAGS, "--output_groups=+oci"]
        b.run("bazel-layout", [*cmd, "build", *layout_flags, "//:big_raw"], server=pid)
    finally:
        subprocess.run([*cmd, "shutdown"], cwd=b.ws, capture_output=True, check=False)
    total = Run(
        start.seconds + tools.seconds + build.seconds, start.cpu + tools.cpu + build.cpu, ""
    )
    for key, r in (
        ("bazel_server_start", start),
        ("bazel_tool_setup", tools),
        ("bazel_build_big_raw", build),
        ("bazel_total", total),
        ("bazel_noop", noop),
    ):
        b.record(key, r)
    f.update(
        bazel_largest_action_rss_kib=build.peak_kib,
        bazel_largest_action=build.peak_what,
        bazel_warning_lines=build.warnings,
        bazel_big_raw_layout_sha256=tree_sha256(bin_dir(ob) / "big_raw.oci"),
        bazel_big_raw_record_sha256=hashlib.sha256(
            (bin_dir(ob) / "big_raw.image.json").read_bytes()
        ).hexdigest(),
    )
    same = all(
        f[f"bazel_big_raw_{k}_sha256"] == f[f"strata_big_raw_{k}_sha256"]
        for k in ("layout", "record")
    )
    f["big_raw_identical"] = same
    b.drop(ob)
    b.timed("bazel server start (info)", start)
    b.timed("bazel tool set-up (sync)", tools)
    b.timed("bazel build big_raw (alone)", build)
    b.timed("bazel total (start + set-up + build)", total)
    b.timed("strata cold big_raw", strata_cold, ("bazel build alone", build))
    b.timed("strata best no-op", strata_noop, ("bazel no-op, server up", noop))
    b.row("big_raw image (record, OCI layout), strata vs bazel", "MATCH" if same else "DIFFER")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--scale", type=float, default=1.0, help="closure size x F (default 1: 1.7 GiB)"
    )
    ap.add_argument("--keep", type=Path, help="work in this new directory and keep everything")
    ap.add_argument("--json", type=Path, help="also write the figures here as JSON")
    args = ap.parse_args()
    try:
        e2e_gen.scaled(args.scale)
    except ValueError as e:
        print(f"error: tools/bench e2e: {e}", file=sys.stderr)
        return 1
    if args.keep and args.keep.exists() and any(args.keep.iterdir()):
        got = sorted(os.listdir(args.keep))[:3]
        print(
            f"error: tools/bench e2e: --keep: {args.keep} is not empty (got {got}); "
            "name a new directory",
            file=sys.stderr,
        )
        return 1
    # Output bases hold the closure several times over (layers, layer groups, OCI layout,
    # disk cache); with --keep all three stay.
    need = e2e_gen.scaled(args.scale)[0] * (30 if args.keep else 14)
    where = existing_ancestor(args.keep.resolve() if args.keep else Path(tempfile.gettempdir()))
    free = shutil.disk_usage(where).free
    if free < need:
        print(
            f"error: tools/bench e2e: {where}: needs about {size(need)} free at --scale "
            f"{args.scale} (got {size(free)}); free some space or use a smaller --scale",
            file=sys.stderr,
        )
        return 1
    work = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="strata-bench-e2e-"))
    work.mkdir(parents=True, exist_ok=True)
    bench = Bench(work / "ws", work, keep=args.keep is not None)
    bazel = shutil.which("bazel")
    f = bench.figures
    f.update(scale=args.scale, cpus=os.cpu_count(), load_start=os.getloadavg()[0], work=str(work))
    try:
        t0, cpu0 = time.perf_counter(), children_cpu() + self_cpu()
        closure = e2e_gen.generate(bench.ws, args.scale)
        f["generate_s"] = time.perf_counter() - t0
        f["generate_cpu_s"] = children_cpu() + self_cpu() - cpu0  # the pool's workers too
        f["paths"] = len(closure.paths)
        f["files"] = sum(p.file_count for p in closure.paths)
        print(
            f"closure: {f['paths']} store paths, {f['files']} files, "
            f"{size(sum(p.size for p in closure.paths))}, max_layers {closure.max_layers} "
            f"(generated in {f['generate_s']:.1f} s, {f['generate_cpu_s']:.1f} s cpu); "
            f"{f['cpus']} CPUs, "
            f"load average {f['load_start']:.1f}; work dir {work}",
            flush=True,
        )
        leaf = closure.leaf
        f.update(leaf=leaf.name, leaf_bytes=leaf.size, edit=closure.edit)
        print(f"one-file change: {closure.edit} ({leaf.size / 2**20:.1f} MiB leaf path)")
        print(how_measured())
        measure(bench, closure, bazel)
    except BaseException:
        if not args.keep:  # keep the logs, drop the gigabytes
            for entry in work.iterdir():
                if entry.name != "logs":
                    remove(entry)
            print(f"tools/bench e2e: logs kept in {work / 'logs'}", file=sys.stderr)
        raise
    if not args.keep:
        remove(work)
    f["load_end"] = os.getloadavg()[0]
    print_table(bench)
    load = f"load average: {f['load_start']:.1f} at start, {f['load_end']:.1f} at end"
    print(f"{load} ({f['cpus']} CPUs, shared machines make timings noisy)")
    if args.json:
        args.json.write_text(json.dumps(f, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
