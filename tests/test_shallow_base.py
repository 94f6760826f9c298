"""Shallow bases (`pull_image(shallow = True)`) against Debian's registry 2.8: the actions.

A base with a 4 MiB layer that gzip cannot shrink is pushed to the registry;
`ImagePull` with `shallow` fetches its manifest and config only. Bytes the
registry sent are counted from its access log. An image assembled on the
shallow base has the digests, config, manifest and `index.json` an image on
the full base has; pushed to the base's registry it mounts the base layers
and downloads nothing; outputs that need the layer bytes fail with one line.
"""

from __future__ import annotations

import dataclasses
import json
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from image_helpers import app_layer, busybox_layer, make_layer
from realtools import need
from registry_server import RegistryServer
from strata.actions import lookup
from strata.errors import UserError
from strata.oci.image import assemble
from strata.oci.oci_layout import write_oci_layout
from strata.oci.platform import parse_platform
from strata.oci.tarwriter import TarWriter
from strata.registry.client import RegistryClient
from strata.registry.endpoint import Options, Registry
from strata.registry.push import push

pytestmark = [pytest.mark.realtool]

BIG = 4 << 20
GOAL = 100 * 1024
"""The goal: at most 100 KB downloaded from the registry at build time and at push time."""


def _big_layer(tar: TarWriter) -> None:
    tar.add_dir("data")
    # Random bytes from a fixed seed: gzip cannot shrink them, so the blob is ~4 MiB.
    tar.add_bytes("data/big.bin", random.Random(17).randbytes(BIG))


@pytest.fixture(scope="module")
def registries() -> Iterator[tuple[RegistryServer, RegistryServer]]:
    root = Path(tempfile.mkdtemp(prefix="strata-shallow-", dir="/tmp"))
    first = RegistryServer(root / "a", "plain", access_log=True).start()
    second = RegistryServer(root / "b", "plain").start()
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


def _client(server: RegistryServer) -> RegistryClient:
    return RegistryClient(Registry.parse(server.address), Options(env={}))


def _pushed_base(tmp: Path, server: RegistryServer, shell: bool = False) -> str:
    """A base of a 4 MiB layer and a small one (busybox as /bin/sh with `shell`) in
    `base/big`; its digest."""
    big = make_layer(tmp / "big-layer", _big_layer, "gzip")[0]
    if shell:
        if not Path("/bin/busybox").is_file():
            need("busybox")
        small = make_layer(tmp / "small-layer", busybox_layer("/bin/busybox"), "none")[0]
    else:
        small = make_layer(tmp / "small-layer", app_layer, "none")[0]
    assert big.size > BIG
    base = assemble(
        layers=[big, small],
        fields={"Env": ["A=1"], "Cmd": ["/opt/app/run"]},
        platform=parse_platform("x86_64"),
        name="base/big",
    ).image
    write_oci_layout(tmp / "base", [base])
    return push(_client(server), "base/big", tmp / "base", ["1"], where="t").digest


def _pull(
    tmp: Path,
    server: RegistryServer,
    digest: str,
    name: str,
    shallow: bool,
    repository: str = "base/big",
) -> Path:
    out = tmp / name
    req = {
        "blob_store": str(tmp / f"{name}-store"),
        "digest": digest,
        "outputs": {"oci_layout": str(out)},
        "registry": server.address,
        "repository": repository,
        "schema_version": 1,
        "shallow": shallow,
    }
    lookup("ImagePull")(req, f"@{name}")
    return out


def _assemble(tmp: Path, base: Path, name: str, outputs: tuple[str, ...] = ()) -> Path:
    top = make_layer(tmp / f"{name}-top", lambda t: t.add_bytes("msg.txt", b"hi\n"), "gzip")
    out = tmp / name
    out.mkdir()
    paths = {"oci_layout": str(out / "app.oci"), "image_info": str(out / "app.image.json")}
    paths |= {k: str(out / k) for k in outputs}
    req = {
        "base": {"path": str(base)},
        "config": {"Cmd": ["/bin/cat", "/msg.txt"]},
        "layers": [{"blob": str(top[0].path), "descriptor": str(top[1])}],
        "name": "team/app",
        "outputs": paths,
        "schema_version": 1,
        "tag": "v1",
    }
    lookup("ImageAssemble")(req, "//:app")
    return out


