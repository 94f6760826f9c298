"""tools/bench shallow: an image on a big shallow base, pulled, built and pushed twice.

One run, two real registries (Debian's docker-registry 2.8 on 127.0.0.1) and a
third for the baseline; every byte count is what registry A sent (the bodies of
GET answers, from its access log):

  base      one layer of N MiB of random bytes (incompressible), pushed to A
  pull      `ImagePull` full (the baseline) and `shallow`: bytes downloaded from A
  build     `ImageAssemble` of a small layer on the shallow base: bytes from A
  push A    `ImagePush` of the image to A, another repository: bytes downloaded
            from A, blobs and bytes uploaded (the new layer and the config only)
  push B    `ImagePush` to registry B: bytes read from A (the base layer, once),
            peak RSS of the push process, against `skopeo copy` of the base from
            A to C (the registry-to-registry copy users know), measured the same way

Usage: tools/bench shallow [--mib N]   (default 300, the size the issue names)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from image_helpers import app_layer, make_layer  # noqa: E402
from realtools import need  # noqa: E402
from registry_server import RegistryServer  # noqa: E402
from strata.oci.image import assemble  # noqa: E402
from strata.oci.oci_layout import write_oci_layout  # noqa: E402
from strata.oci.platform import parse_platform  # noqa: E402
from strata.oci.tarwriter import TarWriter  # noqa: E402
from strata.registry.client import Options, Registry, RegistryClient  # noqa: E402
from strata.registry.push import push  # noqa: E402

KB = 1000
MIB = 1 << 20


def _measured(argv: list[str]) -> tuple[float, int, str]:
    """`argv` under /usr/bin/time: (seconds, its peak RSS in bytes, what it printed).

    Not this process's own wait4: Linux counts in a child's ru_maxrss what it
    had at fork, this process's pages (the base layer was made here)."""
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "STRATA-BENCH %e %M", *argv],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = (proc.stdout + proc.stderr).splitlines()
    mark = [line for line in lines if line.startswith("STRATA-BENCH ")]
    if proc.returncode or not mark:
        raise SystemExit(f"error: {argv[0]} failed ({proc.returncode}):\n" + "\n".join(lines))
    _, seconds, kib = mark[-1].split()
    said = "\n".join(line for line in lines if not line.startswith("STRATA-BENCH "))
    return float(seconds), int(kib) * 1024, said


def _action(mnemonic: str, req: dict[str, object], root: Path) -> tuple[float, int, str]:
    """The action in a process of its own (`strata action`), as image_push's script runs it."""
    path = root / f"{mnemonic}.{time.monotonic_ns()}.json"
    path.write_text(json.dumps({**req, "schema_version": 1}, sort_keys=True))
    return _measured([sys.executable, "-m", "strata", "action", mnemonic, f"@{path}"])


