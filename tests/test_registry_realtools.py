"""Pull and push against Debian's docker-registry on 127.0.0.1, checked with skopeo and Docker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from image_helpers import make_layer
from realtools import DockerEngine, run
from registry_kit import AMD64, ARM64, busybox_image, client, registry, skopeo_push, small
from registry_server import RegistryServer
from strata.errors import UserError
from strata.oci.base import Selector, read_oci_layout
from strata.oci.digest import sha256_bytes
from strata.oci.docker_archive import write_docker_archive
from strata.oci.image import Image, assemble
from strata.oci.manifest import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, Descriptor, index_bytes
from strata.oci.oci_layout import write_oci_layout
from strata.oci.platform import Platform, parse_platform
from strata.oci.reference import ImageRef
from strata.registry.blobstore import BlobStore
from strata.registry.fetch import get_manifest
from strata.registry.pull import pull
from strata.registry.push import push

pytestmark = pytest.mark.realtool


@pytest.fixture(scope="module")
def plain() -> Iterator[RegistryServer]:
    yield from registry("plain")


# -- pull ------------------------------------------------------------------------------------


def test_pull_single_arch_image_skopeo_pushed(tmp_path: Path, plain: RegistryServer) -> None:
    img = busybox_image(tmp_path)
    write_oci_layout(tmp_path / "src", [img])
    skopeo_push(f"oci:{tmp_path / 'src'}:v1", plain, "base/busybox:1.0")
    c = client(plain)
    tagged = get_manifest(c, "base/busybox", "1.0", "t")
    store = BlobStore(tmp_path / "store")
    ref = ImageRef("base/busybox", "1.0")
    got = pull(c, store, "base/busybox", tagged.digest, AMD64, tmp_path / "pulled", ref, "t")
    assert got.digest == tagged.digest == sha256_bytes(img.manifest(docker=False))
    assert got.config_digest == img.config_digest
    assert (got.blobs_fetched, got.blobs_reused) == (2, 0)
    assert got.bytes_fetched == len(img.config) + img.layers[0].size
    # Usable as a base image as it is: same layer blob, same diff_id.
    base = read_oci_layout(tmp_path / "pulled", Selector("1.0", AMD64))
    assert [b.digest for b in base.layers] == [b.digest for b in img.layers]
    assert [b.diff_id for b in base.layers] == [b.diff_id for b in img.layers]
    index = json.loads((tmp_path / "pulled" / "index.json").read_text())
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == str(ref)
    # A second pull into another layout fetches nothing: the store is keyed by digest.
    again = pull(c, store, "base/busybox", tagged.digest, AMD64, tmp_path / "p2", ref, "t")
    assert (again.blobs_fetched, again.bytes_fetched, again.blobs_reused) == (0, 0, 2)
    assert (tmp_path / "p2" / "index.json").read_bytes() == index_raw(tmp_path / "pulled")


def index_raw(layout: Path) -> bytes:
    return (layout / "index.json").read_bytes()


def two_platform_layout(tmp: Path) -> tuple[Path, Image, Image]:
    (tmp / "amd").mkdir()
    (tmp / "arm").mkdir()
    amd = small(tmp / "amd", AMD64, b"amd64\n")
    arm = small(tmp / "arm", ARM64, b"arm64\n")
    layout = tmp / "multi"
    write_oci_layout(layout, [amd, arm])
    # skopeo copies one top-level entry: nest both manifests in one index named "multi".
    entries = json.loads((layout / "index.json").read_text())["manifests"]
    nested = index_bytes(
        [
            Descriptor(e["mediaType"], e["digest"], e["size"], platform=Platform.from_json(p))
            for e, p in ((e, e["platform"]) for e in entries)
        ]
    )
    (layout / "blobs/sha256" / sha256_bytes(nested).partition(":")[2]).write_bytes(nested)
    top = Descriptor(
        OCI_INDEX,
        sha256_bytes(nested),
        len(nested),
        annotations={"org.opencontainers.image.ref.name": "multi"},
    )
    (layout / "index.json").write_bytes(index_bytes([top]))
    return layout, amd, arm


def test_pull_platform_from_two_platform_index(tmp_path: Path, plain: RegistryServer) -> None:
    layout, amd, arm = two_platform_layout(tmp_path)
    skopeo_push(f"oci:{layout}:multi", plain, "base/multi:1", "--all")
    c = client(plain)
    top = get_manifest(c, "base/multi", "1", "t")
    assert top.media_type == OCI_INDEX
    store = BlobStore(tmp_path / "store")
    got = pull(c, store, "base/multi", top.digest, ARM64, tmp_path / "arm-out", None, "t")
    assert got.digest == top.digest
    assert got.config_digest == arm.config_digest
    assert got.manifest_digest == sha256_bytes(arm.manifest(docker=False))
    got = pull(c, store, "base/multi", top.digest, AMD64, tmp_path / "amd-out", None, "t")
    assert got.config_digest == amd.config_digest
    # The app layer is the same bytes on both platforms: fetched once.
    assert got.blobs_reused == 1
    s390 = parse_platform("s390x")
    with pytest.raises(UserError) as e:
        pull(c, store, "base/multi", top.digest, s390, tmp_path / "none", None, "t")
    assert "platform linux/s390x is not in the image index (got: linux/amd64, linux/arm64)" in str(
        e.value
    )
    assert not (tmp_path / "none").exists()


# -- push ------------------------------------------------------------------------------------


def test_push_build_on_pulled_base_then_skopeo_and_docker_run(
    tmp_path: Path, plain: RegistryServer, docker_engine: DockerEngine
) -> None:
    (tmp_path / "b").mkdir()
    base_img = busybox_image(tmp_path / "b")
    write_oci_layout(tmp_path / "base-src", [base_img])
    skopeo_push(f"oci:{tmp_path / 'base-src'}:v1", plain, "base/bb:1")
    c = client(plain)
    digest = get_manifest(c, "base/bb", "1", "t").digest
    pull(c, BlobStore(tmp_path / "store"), "base/bb", digest, AMD64, tmp_path / "base", None, "t")
    base = read_oci_layout(tmp_path / "base", Selector("", AMD64))

    def build(text: bytes, out: str) -> Image:
        extra = make_layer(tmp_path / f"{out}-layer", lambda t: t.add_bytes("msg", text), "gzip")
        img = assemble(
            layers=[extra[0]],
            fields={"Cmd": ["/bin/sh", "-c", "cat /msg"]},
            platform=AMD64,
            name="strata-test/app",
            tag="v1",
            base=base,
        ).image
        write_oci_layout(tmp_path / out, [img])
        return img

    img = build(b"pushed by strata\n", "app1")
    # The base layer is in base/bb already: mounted into team/app, not uploaded again.
    first = push(c, "team/app", tmp_path / "app1", ["v1"], mount_from="base/bb", where="t")
    assert first.digest == sha256_bytes(img.manifest(docker=False))
    assert (first.counters.blobs_mounted, first.counters.blobs_uploaded) == (1, 2)
    assert first.counters.bytes_uploaded == len(img.config) + img.layers[1].size
    assert first.counters.blobs_skipped == 0
    again = push(c, "team/app", tmp_path / "app1", ["v1"], where="t")
    assert (again.counters.bytes_uploaded, again.counters.blobs_uploaded) == (0, 0)
    assert again.counters.blobs_skipped == 3
    changed = build(b"one layer changed\n", "app2")
    third = push(c, "team/app", tmp_path / "app2", ["v2"], where="t")
    assert third.counters.blobs_uploaded == 2
    assert third.counters.bytes_uploaded == len(changed.config) + changed.layers[1].size
    # Pull it back with skopeo and run it in Docker.
    out = docker_engine.run_from_registry(
        f"{plain.host}/team/app:v2", "back/app:v2", tmp_path / "back.tar"
    )
    assert out == "one layer changed\n"


def test_push_docker_archive_as_docker_v2s2_in_chunks(
    tmp_path: Path, plain: RegistryServer
) -> None:
    img = busybox_image(tmp_path)
    archive = tmp_path / "img.tar"
    write_docker_archive(archive, [img])
    c = client(plain)
    layer = img.layers[0]
    got = push(
        c, "team/archived", archive, ["a1"], chunk_threshold=4096, chunk_size=256 << 10, where="t"
    )
    assert got.media_type == DOCKER_MANIFEST
    assert got.digest == sha256_bytes(img.manifest(docker=True))
    assert got.counters.bytes_uploaded == layer.size + len(img.config)
    assert layer.size > 2 * (256 << 10)  # so the layer really went up in several PATCHes
    raw = run(
        "skopeo",
        "inspect",
        "--raw",
        "--tls-verify=false",
        f"docker://{plain.host}/team/archived:a1",
    ).stdout
    assert json.loads(raw)["mediaType"] == DOCKER_MANIFEST
    assert sha256_bytes(raw.encode()) == got.digest
    # skopeo pulls every blob and checks its digest.
    run(
        "skopeo", "copy", "--src-tls-verify=false",
        f"docker://{plain.host}/team/archived:a1", f"oci:{tmp_path / 'back'}:a1",
    )  # fmt: skip
    assert (tmp_path / "back/blobs/sha256" / layer.digest.partition(":")[2]).is_file()


def test_push_image_index_layout_keeps_the_index_digest(
    tmp_path: Path, plain: RegistryServer
) -> None:
    """An image_index output lists the index and, beside it, each platform's manifest:
    pushed as the one index it is, children first, under the tags, digest unchanged."""
    from strata.actions.image_index import build_index

    per_platform = []
    for platform, text in ((AMD64, b"amd64\n"), (ARM64, b"arm64\n")):
        (tmp_path / platform.architecture).mkdir()
        img = small(tmp_path / platform.architecture, platform, text)
        write_oci_layout(tmp_path / f"{platform.architecture}.oci", [img])
        per_platform.append(img)
    layout = tmp_path / "multi.oci"
    build_index(
        {
            "images": [str(tmp_path / "amd64.oci"), str(tmp_path / "arm64.oci")],
            "name": "team/multi",
            "output": str(layout),
            "schema_version": 1,
            "tag": "1.0",
        },
        "t",
    )
    entries = json.loads((layout / "index.json").read_text())["manifests"]
    assert [e["mediaType"] for e in entries] == [OCI_INDEX, OCI_MANIFEST, OCI_MANIFEST]
    want = entries[0]["digest"]
    got = push(client(plain), "team/multi", layout, ["1.0", "latest"], where="t")
    assert (got.digest, got.media_type) == (want, OCI_INDEX)
    # two manifests by digest, then the index under each tag; the shared app layer once
    assert got.counters.manifests_pushed == 4
    assert got.counters.blobs_uploaded == 5
    for tag in ("1.0", "latest"):
        raw = run(
            "skopeo", "inspect", "--raw", "--tls-verify=false",
            f"docker://{plain.host}/team/multi:{tag}",
        ).stdout  # fmt: skip
        assert sha256_bytes(raw.encode()) == want
        assert raw.encode() == (layout / "blobs/sha256" / want.partition(":")[2]).read_bytes()
    # skopeo copies every platform back and checks every blob against its digest.
    back = tmp_path / "back"
    run(
        "skopeo", "copy", "--all", "--preserve-digests", "--src-tls-verify=false",
        f"docker://{plain.host}/team/multi:1.0", f"oci:{back}:1.0",
    )  # fmt: skip
    for img in per_platform:
        manifest = sha256_bytes(img.manifest(docker=False))
        assert (back / "blobs/sha256" / manifest.partition(":")[2]).is_file()
    again = push(client(plain), "team/multi", layout, ["1.0"], where="t")
    assert (again.digest, again.counters.bytes_uploaded) == (want, 0)