def _files(layout: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(layout)): p.read_bytes() for p in sorted(layout.rglob("*")) if p.is_file()
    }


def test_shallow_pull_build_and_push_download_no_base_bytes(
    tmp_path: Path, registries: tuple[RegistryServer, RegistryServer]
) -> None:
    reg, other = registries
    digest = _pushed_base(tmp_path, reg)
    manifest = json.loads((tmp_path / "base" / "index.json").read_text())["manifests"][0]
    layers = json.loads(
        (tmp_path / "base/blobs/sha256" / manifest["digest"].partition(":")[2]).read_text()
    )["layers"]

    # The shallow pull: manifest and config only.
    before = reg.bytes_sent(path_part="/v2/")
    shallow = _pull(tmp_path, reg, digest, "shallow", shallow=True)
    pulled = reg.bytes_sent(path_part="/v2/") - before
    assert pulled <= GOAL, f"a shallow pull downloaded {pulled} bytes"
    before = reg.bytes_sent(path_part="/v2/")
    full = _pull(tmp_path, reg, digest, "full", shallow=False)
    assert reg.bytes_sent(path_part="/v2/") - before > BIG  # the counter sees layer bytes
    print(f"\nshallow pull: {pulled} bytes downloaded")

    held = {str(p.name) for p in (shallow / "blobs/sha256").iterdir()}
    assert not held & {d["digest"].partition(":")[2] for d in layers}
    remote = json.loads((shallow / "remote-blobs.json").read_text())
    assert remote == {
        "blobs": {
            d["digest"]: {"registry": reg.address, "repository": "base/big", "size": d["size"]}
            for d in layers
        },
        "version": 1,
    }
    assert not (full / "remote-blobs.json").exists()
    # Everything the shallow layout holds is byte for byte the full one's.
    full_files = _files(full)
    for name, data in _files(shallow).items():
        if name != "remote-blobs.json":
            assert full_files[name] == data, name

    # An image on either base: the same config, manifest, index and digests.
    before = reg.bytes_sent(path_part="/v2/")
    on_shallow = _assemble(tmp_path, shallow, "on-shallow")
    on_full = _assemble(tmp_path, full, "on-full")
    assert reg.bytes_sent(path_part="/v2/") == before  # building fetches nothing
    assert (on_shallow / "app.image.json").read_bytes() == (on_full / "app.image.json").read_bytes()
    s_files, f_files = _files(on_shallow / "app.oci"), _files(on_full / "app.oci")
    assert s_files["index.json"] == f_files["index.json"]
    assert set(f_files) - set(s_files) == {f"blobs/sha256/{d['digest'][7:]}" for d in layers}
    assert set(s_files) - set(f_files) == {"remote-blobs.json"}
    assert s_files["remote-blobs.json"] == remote_bytes(shallow)

    # Outputs holding the base's bytes fail with one line naming the fix.
    with pytest.raises(UserError) as e:
        _assemble(tmp_path, shallow, "tarball", ("docker_archive",))
    assert "set shallow = False on that pull_image" in str(e.value)
    assert str(e.value).startswith(f"{shallow}: this output needs the bytes of 2 base layer(s)")
    assert "\n" not in str(e.value)
    for mnemonic, req in (
        ("ImageArchive", {"image": str(on_shallow / "app.oci"), "output": str(tmp_path / "a.tar")}),
        ("ImageExport", {"image": str(on_shallow / "app.oci"), "output": str(tmp_path / "e.tar")}),
    ):
        with pytest.raises(UserError, match="set shallow = False on that pull_image"):
            lookup(mnemonic)(req | {"schema_version": 1}, "//:x")
        assert not Path(req["output"]).exists()

    # BaseBlobs fetches them through the shared store, once per digest; with them the
    # archive and the root filesystem are the full base's, byte for byte.
    store = tmp_path / "shared-store"
    dirs = []
    for n in range(2):
        before = reg.bytes_sent()
        req = {"blob_store": str(store), "image": str(shallow), "output": str(tmp_path / f"bb{n}")}
        lookup("BaseBlobs")(req | {"schema_version": 1}, "@shallow//:image")
        fetched = reg.bytes_sent() - before
        assert (BIG < fetched < 2 * BIG) if n == 0 else fetched == 0
        assert sorted(p.name for p in (tmp_path / f"bb{n}/sha256").iterdir()) == sorted(
            d["digest"][7:] for d in layers
        )
        dirs.append(str(tmp_path / f"bb{n}"))
    for mnemonic, layout in (("ImageArchive", on_shallow), ("ImageArchive", on_full)):
        out = tmp_path / f"{layout.name}.tar"
        req = {"base_blobs": dirs[1:], "image": str(layout / "app.oci"), "output": str(out)}
        lookup(mnemonic)(req | {"schema_version": 1}, "//:x")
    assert (tmp_path / "on-shallow.tar").read_bytes() == (tmp_path / "on-full.tar").read_bytes()
    # A damaged fetched blob is refused, naming the layer.
    bad = tmp_path / "bad/sha256"
    bad.mkdir(parents=True)
    (bad / layers[1]["digest"][7:]).write_bytes(b"not the layer")
    req = {"base_blobs": [str(bad.parent)], "image": str(on_shallow / "app.oci")}
    with pytest.raises(UserError, match="fetched blob .* digest mismatch"):
        lookup("ImageArchive")(
            req | {"output": str(tmp_path / "bad.tar"), "schema_version": 1}, "x"
        )

    # Pushed to the base's registry: base layers mounted, none downloaded.
    before, blobs_before = reg.bytes_sent(path_part="/v2/"), reg.bytes_sent()
    result = push(_client(reg), "team/app", on_shallow / "app.oci", ["v1"], where="//:push")
    pushed = reg.bytes_sent(path_part="/v2/") - before
    print(f"push: {pushed} bytes downloaded, {vars(result.counters)}")
    assert pushed <= GOAL
    assert reg.bytes_sent() == blobs_before  # not one blob GET
    assert (result.counters.blobs_mounted, result.counters.blobs_uploaded) == (2, 2)
    assert result.digest == json.loads(f_files["index.json"])["manifests"][0]["digest"]
    # The registry holds the whole image: a full pull of it gets every blob of the full build.
    again = tmp_path / "again"
    req = {
        "blob_store": str(tmp_path / "again-store"),
        "digest": result.digest,
        "final_image_name": "team/app",
        "final_image_tag": "v1",
        "outputs": {"oci_layout": str(again)},
        "registry": reg.address,
        "repository": "team/app",
        "schema_version": 1,
    }
    lookup("ImagePull")(req, "@again")
    blobs = {k: v for k, v in f_files.items() if k.startswith("blobs/")}
    assert {k: v for k, v in _files(again).items() if k.startswith("blobs/")} == blobs
    # An image index of it lists the same remote blobs, and pushes with nothing downloaded.
    index = tmp_path / "index.oci"
    index_req = {"images": [str(on_shallow / "app.oci")], "name": "team/app", "output": str(index)}
    lookup("ImageIndex")(index_req | {"schema_version": 1}, "//:index")
    assert remote_bytes(index) == s_files["remote-blobs.json"]
    before = reg.bytes_sent()
    pushed_index = push(_client(reg), "team/index", index, ["1"], where="//:push_index")
    assert reg.bytes_sent() == before
    assert pushed_index.counters.blobs_mounted == 2

    # A second push finds every blob there.
    result = push(_client(reg), "team/app", on_shallow / "app.oci", ["v1"], where="//:push")
    assert (result.counters.blobs_skipped, result.counters.blobs_mounted) == (4, 0)

    # To another registry the base layers are streamed from the base's, chunk by chunk.
    result = push(
        _client(other), "team/app", on_shallow / "app.oci", ["v1"], chunk_size=1 << 20, where="p"
    )
    assert (result.counters.blobs_uploaded, result.counters.blobs_mounted) == (4, 0)
    assert result.counters.bytes_uploaded > BIG
    req |= {"blob_store": str(tmp_path / "other-store"), "outputs": {"oci_layout": str(again)}}
    lookup("ImagePull")(req | {"registry": other.address}, "@other")
    assert {k: v for k, v in _files(again).items() if k.startswith("blobs/")} == blobs

    # A base layer the base's registry now serves wrong is refused, and not committed.
    big = layers[0]["digest"]
    reg.blob_data(big).write_bytes(reg.blob_data(big).read_bytes()[::-1])
    with pytest.raises(UserError) as e:
        push(_client(other), "team/app2", on_shallow / "app.oci", [], where="//:push_other")
    assert str(e.value).startswith(f"//:push_other: base layer {big} from {reg.host}/base/big")
    assert "has another digest or size" in str(e.value)
    head = _client(other).request(
        "HEAD", f"/v2/team/app2/blobs/{big}", scopes=(), where="t", ok=(200, 404)
    )
    assert head.status == 404