def _base(root: Path, mib: int, a: RegistryServer) -> str:
    def fill(tar: TarWriter) -> None:
        tar.add_dir("opt")
        tar.add_bytes("opt/big.bin", os.urandom(mib * MIB))

    blob = make_layer(root / "big.layer", fill, "gzip")[0]
    base = assemble(layers=[blob], fields={}, platform=parse_platform("x86_64"), name="base/big")
    write_oci_layout(root / "base.oci", [base.image])
    client = RegistryClient(Registry.parse(a.address), Options(env={}))
    digest = push(client, "base/big", root / "base.oci", ["1"], where="bench").digest
    os.remove(blob.path)
    return digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=300, help="size of the base's layer")
    args = parser.parse_args()
    need("docker-registry")
    skopeo = need("skopeo")
    root = Path(tempfile.mkdtemp(prefix="strata-bench-shallow-"))
    a = RegistryServer(root / "a", access_log=True).start()
    b = RegistryServer(root / "b").start()
    c = RegistryServer(root / "c").start()
    try:
        digest = _base(root, args.mib, a)
        layer = args.mib * MIB
        pull = {"digest": digest, "registry": a.address, "repository": "base/big"}
        print(f"base: one {args.mib} MiB layer (random bytes), {digest[:19]}… on registry A")

        before = a.bytes_sent("GET", "/v2/")
        full_s, _, _ = _action(
            "ImagePull",
            {
                **pull,
                "blob_store": str(root / "store-full"),
                "outputs": {"oci_layout": str(root / "full")},
            },
            root,
        )
        full_bytes = a.bytes_sent("GET", "/v2/") - before

        before = a.bytes_sent("GET", "/v2/")
        shallow_s, _, _ = _action(
            "ImagePull",
            {
                **pull,
                "blob_store": str(root / "store"),
                "outputs": {"oci_layout": str(root / "shallow")},
                "shallow": True,
            },
            root,
        )
        shallow_bytes = a.bytes_sent("GET", "/v2/") - before

        top = make_layer(root / "top.layer", app_layer, "gzip")
        before = a.bytes_sent("GET", "/v2/")
        build_s, _, _ = _action(
            "ImageAssemble",
            {
                "base": {"path": str(root / "shallow")},
                "layers": [{"blob": str(top[0].path), "descriptor": str(top[1])}],
                "name": "team/app",
                "outputs": {"oci_layout": str(root / "app.oci")},
            },
            root,
        )
        build_bytes = a.bytes_sent("GET", "/v2/") - before

        before = a.bytes_sent("GET", "/v2/")
        info_a = root / "push-a.json"
        push_a_s, _, _ = _action(
            "ImagePush",
            {
                "image": str(root / "app.oci"),
                "outputs": {"push_info": str(info_a)},
                "registry": a.address,
                "repository": "team/app",
                "tags": ["1"],
            },
            root,
        )
        push_a_bytes = a.bytes_sent("GET", "/v2/") - before
        pushed_a = json.loads(info_a.read_bytes())

        before = a.bytes_sent("GET", "/v2/")
        push_b_s, push_b_rss, _ = _action(
            "ImagePush",
            {
                "image": str(root / "app.oci"),
                "registry": b.address,
                "repository": "team/app",
                "tags": ["1"],
            },
            root,
        )
        push_b_bytes = a.bytes_sent("GET", "/v2/") - before

        before = a.bytes_sent("GET", "/v2/")
        copy_s, copy_rss, _ = _measured(
            [
                skopeo,
                "copy",
                "--quiet",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                f"docker://{a.host}/base/big@{digest}",
                f"docker://{c.host}/base/big:1",
            ]
        )
        copy_bytes = a.bytes_sent("GET", "/v2/") - before
    finally:
        for server in (a, b, c):
            server.stop()

    rows = [
        ("pull, full (baseline)", f"{full_s:6.2f} s", f"{full_bytes:>13,} B from A", ""),
        (
            "pull, shallow",
            f"{shallow_s:6.2f} s",
            f"{shallow_bytes:>13,} B from A",
            f"1/{full_bytes // max(shallow_bytes, 1):,} of the full pull; goal <= 100 KB: "
            + ("met" if shallow_bytes <= 100 * KB else "NOT met"),
        ),
        (
            "build on the shallow base",
            f"{build_s:6.2f} s",
            f"{build_bytes:>13,} B from A",
            "goal <= 100 KB: " + ("met" if build_bytes <= 100 * KB else "NOT met"),
        ),
        (
            "push to A (another repo)",
            f"{push_a_s:6.2f} s",
            f"{push_a_bytes:>13,} B from A",
            f"uploaded {pushed_a['blobs_uploaded']} blobs, {pushed_a['bytes_uploaded']:,} B; "
            "goal <= 100 KB: " + ("met" if push_a_bytes <= 100 * KB else "NOT met"),
        ),
        (
            "push to B (streamed from A)",
            f"{push_b_s:6.2f} s",
            f"{push_b_bytes:>13,} B from A",
            f"{push_b_bytes / layer:.3f}x the layer; peak RSS {push_b_rss / MIB:.0f} MiB "
            f"= {push_b_rss / copy_rss:.2f}x skopeo's; goal <= 150 MB: "
            + ("met" if push_b_rss <= 150 * KB * KB else "NOT met"),
        ),
        (
            "skopeo copy A -> C (baseline)",
            f"{copy_s:6.2f} s",
            f"{copy_bytes:>13,} B from A",
            f"peak RSS {copy_rss / MIB:.0f} MiB",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    for name, seconds, moved, note in rows:
        print(f"  {name:<{width}}  {seconds}  {moved}  {note}")


if __name__ == "__main__":
    main()
