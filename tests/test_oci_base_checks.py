"""Base images whose layers do not match their config (diff IDs of compressed layers, layer
counts, truncated gzip) or whose JSON has the wrong shape: each one error, naming what."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from image_helpers import add_member, small_image, wrong_diff_id_image
from strata.canonical import json_bytes
from strata.errors import UserError
from strata.oci.base import Selector, load_base
from strata.oci.docker_archive import write_docker_archive
from strata.oci.image import Image
from strata.oci.oci_layout import write_oci_layout


@pytest.fixture
def img(tmp_path: Path) -> Image:
    # layer 0 gzip, layer 1 uncompressed
    src = tmp_path / "src"
    src.mkdir()
    return small_image(src, tag="v1").image


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
        add_member(tf, name, blob.path.read_bytes())
        add_member(tf, cfg, image.image.config)
        add_member(tf, "manifest.json", json.dumps([{"Config": cfg, "Layers": [name]}]).encode())
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
            add_member(tf, name, data)
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
