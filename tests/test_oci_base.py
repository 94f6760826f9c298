"""Base images read by strata.oci.base: docker-archives (ours, legacy, OCI-style), OCI
layouts, nested indexes by platform, and member paths that try to escape. Diff IDs and
malformed JSON: test_oci_base_checks.py."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from image_helpers import add_member, small_image
from strata.canonical import json_bytes
from strata.errors import UserError
from strata.oci.base import Selector, load_base
from strata.oci.docker_archive import write_docker_archive
from strata.oci.image import Image
from strata.oci.oci_layout import write_oci_layout
from strata.oci.platform import parse_platform


def legacy_archive(path: Path, img: Image, *, tags: list[str]) -> None:
    """The pre-25 `docker save` layout: `<id>/layer.tar` (uncompressed), `<hex>.json`."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        layers = []
        for i, blob in enumerate(img.layers):
            layer_id = hashlib.sha256(f"id{i}".encode()).hexdigest()
            tar_bytes = _uncompressed(blob.path)
            add_member(tf, f"{layer_id}/VERSION", b"1.0")
            add_member(tf, f"{layer_id}/json", b"{}")
            add_member(tf, f"{layer_id}/layer.tar", tar_bytes)
            layers.append(f"{layer_id}/layer.tar")
        cfg = img.config_digest.split(":")[1] + ".json"
        add_member(tf, cfg, img.config)
        add_member(
            tf,
            "manifest.json",
            json.dumps([{"Config": cfg, "RepoTags": tags, "Layers": layers}]).encode(),
        )


def _uncompressed(path: Path) -> bytes:
    from strata.oci.compress import open_decompressed

    with open_decompressed(path) as f:
        return f.read()


@pytest.fixture
def img(tmp_path: Path) -> Image:
    # layer 0 gzip, layer 1 uncompressed
    src = tmp_path / "src"
    src.mkdir()
    return small_image(src, tag="v1").image


def test_reads_our_docker_archive_verbatim(tmp_path: Path, img: Image) -> None:
    archive = tmp_path / "base.tar"
    write_docker_archive(archive, [img])
    base = load_base(archive, Selector(), tmp_path / "work")
    assert [b.digest for b in base.layers] == [b.digest for b in img.layers]
    assert [b.compressor for b in base.layers] == ["gzip", "none"]
    for got, want in zip(base.layers, img.layers, strict=True):
        assert got.path.read_bytes() == want.path.read_bytes()
        assert got.diff_id == want.diff_id
    assert base.config["config"]["Env"] == ["A=1"]
    assert str(base.platform) == "linux/amd64"


def test_reads_legacy_layout_and_picks_by_tag(tmp_path: Path, img: Image) -> None:
    archive = tmp_path / "legacy.tar"
    legacy_archive(archive, img, tags=["example.com/base:v1", "example.com/base:latest"])
    base = load_base(archive, Selector(name="example.com/base"), tmp_path / "work")
    assert [b.compressor for b in base.layers] == ["none", "none"]
    assert [b.digest for b in base.layers] == [b.diff_id for b in img.layers]
    with pytest.raises(UserError, match=r"no image named 'other:latest' in the archive"):
        load_base(archive, Selector(name="other"), tmp_path / "work")


def test_legacy_symlinked_layer_is_followed(tmp_path: Path, img: Image) -> None:
    archive = tmp_path / "linked.tar"
    data = _uncompressed(img.layers[1].path)
    with tarfile.open(archive, "w") as tf:
        add_member(tf, "aaa/layer.tar", _uncompressed(img.layers[0].path))
        add_member(tf, "bbb/real.tar", data)
        add_member(tf, "ccc/layer.tar", link="../bbb/real.tar")
        cfg = img.config_digest.split(":")[1] + ".json"
        add_member(tf, cfg, img.config)
        manifest = [{"Config": cfg, "RepoTags": None, "Layers": ["aaa/layer.tar", "ccc/layer.tar"]}]
        add_member(tf, "manifest.json", json.dumps(manifest).encode())
    base = load_base(archive, Selector(), tmp_path / "work")
    assert base.layers[1].path.read_bytes() == data


def test_reads_oci_style_docker_save(tmp_path: Path, img: Image) -> None:
    """Docker 25+ `docker save`: blobs/sha256/<hex> members named in manifest.json."""
    archive = tmp_path / "new.tar"
    with tarfile.open(archive, "w") as tf:
        layers = []
        for blob in img.layers:
            name = "blobs/sha256/" + blob.digest.split(":")[1]
            add_member(tf, name, blob.path.read_bytes())
            layers.append(name)
        cfg = "blobs/sha256/" + img.config_digest.split(":")[1]
        add_member(tf, cfg, img.config)
        add_member(tf, "manifest.json", json.dumps([{"Config": cfg, "Layers": layers}]).encode())
    base = load_base(archive, Selector(), tmp_path / "work")
    assert [b.digest for b in base.layers] == [b.digest for b in img.layers]


def test_reads_oci_layout_in_place(tmp_path: Path, img: Image) -> None:
    layout = tmp_path / "layout"
    write_oci_layout(layout, [img])
    base = load_base(layout, Selector(name="v1"), tmp_path / "work")
    assert [b.path.parent for b in base.layers] == [layout / "blobs" / "sha256"] * 2
    assert [b.digest for b in base.layers] == [b.digest for b in img.layers]


