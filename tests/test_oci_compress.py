from __future__ import annotations

import gzip
import io
import random

import pytest
import zstandard

from strata.oci import compress
from strata.oci.compress import compressing, detect_compressor, layer_media_type


def _data() -> bytes:
    rnd = random.Random(7)
    return b"".join(
        rnd.randbytes(rnd.randint(1, 4000)) + b"z" * rnd.randint(1, 40000) for _ in range(300)
    )


def _compress(kind: str, data: bytes, chunks: list[int]) -> bytes:
    out = io.BytesIO()
    with compressing(kind, out) as w:
        pos = 0
        for c in chunks:
            w.write(data[pos : pos + c])
            pos += c
        w.write(data[pos:])
    return out.getvalue()


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_output_depends_only_on_input(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data()
    outputs = set()
    for threads in (1, 2, 4):
        monkeypatch.setattr(compress, "_threads", lambda t=threads: t)
        for chunks in ([], [1] * 7 + [5000] * 300, [512] * 3000, [3 << 20]):
            outputs.add(_compress(kind, data, chunks))
    assert len(outputs) == 1
    blob = outputs.pop()
    assert detect_compressor(blob) == kind
    if kind == "gzip":
        assert gzip.decompress(blob) == data
        assert blob[3] == 0  # no FNAME/FEXTRA flags
        assert blob[4:8] == b"\0\0\0\0"  # mtime 0
    else:
        assert zstandard.ZstdDecompressor().decompressobj().decompress(blob) == data


def test_none_passes_through() -> None:
    assert _compress("none", b"abc" * 100, [5]) == b"abc" * 100


def test_media_types() -> None:
    assert layer_media_type("gzip") == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert layer_media_type("none") == "application/vnd.oci.image.layer.v1.tar"
    assert layer_media_type("zstd") == "application/vnd.oci.image.layer.v1.tar+zstd"
    assert (
        layer_media_type("gzip", docker=True) == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    )
    assert layer_media_type("none", docker=True) == "application/vnd.docker.image.rootfs.diff.tar"