def remote_bytes(layout: Path) -> bytes:
    return (layout / "remote-blobs.json").read_bytes()


def test_a_mislabelled_layer_gives_the_full_pulls_layout(
    tmp_path: Path, registries: tuple[RegistryServer, RegistryServer]
) -> None:
    """The registry says a gzip layer is a plain tar: a shallow pull reads the layer's
    first bytes (a ranged GET), as a full pull reads the whole, so both write the same
    manifest, with the media type the bytes have."""
    reg, _ = registries
    gz, _desc = make_layer(tmp_path / "gz", lambda t: t.add_bytes("x.txt", b"x\n" * 4096), "gzip")
    plain, _desc = make_layer(tmp_path / "plain", app_layer, "none")
    lying = dataclasses.replace(gz, compressor="none")  # the manifest will say "tar"
    base = assemble(
        layers=[lying, plain], fields={}, platform=parse_platform("x86_64"), name="base/lies"
    ).image
    write_oci_layout(tmp_path / "base", [base])
    digest = push(_client(reg), "base/lies", tmp_path / "base", ["1"], where="t").digest
    pushed = json.loads((tmp_path / "base/blobs/sha256" / digest[7:]).read_text())
    assert pushed["layers"][0]["mediaType"].endswith(".tar")

    before = reg.bytes_sent(path_part="/v2/")
    shallow = _pull(tmp_path, reg, digest, "shallow", shallow=True, repository="base/lies")
    assert reg.bytes_sent(path_part="/v2/") - before <= GOAL
    full = _pull(tmp_path, reg, digest, "full", shallow=False, repository="base/lies")
    s_files, f_files = _files(shallow), _files(full)
    assert s_files["index.json"] == f_files["index.json"]
    manifest = json.loads(s_files["index.json"])["manifests"][0]["digest"]
    media = [d["mediaType"] for d in json.loads(s_files[f"blobs/sha256/{manifest[7:]}"])["layers"]]
    assert media == [
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar",
    ]


