"""Small fixed layers and images for the image-assembly tests."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from strata.oci.image import Assembled, BaseImage, Blob, assemble
from strata.oci.layer import LayerDescriptor, write_layer
from strata.oci.platform import parse_platform
from strata.oci.tarwriter import TarWriter


def make_layer(
    out: Path, fill: Callable[[TarWriter], None], compressor: str = "gzip"
) -> tuple[Blob, Path]:
    """Write a layer blob at `out` and its descriptor beside it; return (Blob, descriptor)."""
    desc = write_layer(out, compressor, fill)
    desc_path = out.with_name(out.name + ".json")
    desc_path.write_text(json.dumps(desc.to_json(), sort_keys=True))
    return blob_of(out, desc), desc_path


def blob_of(path: Path, desc: LayerDescriptor) -> Blob:
    return Blob(path, desc.digest, desc.size, desc.diff_id, desc.compressor)


def app_layer(tar: TarWriter) -> None:
    tar.add_dir("etc")
    tar.add_bytes("etc/motd", b"hello from strata\n")
    tar.add_dir("opt")
    tar.add_dir("opt/app")
    tar.add_bytes("opt/app/run", b"#!/bin/sh\necho run\n", mode=0o755)
    tar.add_symlink("opt/app/current", "run")


def data_layer(tar: TarWriter) -> None:
    tar.add_dir("srv", mode=0o750)
    tar.add_bytes("srv/data.txt", b"data\n", mode=0o600, uid=1000, gid=1000)


def busybox_layer(busybox: str, marker: str = "") -> Callable[[TarWriter], None]:
    """/bin/busybox with sh and env links; `marker` makes the layer (and its diff_id) unique."""
    size = Path(busybox).stat().st_size

    def fill(tar: TarWriter) -> None:
        tar.add_dir("bin")
        tar.add_file("bin/busybox", busybox, size, mode=0o755)
        tar.add_symlink("bin/env", "busybox")
        tar.add_symlink("bin/sh", "busybox")
        if marker:
            tar.add_bytes("marker", marker.encode())

    return fill


def small_image(
    tmp: Path,
    *,
    compressors: Sequence[str] = ("gzip", "none"),
    config: dict[str, Any] | None = None,
    name: str | None = "example.com/strata/small",
    tag: str | None = None,
    base: BaseImage | None = None,
) -> Assembled:
    fills = [app_layer, data_layer]
    blobs = [
        make_layer(tmp / f"layer{i}", fill, comp)[0]
        for i, (fill, comp) in enumerate(zip(fills, compressors, strict=False))
    ]
    return assemble(
        layers=blobs,
        fields=config if config is not None else {"Cmd": ["/opt/app/run"], "Env": ["A=1"]},
        platform=parse_platform("x86_64"),
        name=name,
        tag=tag,
        base=base,
    )


def wrong_diff_id_image(tmp: Path, compressor: str) -> tuple[Assembled, str]:
    """An image whose first (compressed) layer decompresses to other bytes than its config's
    diff_id, every digest otherwise right; returns it and the diff_id the layer really has."""
    real = make_layer(tmp / f"real-{compressor}", app_layer, compressor)[0]
    claimed = make_layer(tmp / f"claimed-{compressor}", data_layer, compressor)[0]
    lying = Blob(real.path, real.digest, real.size, claimed.diff_id, real.compressor)
    image = assemble(
        layers=[lying],
        fields={"Cmd": ["/opt/app/run"]},
        platform=parse_platform("x86_64"),
        name="example.com/strata/lying",
        tag="v1",
    )
    return image, real.diff_id


def add_member(tf: tarfile.TarFile, name: str, data: bytes = b"", *, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    if link:
        info.type = tarfile.SYMTYPE
        info.linkname = link
        tf.addfile(info)
    else:
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
