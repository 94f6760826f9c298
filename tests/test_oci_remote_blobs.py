"""remote-blobs.json (strata.oci.remote_blobs) and reading a shallow base (strata.oci.shallow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from image_helpers import app_layer, make_layer
from strata.errors import UserError
from strata.oci.base import Selector, load_base
from strata.oci.compress import media_type_compressor
from strata.oci.image import Blob, assemble
from strata.oci.oci_layout import write_oci_layout
from strata.oci.platform import parse_platform
from strata.oci.remote_blobs import FILE, Remote, read_remote_blobs, remote_blobs_json

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def test_round_trip_is_sorted_json(tmp_path: Path) -> None:
    blobs = {D2: Remote("http://127.0.0.1:5000", "base/b", 7), D1: Remote("reg.io", "a", 3)}
    (tmp_path / FILE).write_bytes(remote_blobs_json(blobs))
    assert read_remote_blobs(tmp_path, "x") == blobs
    text = (tmp_path / FILE).read_text()
    assert text.index(D1) < text.index(D2)
    assert text.startswith('{"blobs":{"sha256:111')
    assert str(blobs[D2]) == "127.0.0.1:5000/base/b"
    assert read_remote_blobs(tmp_path / "none", "x") == {}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"blobs": {}, "version": 2}, "is not a version 1 list of remote blobs"),
        ({"blobs": {"sha256:../x": {}}, "version": 1}, "names a blob by a malformed digest"),
        ({"blobs": {D1: {"registry": "r", "size": 1}}, "version": 1}, "lacks registry"),
        (
            {"blobs": {D1: {"registry": "r", "repository": "a", "size": -1}}, "version": 1},
            "lacks registry, repository or size",
        ),
        (
            {"blobs": {D1: {"registry": "r", "repository": "A//", "size": 1}}, "version": 1},
            "invalid repository (got 'A//')",
        ),
    ],
)
def test_a_damaged_list_is_one_error(tmp_path: Path, content: object, message: str) -> None:
    (tmp_path / FILE).write_text(json.dumps(content))
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        read_remote_blobs(tmp_path, "layout")
    assert str(e.value).startswith("layout: ")


def test_media_type_compressor() -> None:
    assert media_type_compressor("application/vnd.oci.image.layer.v1.tar+gzip") == "gzip"
    assert media_type_compressor("application/vnd.docker.image.rootfs.diff.tar.gzip") == "gzip"
    assert media_type_compressor("application/vnd.oci.image.layer.v1.tar") == "none"
    assert media_type_compressor("application/vnd.oci.image.layer.v1.tar+zstd") == "zstd"
    assert media_type_compressor("application/vnd.oci.image.layer.nondistributable.v1.tar") is None


def _shallow_layout(tmp_path: Path, label_as: str) -> tuple[Path, Blob]:
    """A layout whose one layer (really gzip) is remote, its media type saying `label_as`."""
    blob = make_layer(tmp_path / "layer", app_layer, "gzip")[0]
    remote = Remote("http://127.0.0.1:1", "base/x", blob.size)
    shallow = Blob(blob.path, blob.digest, blob.size, blob.diff_id, label_as, remote=remote)
    image = assemble(layers=[shallow], fields={}, platform=parse_platform("x86_64")).image
    write_oci_layout(tmp_path / "layout", [image])
    return tmp_path / "layout", blob


def test_shallow_layout_reads_without_bytes_and_checks_fetched_ones(tmp_path: Path) -> None:
    layout, blob = _shallow_layout(tmp_path, "gzip")
    assert not (layout / "blobs/sha256" / blob.digest[7:]).exists()
    base = load_base(layout, Selector(), tmp_path / "w", need_bytes=False)
    assert [(b.digest, b.diff_id, b.compressor) for b in base.layers] == [
        (blob.digest, blob.diff_id, "gzip")
    ]
    assert base.layers[0].remote is not None
    with pytest.raises(UserError, match=r"needs the bytes of 1 base layer\(s\)"):
        load_base(layout, Selector(), tmp_path / "w")
    fetched = tmp_path / "fetched/sha256"
    fetched.mkdir(parents=True)
    (fetched / blob.digest[7:]).write_bytes(blob.path.read_bytes())
    full = load_base(layout, Selector(), tmp_path / "w", blob_dirs=[fetched.parent])
    assert full.layers[0].remote is None and full.layers[0].path == fetched / blob.digest[7:]


def test_a_mislabelled_fetched_layer_is_one_error(tmp_path: Path) -> None:
    layout, blob = _shallow_layout(tmp_path, "none")  # gzip bytes labelled as a plain tar
    fetched = tmp_path / "fetched/sha256"
    fetched.mkdir(parents=True)
    (fetched / blob.digest[7:]).write_bytes(blob.path.read_bytes())
    with pytest.raises(UserError, match="is gzip but its media type says none") as e:
        load_base(layout, Selector(), tmp_path / "w", blob_dirs=[fetched.parent])
    assert str(e.value).endswith("pull the base again")