def test_streaming_from_a_tls_base_registry_trusts_its_certs_d_ca(
    tmp_path: Path, registries: tuple[RegistryServer, RegistryServer]
) -> None:
    """The layout does not record the pull's ca_file: a push to another registry reaches
    the base's registry with the CAs Docker would use for it (`certs.d/<host>/*.crt`)."""
    _, other = registries
    tls = RegistryServer(Path(tempfile.mkdtemp(prefix="strata-shallow-tls-", dir="/tmp")), "tls")
    tls.start()
    try:
        layer = make_layer(tmp_path / "l", app_layer, "gzip")[0]
        base = assemble(
            layers=[layer], fields={}, platform=parse_platform("x86_64"), name="base/tls"
        ).image
        write_oci_layout(tmp_path / "base", [base])
        with_ca = RegistryClient(
            Registry.parse(tls.address), Options(env={}, ca_file=str(tls.cert))
        )
        digest = push(with_ca, "base/tls", tmp_path / "base", ["1"], where="t").digest
        shallow = tmp_path / "shallow"
        req = {
            "ca_file": str(tls.cert),
            "blob_store": str(tmp_path / "store"),
            "digest": digest,
            "outputs": {"oci_layout": str(shallow)},
            "registry": tls.address,
            "repository": "base/tls",
            "schema_version": 1,
            "shallow": True,
        }
        lookup("ImagePull")(req, "@tls_base")
        app = _assemble(tmp_path, shallow, "on-tls") / "app.oci"

        plain = Registry.parse(other.address)
        with pytest.raises(UserError, match=f"TLS verification failed for {tls.host}"):
            push(RegistryClient(plain, Options(env={}, certs_dirs=())), "t/a", app, [], where="p")
        certs = tmp_path / "certs.d"
        (certs / tls.host).mkdir(parents=True)
        (certs / tls.host / "ca.crt").write_bytes(tls.cert.read_bytes())
        to_other = RegistryClient(plain, Options(env={}, certs_dirs=(str(certs),)))
        result = push(to_other, "t/a", app, [], where="p")
        assert result.counters.bytes_uploaded > layer.size  # streamed from the TLS registry
    finally:
        tls.stop()