def test_nested_index_picked_by_platform(tmp_path: Path) -> None:
    amd = small_image(tmp_path, tag="multi").image
    layout = tmp_path / "layout"
    arm_cfg = json.loads(amd.config)
    arm_cfg["architecture"] = "arm64"
    arm_cfg["rootfs"]["diff_ids"] = arm_cfg["rootfs"]["diff_ids"][:1]
    arm = Image(json_bytes(arm_cfg), amd.layers[:1], None, platform=parse_platform("aarch64"))
    write_oci_layout(layout, [amd, arm])
    # Move both manifests under one nested index named "multi".
    index = json.loads((layout / "index.json").read_text())
    nested = json_bytes(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": index["manifests"],
        }
    )
    nested_hex = hashlib.sha256(nested).hexdigest()
    (layout / "blobs" / "sha256" / nested_hex).write_bytes(nested)
    top = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": "sha256:" + nested_hex,
                "size": len(nested),
                "annotations": {"org.opencontainers.image.ref.name": "multi"},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(top))
    got = load_base(layout, Selector("multi", parse_platform("arm64")), tmp_path / "w")
    assert str(got.platform) == "linux/arm64" and len(got.layers) == 1
    got = load_base(layout, Selector("multi", parse_platform("x86_64")), tmp_path / "w")
    assert str(got.platform) == "linux/amd64" and len(got.layers) == 2
    with pytest.raises(UserError, match=r"2 images match name 'multi' and platform any"):
        load_base(layout, Selector("multi"), tmp_path / "w")
    with pytest.raises(UserError, match=r"0 images match name 'multi' and platform linux/s390x"):
        load_base(layout, Selector("multi", parse_platform("s390x")), tmp_path / "w")


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("evil", ["../evil", "/etc/evil", "a/../../evil"])
def test_escaping_member_rejected(tmp_path: Path, img: Image, evil: str) -> None:
    archive = tmp_path / "evil.tar"
    legacy_archive(archive, img, tags=[])
    with tarfile.open(archive, "a") as tf:
        add_member(tf, evil, b"x")
    work = tmp_path / "work"
    with pytest.raises(UserError) as e:
        load_base(archive, Selector(), work)
    assert str(e.value) == (
        f"{archive}: archive member escapes the archive (got {evil!r}); "
        "rebuild the base archive with relative member names"
    )
    assert not work.exists()


def test_escaping_symlink_rejected(tmp_path: Path, img: Image) -> None:
    archive = tmp_path / "evil.tar"
    legacy_archive(archive, img, tags=[])
    with tarfile.open(archive, "a") as tf:
        add_member(tf, "x/layer.tar", link="../../outside")
    with pytest.raises(UserError, match=r"archive member escapes the archive \(got '../outside'\)"):
        load_base(archive, Selector(), tmp_path / "work")


def test_layer_digest_mismatch_in_docker_archive(tmp_path: Path, img: Image) -> None:
    archive = tmp_path / "bad.tar"
    legacy_archive(archive, img, tags=[])
    raw = archive.read_bytes()
    good = _uncompressed(img.layers[0].path)
    idx = raw.index(good)
    corrupt = good.replace(b"hello from strata", b"HELLO from strata")
    archive.write_bytes(raw[:idx] + corrupt + raw[idx + len(good) :])
    with pytest.raises(UserError) as e:
        load_base(archive, Selector(), tmp_path / "work")
    msg = str(e.value)
    assert msg.startswith(f"{archive}: layer 0 (") and "/layer.tar) does not match rootfs." in msg
    assert f"expected {img.layers[0].diff_id}); the base image is corrupt" in msg


def test_missing_member(tmp_path: Path, img: Image) -> None:
    archive = tmp_path / "missing.tar"
    with tarfile.open(archive, "w") as tf:
        add_member(tf, "manifest.json", json.dumps([{"Config": "c.json", "Layers": []}]).encode())
    with pytest.raises(UserError, match=r"archive member is missing \(got 'c.json'\)"):
        load_base(archive, Selector(), tmp_path / "work")


def test_oci_layout_missing_blob(tmp_path: Path, img: Image) -> None:
    layout = tmp_path / "layout"
    write_oci_layout(layout, [img])
    (layout / "blobs" / "sha256" / img.layers[1].digest.split(":")[1]).unlink()
    with pytest.raises(UserError) as e:
        load_base(layout, Selector(), tmp_path / "work")
    assert str(e.value) == (
        f"{layout}: blob is missing (got blobs/sha256/{img.layers[1].digest.split(':')[1]}); "
        "the layout is incomplete: copy or pull it again"
    )


def test_oci_layout_digest_mismatch(tmp_path: Path, img: Image) -> None:
    layout = tmp_path / "layout"
    write_oci_layout(layout, [img])
    blob = layout / "blobs" / "sha256" / img.layers[1].digest.split(":")[1]
    blob.write_bytes(blob.read_bytes().replace(b"data\n", b"DATA\n"))
    with pytest.raises(UserError, match=rf"blob {blob.name} digest mismatch \(got sha256:"):
        load_base(layout, Selector(), tmp_path / "work")


def test_not_a_layout_directory(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not an OCI image layout"):
        load_base(tmp_path, Selector(), tmp_path / "work")


def test_copy_keeps_working(tmp_path: Path, img: Image) -> None:
    """A layout copied elsewhere reads the same (no absolute paths inside)."""
    layout = tmp_path / "layout"
    write_oci_layout(layout, [img])
    shutil.copytree(layout, tmp_path / "moved")
    a = load_base(layout, Selector(), tmp_path / "w1")
    b = load_base(tmp_path / "moved", Selector(), tmp_path / "w2")
    assert a.config == b.config
