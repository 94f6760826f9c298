"""Our image outputs checked by the real tools that consume them."""

from __future__ import annotations

import contextlib
import json
import os
import tarfile
from pathlib import Path

import pytest

from image_helpers import app_layer, busybox_layer, make_layer, small_image
from realtools import DockerEngine, need, run
from strata.cli import main
from strata.oci.docker_archive import write_docker_archive
from strata.oci.export import export_rootfs
from strata.oci.image import assemble
from strata.oci.merge import merge_archives
from strata.oci.oci_layout import write_oci_layout
from strata.oci.platform import parse_platform

pytestmark = pytest.mark.realtool

BUSYBOX = "/bin/busybox"


def busybox_image(tmp: Path, compressor: str, name: str, fields: dict[str, object]):  # type: ignore[no-untyped-def]
    if not Path(BUSYBOX).is_file():
        need("busybox")  # skips locally, fails in CI
    # A marker unique to the image: a layer the engine already has would not be re-read.
    fill = busybox_layer(BUSYBOX, marker=name)
    blob, _ = make_layer(tmp / f"busybox-{compressor}", fill, compressor)
    return assemble(
        layers=[blob], fields=fields, platform=parse_platform("x86_64"), name=name
    ).image


# Docker 20.10 cannot read zstd layers from a docker-archive (ImageAssemble warns about it).
@pytest.mark.parametrize("compressor", ["none", "gzip"])
def test_docker_loads_and_runs_busybox(
    tmp_path: Path, docker_engine: DockerEngine, compressor: str
) -> None:
    img = busybox_image(
        tmp_path,
        compressor,
        f"strata-test/busybox-{compressor}",
        {"Cmd": ["/bin/sh", "-c", "echo hello"]},
    )
    out = tmp_path / "img.tar"
    write_docker_archive(out, [img])
    loaded = docker_engine.docker("load", "-i", out).stdout
    assert f"Loaded image: {img.ref}" in loaded
    got = docker_engine.docker("run", "--rm", "--network=none", str(img.ref)).stdout
    assert got == "hello\n"
    inspect = json.loads(docker_engine.docker("image", "inspect", str(img.ref)).stdout)
    assert inspect[0]["Id"] == img.config_digest
    assert inspect[0]["RootFS"]["Layers"] == [b.diff_id for b in img.layers]


def test_skopeo_inspect_and_copy_docker_archive(tmp_path: Path) -> None:
    need("skopeo")
    img = small_image(tmp_path, tag="v1").image
    out = tmp_path / "img.tar"
    write_docker_archive(out, [img])
    info = json.loads(run("skopeo", "inspect", f"docker-archive:{out}").stdout)
    assert info["Architecture"] == "amd64"
    assert info["Os"] == "linux"
    assert info["Env"] == ["A=1"]
    assert info["Created"].startswith("1970-01-01T00:00:01")
    raw = json.loads(run("skopeo", "inspect", "--config", f"docker-archive:{out}").stdout)
    assert raw["rootfs"]["diff_ids"] == [b.diff_id for b in img.layers]
    layout = tmp_path / "copied"
    run("skopeo", "copy", f"docker-archive:{out}", f"oci:{layout}:copied")
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "copied"


def test_oci_layout_validates(tmp_path: Path) -> None:
    need("oci-image-tool")
    img = small_image(tmp_path, compressors=("gzip", "none"), tag="v1").image
    layout = tmp_path / "layout"
    write_oci_layout(layout, [img])
    out = run("oci-image-tool", "validate", "--type", "image", layout).stdout
    assert "Validation succeeded" in out


def test_skopeo_reads_oci_layout_with_zstd(tmp_path: Path) -> None:
    # oci-image-tool predates the zstd media type, so zstd layouts are checked with skopeo.
    need("skopeo")
    img = small_image(tmp_path, compressors=("zstd", "gzip"), tag="v1").image
    layout = tmp_path / "layout"
    write_oci_layout(layout, [img])
    info = json.loads(run("skopeo", "inspect", f"oci:{layout}:v1").stdout)
    assert info["Digest"] == img.info()["manifest_digest"]
    assert info["Layers"] == [b.digest for b in img.layers]
    copied = tmp_path / "copy.tar"
    run("skopeo", "copy", "--preserve-digests", f"oci:{layout}:v1", f"oci-archive:{copied}")


