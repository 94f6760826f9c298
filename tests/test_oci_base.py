from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from image_helpers import small_image, wrong_diff_id_image
from strata.canonical import json_bytes
from strata.errors import UserError
from strata.oci.base import Selector, load_base
from strata.oci.docker_archive import write_docker_archive
from strata.oci.image import Image
from strata.oci.oci_layout import write_oci_layout
from strata.oci.platform import parse_platform


def add(tf: tarfile.TarFile, name: str, data: bytes = b"", *, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    if link:
        info.type = tarfile.SYMTYPE
        info.linkname = link
        tf.addfile(info)
    else:
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))


def legacy_archive(path: Path, img: Image, *, tags: list[str]) -> None:
    """The pre-25 `docker save` layout: `<id>/layer.tar` (uncompressed), `<hex>.json`."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        layers = []
        for i, blob in enumerate(img.layers):
            layer_id = hashlib.sha256(f"id{i}".encode()).hexdigest()
            tar_bytes = _uncompressed(blob.path)
            add(tf, f"{layer_id}/VERSION", b"1.0")
            add(tf, f"{layer_id}/json", b"{}")
            add(tf, f"{layer_id}/layer.tar", tar_bytes)
            layers.append(f"{layer_id}/layer.tar")
        cfg = img.config_digest.split(":")[1] + ".json"
        add(tf, cfg, img.config)
        add(
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
        add(tf, "aaa/layer.tar", _uncompressed(img.layers[0].path))
        add(tf, "bbb/real.tar", data)
        add(tf, "ccc/layer.tar", link="../bbb/real.tar")
        cfg = img.config_digest.split(":")[1] + ".json"
        add(tf, cfg, img.config)
        manifest = [{"Config": cfg, "RepoTags": None, "Layers": ["aaa/layer.tar", "ccc/layer.tar"]}]
        add(tf, "manifest.json", json.dumps(manifest).encode())
    base = load_base(archive, Selector(), tmp_path / "work")
    assert base.layers[1].path.read_bytes() == data


def test_reads_oci_style_docker_save(tmp_path: Path, img: Image) -> None:
    """Docker 25+ `docker save`: blobs/sha256/<hex> members named in manifest.json."""
    archive = tmp_path / "new.tar"
    with tarfile.open(archive, "w") as tf:
        layers = []
        for blob in img.layers:
            name = "blobs/sha256/" + blob.digest.split(":")[1]
            add(tf, name, blob.path.read_bytes())
            layers.append(name)
        cfg = "blobs/sha256/" + img.config_digest.split(":")[1]
        add(tf, cfg, img.config)
        add(tf, "manifest.json", json.dumps([{"Config": cfg, "Layers": layers}]).encode())
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
        add(tf, evil, b"x")
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
        add(tf, "x/layer.tar", link="../../outside")
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
        add(tf, "manifest.json", json.dumps([{"Config": "c.json", "Layers": []}]).encode())
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


# -- diff_ids of compressed layers -------------------------------------------------------------


def _diff_id_error(where: Path, index: int, name: str, got: str, expected: str) -> str:
    return (
        f"{where}: layer {index} ({name}) does not match rootfs.diff_ids[{index}] of the config "
        f"(got {got}, expected {expected}); the base image is corrupt or was modified: "
        "pull it again, or pin the digest of an intact image"
    )


@pytest.mark.parametrize("compressor", ["gzip", "zstd"])
def test_oci_layout_compressed_layer_must_match_its_diff_id(
    tmp_path: Path, compressor: str
) -> None:
    image, real_diff_id = wrong_diff_id_image(tmp_path, compressor)
    layout = tmp_path / "layout"
    write_oci_layout(layout, [image.image])
    blob = image.image.layers[0]
    with pytest.raises(UserError) as e:
        load_base(layout, Selector(), tmp_path / "work")
    name = "blobs/sha256/" + blob.digest.split(":")[1]
    assert str(e.value) == _diff_id_error(layout, 0, name, real_diff_id, blob.diff_id)


@pytest.mark.parametrize("style", ["new", "legacy"])
def test_docker_archive_compressed_layer_must_match_its_diff_id(tmp_path: Path, style: str) -> None:
    image, real_diff_id = wrong_diff_id_image(tmp_path, "gzip")
    blob = image.image.layers[0]
    archive = tmp_path / "bad.tar"
    # Docker 25+ names layers blobs/sha256/<digest>; older saves <id>/layer.tar (here gzip too).
    name = "blobs/sha256/" + blob.digest.split(":")[1] if style == "new" else "aaa/layer.tar"
    cfg = "blobs/sha256/" + image.image.config_digest.split(":")[1]
    with tarfile.open(archive, "w") as tf:
        add(tf, name, blob.path.read_bytes())
        add(tf, cfg, image.image.config)
        add(tf, "manifest.json", json.dumps([{"Config": cfg, "Layers": [name]}]).encode())
    with pytest.raises(UserError) as e:
        load_base(archive, Selector(), tmp_path / "work")
    assert str(e.value) == _diff_id_error(archive, 0, name, real_diff_id, blob.diff_id)


def test_oci_layout_layer_count_must_match_diff_ids(tmp_path: Path, img: Image) -> None:
    cfg = json.loads(img.config)
    cfg["rootfs"]["diff_ids"] = cfg["rootfs"]["diff_ids"][:1]
    short = Image(json_bytes(cfg), img.layers, None, platform=img.platform)
    layout = tmp_path / "layout"
    write_oci_layout(layout, [short])
    with pytest.raises(UserError, match="manifest lists 2 layers but the config has 1 diff_ids"):
        load_base(layout, Selector(), tmp_path / "work")


@pytest.mark.parametrize("cut", [10, 200])
def test_oci_layout_truncated_gzip_layer_is_refused(tmp_path: Path, img: Image, cut: int) -> None:
    layout = tmp_path / "layout"
    write_oci_layout(layout, [img])
    blob = layout / "blobs" / "sha256" / img.layers[0].digest.split(":")[1]
    data = blob.read_bytes()[:-cut]
    # Keep the blob's own digest right, so only the gzip stream is wrong.
    hexd = hashlib.sha256(data).hexdigest()
    blob.rename(blob.with_name(hexd))
    blob.with_name(hexd).write_bytes(data)
    manifest_desc = json.loads((layout / "index.json").read_text())["manifests"][0]
    mpath = layout / "blobs" / "sha256" / manifest_desc["digest"].split(":")[1]
    manifest = json.loads(mpath.read_bytes())
    manifest["layers"][0].update(digest="sha256:" + hexd, size=len(data))
    mbytes = json_bytes(manifest)
    mhex = hashlib.sha256(mbytes).hexdigest()
    (layout / "blobs" / "sha256" / mhex).write_bytes(mbytes)
    manifest_desc.update(digest="sha256:" + mhex, size=len(mbytes))
    (layout / "index.json").write_text(
        json.dumps({"schemaVersion": 2, "manifests": [manifest_desc]})
    )
    with pytest.raises(UserError) as e:
        load_base(layout, Selector(), tmp_path / "work")
    assert str(e.value).startswith(
        f"{layout}: layer 0 (blobs/sha256/{hexd}): layer is not valid gzip"
    )


def _bend_layout(layout: Path, edit: str) -> None:
    """Rewrite the layout's index, manifest or a descriptor into a shape tools/fuzz found."""
    index = json.loads((layout / "index.json").read_bytes())
    blobs = layout / "blobs" / "sha256"
    mpath = blobs / index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads(mpath.read_bytes())
    if edit == "index is a list":
        (layout / "index.json").write_text("[]")
        return
    if edit == "manifest is a list":
        manifest = [manifest]
    elif edit == "no config":
        del manifest["config"]
    elif edit == "layer descriptor is a string":
        manifest["layers"][0] = "sha256:00"
    elif edit == "layers is a number":
        manifest["layers"] = 3
    data = json_bytes(manifest)
    (blobs / hashlib.sha256(data).hexdigest()).write_bytes(data)
    index["manifests"][0].update(
        digest="sha256:" + hashlib.sha256(data).hexdigest(), size=len(data)
    )
    (layout / "index.json").write_bytes(json_bytes(index))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("index is a list", "index.json is not a JSON object (got list)"),
        ("manifest is a list", "manifest is not a JSON object (got list)"),
        ("no config", "manifest config is not a JSON object (got NoneType)"),
        ("layer descriptor is a string", "layer 0's descriptor is not a JSON object (got str)"),
        ("layers is a number", "manifest lists no list of (int) layers but the config has"),
    ],
)
def test_oci_layout_json_of_the_wrong_shape_is_one_error(
    tmp_path: Path, img: Image, edit: str, message: str
) -> None:
    # Found by tools/fuzz (oci-layout): each was an AttributeError, KeyError or TypeError.
    layout = tmp_path / "layout"
    write_oci_layout(layout, [img])
    _bend_layout(layout, edit)
    with pytest.raises(UserError) as e:
        load_base(layout, Selector(), tmp_path / "work")
    assert str(e.value).startswith(f"{layout}: {message}"), str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("tags", [5, "img:1", [1, None]])
