from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from image_helpers import small_image
from strata.oci.docker_archive import write_docker_archive


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_layout_and_manifest(tmp_path: Path) -> None:
    img = small_image(tmp_path, tag="v1").image
    out = tmp_path / "img.tar"
    write_docker_archive(out, [img])
    got = members(out)
    cfg_hex = img.config_digest.split(":")[1]
    layer_names = [b.digest.split(":")[1] + ".tar" for b in img.layers]
    assert sorted(got) == sorted([f"{cfg_hex}.json", *layer_names, "manifest.json", "repositories"])
    manifest = json.loads(got["manifest.json"])
    assert manifest == [
        {
            "Config": f"{cfg_hex}.json",
            "Layers": layer_names,
            "RepoTags": ["example.com/strata/small:v1"],
        }
    ]
    assert got[f"{cfg_hex}.json"] == img.config
    for blob, name in zip(img.layers, layer_names, strict=True):
        data = got[name]
        assert "sha256:" + hashlib.sha256(data).hexdigest() == blob.digest
        assert data == blob.path.read_bytes()
    repos = json.loads(got["repositories"])
    assert repos == {"example.com/strata/small": {"v1": layer_names[-1][:-4]}}


def test_members_sorted_and_owned_by_root(tmp_path: Path) -> None:
    img = small_image(tmp_path).image
    out = tmp_path / "img.tar"
    write_docker_archive(out, [img])
    with tarfile.open(out) as tf:
        infos = tf.getmembers()
    assert [m.name for m in infos] == sorted(m.name for m in infos)
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime, m.mode) for m in infos} == {
        (0, 0, "", "", img.mtime, 0o644)
    }


def test_shared_layers_stored_once(tmp_path: Path) -> None:
    a = small_image(tmp_path, tag="a")
    b = small_image(tmp_path, tag="b", config={"Cmd": ["/bin/other"]})
    out = tmp_path / "two.tar"
    write_docker_archive(out, [a.image, b.image])
    manifest = json.loads(members(out)["manifest.json"])
    assert [m["RepoTags"] for m in manifest] == [
        ["example.com/strata/small:a"],
        ["example.com/strata/small:b"],
    ]
    with tarfile.open(out) as tf:
        names = tf.getnames()
    assert len(names) == len(set(names)) == 2 + 2 + 2  # two configs, two shared layers


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    img = small_image(tmp_path).image
    img.layers[0].path.unlink()
    out = tmp_path / "img.tar"
    with pytest.raises(FileNotFoundError):
        write_docker_archive(out, [img])
    assert not out.exists()
    assert list(tmp_path.glob(".img.tar*")) == []
