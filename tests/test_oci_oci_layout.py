from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from image_helpers import small_image
from strata.oci.docker_archive import write_docker_archive
from strata.oci.oci_layout import write_oci_layout

# Golden digests of the fixed small image (tests/image_helpers.small_image, tag "v1").
# Any change in tar headers, compression, JSON serialisation or config layout shows up
# here: update them only for an intended format change, and say so in the commit.
GOLDEN = {
    "config_digest": "sha256:7956b6fe4a8b94671069dc469f3fe97230819fe90f81d36836c99d705f684fdb",
    "manifest_digest": "sha256:8f8c99edccedb5bb950231296179ec050de2fdf6a03b73932dd502ce7b54aafc",
    "docker_manifest_digest": (
        "sha256:7596c257d9f7eabe818ea117693e7d448f1ff9148a7a3b5493807963d29ab99b"
    ),
    "layers": [
        "sha256:193524eccf9f51d3a0467c8a40e8bb5710617ccac3a801e21e91493b6637a743",
        "sha256:ae70d6401b07c097416bbcde6849da4d202f35e5ccbb2f1e766a0d21b8820404",
    ],
    "docker_archive": "sha256:e19f7dca681ad97f7c453ac3f06df3a10d5d48a934b5f2152062aab0b10002b6",
    "index": "sha256:a4c2a470ef9104a94909e2ab58592885b5bc8a6555109532549e6bda20a2d29f",
}


def tree(root: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mode, p.read_bytes() if p.is_file() else b"")
        for p in sorted(root.rglob("*"))
    }


def build(tmp: Path) -> tuple[dict[str, object], bytes, dict[str, tuple[int, bytes]]]:
    tmp.mkdir()
    img = small_image(tmp, tag="v1").image
    write_docker_archive(tmp / "img.tar", [img])
    write_oci_layout(tmp / "layout", [img])
    return img.info(), (tmp / "img.tar").read_bytes(), tree(tmp / "layout")


def test_layout_structure(tmp_path: Path) -> None:
    img = small_image(tmp_path, tag="v1").image
    layout = tmp_path / "layout"
    write_oci_layout(layout, [img])
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_text())
    (entry,) = index["manifests"]
    assert entry["annotations"] == {
        "io.containerd.image.name": "example.com/strata/small:v1",
        "org.opencontainers.image.ref.name": "v1",
    }
    assert entry["platform"] == {"architecture": "amd64", "os": "linux"}
    blobs = layout / "blobs" / "sha256"
    for blob in blobs.iterdir():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    manifest = json.loads((blobs / entry["digest"].split(":")[1]).read_bytes())
    assert [layer["digest"] for layer in manifest["layers"]] == [b.digest for b in img.layers]
    assert sorted(p.name for p in blobs.iterdir()) == sorted(
        d.split(":")[1]
        for d in [entry["digest"], img.config_digest, *[b.digest for b in img.layers]]
    )


def test_golden_digests(tmp_path: Path) -> None:
    info, archive, layout = build(tmp_path / "a")
    got = {
        "config_digest": info["config_digest"],
        "manifest_digest": info["manifest_digest"],
        "docker_manifest_digest": info["docker_manifest_digest"],
        "layers": info["layers"],
        "docker_archive": "sha256:" + hashlib.sha256(archive).hexdigest(),
        "index": "sha256:" + hashlib.sha256(layout["index.json"][1]).hexdigest(),
    }
    assert got == GOLDEN


def test_reproducible_across_runs_and_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = build(tmp_path / "one")
    monkeypatch.chdir(tmp_path)
    os.umask(0o077)
    try:
        second = build(tmp_path / "two-different-place")
    finally:
        os.umask(0o022)
    assert first == second
