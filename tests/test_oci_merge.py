from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from image_helpers import small_image
from strata.cli import main
from strata.errors import UserError
from strata.oci.docker_archive import write_docker_archive
from strata.oci.merge import merge_archives


def two_archives(tmp: Path) -> tuple[Path, Path, list[str]]:
    a = small_image(tmp, tag="a").image
    b = small_image(tmp, tag="b", config={"Cmd": ["/b"]}).image
    c = small_image(tmp, name="other/c", tag="c", config={"Cmd": ["/c"]}).image
    write_docker_archive(tmp / "one.tar", [a])
    write_docker_archive(tmp / "two.tar", [b, c])
    return tmp / "one.tar", tmp / "two.tar", [a.config_digest, b.config_digest, c.config_digest]


def test_merge_keeps_every_image_and_stores_layers_once(tmp_path: Path) -> None:
    one, two, configs = two_archives(tmp_path)
    out = tmp_path / "merged.tar"
    images = merge_archives([one, two], out, tmp_path / "work")
    assert [img.config_digest for img in images] == configs
    with tarfile.open(out) as tf:
        names = tf.getnames()
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert [m["RepoTags"] for m in manifest] == [
        ["example.com/strata/small:a"],
        ["example.com/strata/small:b"],
        ["other/c:c"],
    ]
    assert [m["Config"] for m in manifest] == [d.split(":")[1] + ".json" for d in configs]
    layers = {layer for m in manifest for layer in m["Layers"]}
    assert len(layers) == 2  # all three images share both layers
    assert sorted(names) == sorted(
        [*layers, *(m["Config"] for m in manifest), "manifest.json", "repositories"]
    )


def test_merge_is_reproducible(tmp_path: Path) -> None:
    one, two, _ = two_archives(tmp_path)
    merge_archives([one, two], tmp_path / "m1.tar", tmp_path / "w1")
    merge_archives([one, two], tmp_path / "m2.tar", tmp_path / "w2")
    assert (tmp_path / "m1.tar").read_bytes() == (tmp_path / "m2.tar").read_bytes()


def test_conflicting_tags_rejected(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    a = small_image(tmp_path, tag="same").image
    b = small_image(tmp_path / "x", tag="same", config={"Cmd": ["/other"]}).image
    write_docker_archive(tmp_path / "a.tar", [a])
    write_docker_archive(tmp_path / "b.tar", [b])
    out = tmp_path / "m.tar"
    with pytest.raises(
        UserError, match=r"two different images are tagged example.com/strata/small:same"
    ):
        merge_archives([tmp_path / "a.tar", tmp_path / "b.tar"], out, tmp_path / "w")
    assert not out.exists()


def test_merge_action_bad_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    req = tmp_path / "req.json"
    req.write_text(
        json.dumps({"images": [], "output": str(tmp_path / "m.tar"), "schema_version": 1})
    )
    assert main(["action", "ImageMerge", f"@{req}"]) == 1
    assert (
        "images must be a non-empty list of docker-archive or OCI layout paths (got [])"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "m.tar").exists()


def test_merge_action(tmp_path: Path) -> None:
    one, two, _ = two_archives(tmp_path)
    req = tmp_path / "req.json"
    out = tmp_path / "m.tar"
    req.write_text(
        json.dumps({"images": [str(one), str(two)], "output": str(out), "schema_version": 1})
    )
    assert main(["action", "ImageMerge", f"@{req}"]) == 0
    with tarfile.open(out) as tf:
        assert len(json.load(tf.extractfile("manifest.json"))) == 3  # type: ignore[arg-type]