def test_repo_tags_of_the_wrong_shape_name_no_tag(tmp_path: Path, img: Image, tags: object) -> None:
    # Found by tools/fuzz (docker-archive): a TypeError while listing tags.
    archive = tmp_path / "a.tar"
    write_docker_archive(archive, [img])
    with tarfile.open(archive) as tf:
        members = {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}  # type: ignore[union-attr]
    manifest = json.loads(members["manifest.json"])
    manifest[0]["RepoTags"] = tags
    members["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(archive, "w") as tf:
        for name, data in members.items():
            add(tf, name, data)
    assert load_base(archive, Selector(), tmp_path / "w").repo_tags == ()
    with pytest.raises(
        UserError, match=r"no image named 'img:latest' in the archive \(got tags: none\)"
    ):
        load_base(archive, Selector("img"), tmp_path / "w")


@pytest.mark.parametrize("annotations", [[1.5], "img:1", 3, None])
def test_oci_annotations_of_the_wrong_shape_name_no_tag(
    tmp_path: Path, img: Image, annotations: object
) -> None:
    # Found by tools/fuzz (oci-layout, 100,000-input run): a manifest descriptor whose
    # annotations was a list was an AttributeError while naming the image.
    layout = tmp_path / "layout"
    write_oci_layout(layout, [img])
    index = json.loads((layout / "index.json").read_bytes())
    assert index["manifests"][0]["annotations"], "the fixture names its image"
    index["manifests"][0]["annotations"] = annotations
    (layout / "index.json").write_bytes(json_bytes(index))
    base = load_base(layout, Selector(), tmp_path / "work")
    assert base.repo_tags == ()
    assert len(base.layers) == len(img.layers)
