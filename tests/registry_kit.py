"""Debian's docker-registry started for a test module (`registry(mode)`: plain, htpasswd or
tls), a client for it, and small images to push (test_registry_realtools*.py)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

from image_helpers import app_layer, busybox_layer, make_layer
from realtools import need, run
from registry_server import RegistryServer
from strata.oci.image import Image, assemble
from strata.oci.platform import Platform, parse_platform
from strata.registry.client import RegistryClient
from strata.registry.endpoint import Options, Registry

BUSYBOX = "/bin/busybox"
AMD64 = parse_platform("x86_64")
ARM64 = parse_platform("aarch64")


def registry(mode: str) -> Iterator[RegistryServer]:
    root = Path(tempfile.mkdtemp(prefix=f"strata-registry-{mode}-", dir="/tmp"))
    server = RegistryServer(root, mode).start()
    try:
        yield server
    finally:
        server.stop()


def client(server: RegistryServer, **kw: object) -> RegistryClient:
    opts: dict[str, object] = {"retries": 1, "backoff": 0.0, "env": {}}
    opts.update(kw)
    return RegistryClient(Registry.parse(server.address), Options(**opts))  # type: ignore[arg-type]


def busybox_image(tmp: Path, platform: Platform = AMD64, extra: bytes = b"") -> Image:
    if not Path(BUSYBOX).is_file():
        need("busybox")

    def fill(tar):  # type: ignore[no-untyped-def]
        busybox_layer(BUSYBOX)(tar)

    blobs = [make_layer(tmp / "busybox", fill, "gzip")[0]]
    if extra:
        blobs.append(
            make_layer(tmp / "extra", lambda t: t.add_bytes("etc/extra", extra), "gzip")[0]
        )
    return assemble(
        layers=blobs,
        fields={"Cmd": ["/bin/sh", "-c", "echo hello from the registry"]},
        platform=platform,
        name="strata-test/busybox",
        tag="v1",
    ).image


def small(tmp: Path, platform: Platform, text: bytes) -> Image:
    a = make_layer(tmp / "app", app_layer, "gzip")[0]
    b = make_layer(tmp / "note", lambda t: t.add_bytes("note.txt", text), "none")[0]
    return assemble(
        layers=[a, b], fields={"Cmd": ["/opt/app/run"]}, platform=platform, name="x/small"
    ).image


def skopeo_push(src: str, server: RegistryServer, dest: str, *extra: str) -> None:
    need("skopeo")
    run(
        "skopeo", "copy", "--preserve-digests", "--dest-tls-verify=false", *extra,
        src, f"docker://{server.host}/{dest}",
    )  # fmt: skip
