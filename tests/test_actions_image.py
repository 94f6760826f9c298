from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from image_helpers import app_layer, make_layer, wrong_diff_id_image
from strata.cli import main
from strata.oci.oci_layout import write_oci_layout


def write_request(path: Path, req: dict[str, Any]) -> str:
    path.write_text(json.dumps({"schema_version": 1, **req}, sort_keys=True))
    return f"@{path}"


def layer_request(tmp: Path, compressor: str = "gzip") -> dict[str, str]:
    _, desc = make_layer(tmp / f"app-{compressor}.blob", app_layer, compressor)
    return {"blob": str(tmp / f"app-{compressor}.blob"), "descriptor": str(desc)}


def base_request(tmp: Path, **over: Any) -> dict[str, Any]:
    req: dict[str, Any] = {
        "architecture": "x86_64",
        "config": {"Cmd": ["/opt/app/run"], "Env": ["A=1"]},
        "layers": over.pop("layers") if "layers" in over else [layer_request(tmp)],
        "name": "Registry.Example.com:5000/Team/App",
        "outputs": {
            "docker_archive": str(tmp / "out" / "img.tar"),
            "image_info": str(tmp / "out" / "info.json"),
            "oci_layout": str(tmp / "out" / "layout"),
        },
    }
    req.update(over)
    return req


def test_assemble_writes_all_outputs(tmp_path: Path) -> None:
    req = write_request(tmp_path / "req.json", base_request(tmp_path))
    assert main(["action", "ImageAssemble", req]) == 0
    info = json.loads((tmp_path / "out" / "info.json").read_text())
    assert info["name"] == "registry.example.com:5000/team/app"
    assert info["tag"] == info["config_digest"].split(":")[1][:32]
    with tarfile.open(tmp_path / "out" / "img.tar") as tf:
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == [f"registry.example.com:5000/team/app:{info['tag']}"]
    index = json.loads((tmp_path / "out" / "layout" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == info["manifest_digest"]
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == info["tag"]


def test_created_now_warns_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    req = write_request(tmp_path / "req.json", base_request(tmp_path, created="now", tag="t"))
    assert main(["action", "ImageAssemble", req]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f'warning: {tmp_path / "req.json"}: created = "now"')
    assert '"1970-01-01T00:00:01Z"' in err


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"config": {"Cmnd": ["x"]}}, "unknown config field (got 'Cmnd'); allowed fields: Cmd,"),
        ({"config": {"Env": ["NOVALUE"]}}, "config Env entries must be KEY=VALUE (got 'NOVALUE')"),
        ({"architecture": "vax"}, "unknown architecture (got 'vax'); use one of:"),
        ({"name": "bad name!"}, "invalid image name (got 'bad name!')"),
        ({"tag": "-bad"}, "invalid image tag (got '-bad')"),
        ({"created": "yesterday"}, "created must be an RFC 3339 time or \"now\" (got 'yesterday')"),
        ({"outputs": {}}, "outputs is empty"),
        ({"base": {"path": "/nonexistent/base.tar"}}, "base image not found"),
        ({"surprise": 1}, "unknown request key (got 'surprise')"),
    ],
)
def test_bad_requests_fail_with_one_line_and_no_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], over: dict[str, Any], message: str
) -> None:
    req = write_request(tmp_path / "req.json", base_request(tmp_path, **over))
    assert main(["action", "ImageAssemble", req]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert message in err
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("compressor", ["gzip", "zstd"])
def test_base_layer_decompressing_to_other_bytes_than_its_diff_id_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], compressor: str
) -> None:
    """A pulled base (an OCI layout) with a compressed layer that is not what its config says."""
    lying, real_diff_id = wrong_diff_id_image(tmp_path / "base", compressor)
    layout = tmp_path / "base" / "layout"
    write_oci_layout(layout, [lying.image])
    req = base_request(tmp_path, base={"path": str(layout)})
    assert main(["action", "ImageAssemble", write_request(tmp_path / "req.json", req)]) == 1
    err = capsys.readouterr().err
    blob = lying.image.layers[0]
    assert err == (
        f"error: {layout}: layer 0 (blobs/sha256/{blob.digest.split(':')[1]}) does not match "
        f"rootfs.diff_ids[0] of the config (got {real_diff_id}, expected {blob.diff_id}); "
        "the base image is corrupt or was modified: pull it again, or pin the digest of an "
        "intact image\n"
    )
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_unknown_compressor_in_descriptor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layer = layer_request(tmp_path)
    desc = json.loads(Path(layer["descriptor"]).read_text())
    desc["compressor"] = "lzma"
    Path(layer["descriptor"]).write_text(json.dumps(desc))
    req = write_request(tmp_path / "req.json", base_request(tmp_path, layers=[layer]))
    assert main(["action", "ImageAssemble", req]) == 1
    assert (
        "unknown compressor (got 'lzma'); use one of: none, gzip, zstd" in capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()


def test_blob_not_matching_descriptor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layer = layer_request(tmp_path)
    Path(layer["blob"]).write_bytes(b"short")
    req = write_request(tmp_path / "req.json", base_request(tmp_path, layers=[layer]))
    assert main(["action", "ImageAssemble", req]) == 1
    assert "layer blob size differs from its descriptor (got 5," in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_failure_in_second_output_removes_first(tmp_path: Path) -> None:
    blocker = tmp_path / "out" / "file"
    blocker.parent.mkdir()
    blocker.write_text("not a directory")
    req = base_request(tmp_path)
    req["outputs"]["oci_layout"] = str(blocker / "layout")
    assert main(["action", "ImageAssemble", write_request(tmp_path / "r.json", req)]) == 37
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["file"]


def test_zstd_layers_in_docker_archive_warn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    req = base_request(tmp_path, layers=[layer_request(tmp_path, "zstd")], tag="z")
    assert main(["action", "ImageAssemble", write_request(tmp_path / "r.json", req)]) == 0
    err = capsys.readouterr().err
    assert "docker load before Docker 23 cannot read them: use gzip or none" in err
    del req["outputs"]["docker_archive"]
    assert main(["action", "ImageAssemble", write_request(tmp_path / "r.json", req)]) == 0
    assert capsys.readouterr().err == ""