def test_umoci_unpacks_exact_tree(tmp_path: Path) -> None:
    need("umoci")
    img = small_image(tmp_path, tag="v1").image
    layout = tmp_path / "layout"
    write_oci_layout(layout, [img])
    bundle = tmp_path / "bundle"
    run("umoci", "unpack", "--rootless", "--image", f"{layout}:v1", bundle)
    root = bundle / "rootfs"
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath, n)
            st = p.lstat()
            rel = str(p.relative_to(root))
            if p.is_symlink():
                found[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                found[rel] = ("dir", oct(st.st_mode & 0o7777))
            else:
                found[rel] = ("file", oct(st.st_mode & 0o7777), p.read_bytes())
    assert found == {
        "etc": ("dir", "0o755"),
        "etc/motd": ("file", "0o644", b"hello from strata\n"),
        "opt": ("dir", "0o755"),
        "opt/app": ("dir", "0o755"),
        "opt/app/run": ("file", "0o755", b"#!/bin/sh\necho run\n"),
        "opt/app/current": ("link", "run"),
        "srv": ("dir", "0o750"),
        "srv/data.txt": ("file", "0o600", b"data\n"),
    }
    # --rootless cannot chown: umoci keeps non-root ownership in the user.rootlesscontainers
    # xattr (protobuf: field 1 uid, field 2 gid, varints); root-owned files have none.
    owners = {}
    for rel in found:
        with contextlib.suppress(OSError):
            owners[rel] = os.getxattr(root / rel, "user.rootlesscontainers", follow_symlinks=False)
    assert owners == {"srv/data.txt": b"\x08\xe8\x07\x10\xe8\x07"}  # uid 1000, gid 1000


def test_image_on_docker_saved_base_runs_with_merged_env(
    tmp_path: Path, docker_engine: DockerEngine
) -> None:
    base_img = busybox_image(
        tmp_path,
        "gzip",
        "strata-test/base",
        {"Env": ["PATH=/bin", "BASE=1", "SHARED=base"], "Cmd": ["/bin/sh"]},
    )
    write_docker_archive(tmp_path / "base-ours.tar", [base_img])
    docker_engine.docker("load", "-i", tmp_path / "base-ours.tar")
    # The engine's own `docker save` output (its layout, uncompressed layers) is the base.
    saved = tmp_path / "saved.tar"
    docker_engine.docker("save", "-o", saved, str(base_img.ref))
    _, desc = make_layer(tmp_path / "app.blob", app_layer, "gzip")
    request = {
        "base": {"name": str(base_img.ref), "path": str(saved)},
        "config": {"Cmd": ["/bin/env"], "Env": ["SHARED=app", "APP=2"]},
        "layers": [{"blob": str(tmp_path / "app.blob"), "descriptor": str(desc)}],
        "name": "strata-test/on-base",
        "outputs": {
            "docker_archive": str(tmp_path / "app.tar"),
            "image_info": str(tmp_path / "info.json"),
        },
        "schema_version": 1,
        "tag": "t1",
    }
    (tmp_path / "req.json").write_text(json.dumps(request))
    assert main(["action", "ImageAssemble", f"@{tmp_path / 'req.json'}"]) == 0
    info = json.loads((tmp_path / "info.json").read_text())
    assert info["diff_ids"][0] == base_img.layers[0].diff_id
    docker_engine.docker("load", "-i", tmp_path / "app.tar")
    out = docker_engine.docker("run", "--rm", "--network=none", "strata-test/on-base:t1").stdout
    ours = [
        line for line in out.splitlines() if line.split("=")[0] in ("PATH", "BASE", "SHARED", "APP")
    ]
    assert ours == ["PATH=/bin", "BASE=1", "SHARED=app", "APP=2"]
    motd = docker_engine.docker(
        "run",
        "--rm",
        "--network=none",
        "strata-test/on-base:t1",
        "/bin/busybox",
        "cat",
        "/etc/motd",
    ).stdout
    assert motd == "hello from strata\n"


def test_docker_loads_merged_archive_as_all_images(
    tmp_path: Path, docker_engine: DockerEngine
) -> None:
    one = busybox_image(
        tmp_path, "gzip", "strata-test/merge-one", {"Cmd": ["/bin/sh", "-c", "echo one"]}
    )
    (tmp_path / "b").mkdir()
    two = busybox_image(
        tmp_path / "b", "none", "strata-test/merge-two", {"Cmd": ["/bin/sh", "-c", "echo two"]}
    )
    write_docker_archive(tmp_path / "one.tar", [one])
    write_docker_archive(tmp_path / "two.tar", [two])
    out = tmp_path / "merged.tar"
    merge_archives([tmp_path / "one.tar", tmp_path / "two.tar"], out, tmp_path / "work")
    loaded = docker_engine.docker("load", "-i", out).stdout
    assert f"Loaded image: {one.ref}" in loaded and f"Loaded image: {two.ref}" in loaded
    for img, word in ((one, "one"), (two, "two")):
        got = docker_engine.docker("run", "--rm", "--network=none", str(img.ref)).stdout
        assert got == f"{word}\n"


def _exported_files(path: Path) -> dict[str, tuple[int, str, bytes]]:
    """(mode, link target, content) of each non-directory member of a flat rootfs tar."""
    with tarfile.open(path) as tf:
        return {
            m.name.rstrip("/"): (
                m.mode & 0o7777,
                m.linkname,
                tf.extractfile(m).read() if m.isfile() else b"",  # type: ignore[union-attr]
            )
            for m in tf.getmembers()
            if not m.isdir()
        }


_RUNTIME_FILES = (".dockerenv", "etc/hosts", "etc/hostname", "etc/resolv.conf", "etc/mtab")


def _without_runtime(
    exported: dict[str, tuple[int, str, bytes]],
) -> dict[str, tuple[int, str, bytes]]:
    """`docker export`'s files without the runtime's mount points (/etc/hosts, /dev/...,
    /.dockerenv), which no image holds."""
    return {
        n: v
        for n, v in exported.items()
        if not n.startswith(("dev/", "proc/", "sys/")) and n not in _RUNTIME_FILES
    }


def _docker_export(docker_engine: DockerEngine, archive: Path, ref: str, out: Path) -> None:
    docker_engine.docker("load", "-i", archive)
    cid = docker_engine.docker("create", ref).stdout.strip()
    try:
        docker_engine.docker("export", "-o", out, cid)
    finally:
        docker_engine.docker("rm", cid)


def test_export_of_a_base_writing_through_links_matches_docker_export(
    tmp_path: Path, docker_engine: DockerEngine
) -> None:
    """A base whose layer holds `x -> /` and then `x/etc/...` (and whiteouts through such
    links): the flat tar holds what the container holds, each entry once, under `/`."""
    from test_hostile_layers import UP, directory, file, layer, sym

    lower = [
        directory("etc"),
        sym("x", "/"),
        sym("y", UP),
        sym("a", "/b/c"),
        sym("b", "/"),
        sym("c", "/"),
        file("x/etc/one", b"one\n"),
        file("y/etc/two", b"two\n"),
        file("a/etc/three", b"three\n"),
        file("x/etc/gone", b"gone\n"),
        directory("x/opt"),
        file("x/opt/old", b"old\n"),
    ]
    upper = [file("y/etc/.wh.gone", b""), file("x/opt/.wh..wh..opq", b""), file("a/opt/new")]
    blobs = [layer(tmp_path / "l0.tar", lower), layer(tmp_path / "l1.tar", upper)]
    img = assemble(
        layers=blobs,
        fields={"Cmd": ["/bin/true"]},
        platform=parse_platform("x86_64"),
        name="strata-test/links",
    ).image
    write_docker_archive(tmp_path / "img.tar", [img])
    _docker_export(docker_engine, tmp_path / "img.tar", str(img.ref), tmp_path / "docker.tar")
    export_rootfs(img.layers, tmp_path / "ours.tar", tmp_path / "work")
    ours = _exported_files(tmp_path / "ours.tar")
    assert _without_runtime(_exported_files(tmp_path / "docker.tar")) == ours
    assert "etc/one" in ours and "x/etc/one" not in ours and "etc/gone" not in ours
    assert sorted(n for n in ours if n.startswith("opt/")) == ["opt/new"]


def test_export_matches_docker_export(tmp_path: Path, docker_engine: DockerEngine) -> None:
    """Our flattened rootfs has the same files and contents as the engine's `docker export`."""
    img = busybox_image(tmp_path, "gzip", "strata-test/export", {"Cmd": ["/bin/true"]})
    blob, _ = make_layer(tmp_path / "app", app_layer, "gzip")
    img = assemble(
        layers=[*img.layers, blob],
        fields={"Cmd": ["/bin/true"]},
        platform=parse_platform("x86_64"),
        name="strata-test/export",
    ).image
    write_docker_archive(tmp_path / "img.tar", [img])
    _docker_export(docker_engine, tmp_path / "img.tar", str(img.ref), tmp_path / "docker.tar")
    export_rootfs(img.layers, tmp_path / "ours.tar", tmp_path / "work")
    theirs = _exported_files(tmp_path / "docker.tar")
    assert _without_runtime(theirs) == _exported_files(tmp_path / "ours.tar")
