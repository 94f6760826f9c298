"""`ImageArchive`: an image's OCI layout → the docker-archive ImageAssemble would have written.

The rules build the layout and make the docker-archive from it only when asked
(output group `tarball`, image_load), so the two paths must give the same bytes
for every shape of image: compressions, names with a registry port, no name,
`created`, a base image's layers.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from image_helpers import app_layer, data_layer, make_layer
from strata.cli import main
from strata.oci.merge import merge_archives


def write_request(path: Path, req: dict[str, Any]) -> str:
    path.write_text(json.dumps({"schema_version": 1, **req}, sort_keys=True))
    return f"@{path}"


def assemble(tmp: Path, out: Path, **over: Any) -> None:
    """ImageAssemble writing both the docker-archive and the layout into `out`."""
    layers = []
    fills = [app_layer, data_layer]
    for i, (fill, comp) in enumerate(zip(fills, over.pop("compressors"), strict=False)):
        _, desc = make_layer(tmp / f"{out.name}-{i}.blob", fill, comp)
        layers.append({"blob": str(tmp / f"{out.name}-{i}.blob"), "descriptor": str(desc)})
    req = {
        "config": {"Cmd": ["/opt/app/run"], "Env": ["A=1"]},
        "layers": layers,
        "outputs": {
            "docker_archive": str(out / "img.tar"),
            "image_info": str(out / "info.json"),
            "oci_layout": str(out / "layout"),
        },
        **over,
    }
    assert main(["action", "ImageAssemble", write_request(tmp / f"{out.name}.json", req)]) == 0


SHAPES = {
    "gzip-and-none": {"compressors": ["gzip", "none"], "name": "example.com/strata/app"},
    "port-and-tag": {"compressors": ["none"], "name": "Reg.Example.com:5000/Team/App", "tag": "1"},
    "zstd-created": {
        "compressors": ["zstd", "gzip"],
        "name": "app",
        "created": "2024-02-03T04:05:06Z",
        "architecture": "aarch64",
    },
    "no-name": {"compressors": ["gzip"], "name": ""},
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_archive_of_the_layout_is_the_assembled_archive(shape: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assemble(tmp_path, out, **SHAPES[shape])
    req = {"image": str(out / "layout"), "output": str(tmp_path / "from-layout.tar")}
    assert main(["action", "ImageArchive", write_request(tmp_path / "a.json", req)]) == 0
    assert (tmp_path / "from-layout.tar").read_bytes() == (out / "img.tar").read_bytes()


def test_archive_of_an_image_on_a_base(tmp_path: Path) -> None:
    assemble(tmp_path, tmp_path / "base", compressors=["gzip"], name="base", tag="b")
    over = {"base": {"name": "", "path": str(tmp_path / "base" / "layout")}, "name": "top"}
    assemble(tmp_path, tmp_path / "top", compressors=["none"], **over)
    req = {"image": str(tmp_path / "top" / "layout"), "output": str(tmp_path / "t.tar")}
    assert main(["action", "ImageArchive", write_request(tmp_path / "a.json", req)]) == 0
    assert (tmp_path / "t.tar").read_bytes() == (tmp_path / "top" / "img.tar").read_bytes()
    with tarfile.open(tmp_path / "t.tar") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert len(manifest[0]["Layers"]) == 2 and manifest[0]["RepoTags"][0].startswith("top:")


def test_zstd_layers_warn_where_the_archive_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assemble(tmp_path, tmp_path / "z", compressors=["zstd"], name="z")
    capsys.readouterr()
    req = {"image": str(tmp_path / "z" / "layout"), "output": str(tmp_path / "z.tar")}
    assert main(["action", "ImageArchive", write_request(tmp_path / "a.json", req)]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"warning: {tmp_path / 'a.json'}: docker-archive holds 1 zstd layer(s)")


def test_merge_reads_layouts_as_it_reads_archives(tmp_path: Path) -> None:
    assemble(tmp_path, tmp_path / "a", compressors=["gzip", "none"], name="a", tag="1")
    assemble(tmp_path, tmp_path / "b", compressors=["gzip"], name="b", tag="2")
    archives = [tmp_path / "a" / "img.tar", tmp_path / "b" / "img.tar"]
    layouts = [tmp_path / "a" / "layout", tmp_path / "b" / "layout"]
    merge_archives(archives, tmp_path / "m1.tar", tmp_path / "w1")
    merge_archives(layouts, tmp_path / "m2.tar", tmp_path / "w2")
    assert (tmp_path / "m1.tar").read_bytes() == (tmp_path / "m2.tar").read_bytes()


@pytest.mark.parametrize("fault", ["missing", "corrupt-blob", "unknown-key"])
def test_bad_input_is_one_line_and_writes_nothing(
    fault: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assemble(tmp_path, tmp_path / "img", compressors=["gzip"], name="x")
    layout = tmp_path / "img" / "layout"
    req: dict[str, Any] = {"image": str(layout), "output": str(tmp_path / "out" / "x.tar")}
    if fault == "missing":
        req["image"] = str(tmp_path / "nowhere")
        expected = f"error: {tmp_path / 'nowhere'}: base image not found; check the base path"
    elif fault == "corrupt-blob":
        index = json.loads((layout / "index.json").read_text())
        manifest_hex = index["manifests"][0]["digest"].split(":")[1]
        manifest = json.loads((layout / "blobs" / "sha256" / manifest_hex).read_text())
        blob = layout / "blobs" / "sha256" / manifest["layers"][0]["digest"].split(":")[1]
        blob.chmod(0o644)
        blob.write_bytes(b"not the layer")
        expected = f"error: {layout}: blob {blob.name} digest mismatch"
    else:
        req["outputs"] = {}
        expected = "unknown request key (got 'outputs')"
    assert main(["action", "ImageArchive", write_request(tmp_path / "a.json", req)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
