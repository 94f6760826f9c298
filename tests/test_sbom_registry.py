"""An image's SBOM referrers pushed to Debian's docker-registry (distribution 2.8).

2.8 has no referrers API (no `OCI-Subject` answer), so the push must use the
OCI 1.1 tag schema: an index under `sha256-<hex of the image digest>` listing
both documents' artifact manifests, each with the image as `subject`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from image_helpers import small_image
from realtools import need, run
from registry_server import RegistryServer
from strata.actions import lookup
from strata.errors import UserError
from strata.oci.oci_layout import write_oci_layout

pytestmark = pytest.mark.realtool


@pytest.fixture(scope="module")
def plain() -> Iterator[RegistryServer]:
    root = Path(tempfile.mkdtemp(prefix="strata-registry-sbom-", dir="/tmp"))
    server = RegistryServer(root, "plain").start()
    try:
        yield server
    finally:
        server.stop()


def _raw(server: RegistryServer, ref: str) -> bytes:
    need("skopeo")
    return run(
        "skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{server.host}/{ref}"
    ).stdout.encode()


def test_push_finds_referrers_under_the_fallback_tag(
    tmp_path: Path, plain: RegistryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    image = small_image(tmp_path).image
    write_oci_layout(tmp_path / "img.oci", [image])
    out = tmp_path / "img.sbom.oci"
    lookup("Sbom")(
        {
            "image": str(tmp_path / "img.oci"),
            "name": "team/app",
            "outputs": {
                "cyclonedx": str(tmp_path / "img.cdx.json"),
                "referrers": str(out),
                "spdx": str(tmp_path / "img.spdx.json"),
            },
            "schema_version": 1,
        },
        "sbom.json",
    )
    digest = image.info()["manifest_digest"]
    infos = []
    for i in range(2):
        req = {
            "image": str(out),
            "outputs": {"push_info": str(tmp_path / f"push{i}.json")},
            "registry": plain.address,
            "repository": "team/app",
            "schema_version": 1,
            "tags": ["v1"],
        }
        lookup("ImagePush")(req, "push.json")
        infos.append(json.loads((tmp_path / f"push{i}.json").read_bytes()))
    err = capsys.readouterr().err
    assert f"referrers of {digest}: 2 (tag sha256-{digest[7:]})" in err
    assert f"referrers of {digest}: 2 (tag sha256-{digest[7:]} (unchanged))" in err
    assert infos[0]["digest"] == digest
    # the image under its tag is the image, not an index of it and its SBOMs
    assert json.loads(_raw(plain, "team/app:v1"))["config"]["digest"] == image.config_digest
    index = json.loads(_raw(plain, f"team/app:sha256-{digest[7:]}"))
    assert sorted(e["artifactType"] for e in index["manifests"]) == [
        "application/spdx+json",
        "application/vnd.cyclonedx+json",
    ]
    for entry in index["manifests"]:
        manifest = json.loads(_raw(plain, f"team/app@{entry['digest']}"))
        assert manifest["subject"]["digest"] == digest
        blob = plain.blob_data(manifest["layers"][0]["digest"]).read_bytes()
        name = "img.spdx.json" if "spdx" in entry["artifactType"] else "img.cdx.json"
        assert blob == (tmp_path / name).read_bytes()
    # a second push uploads nothing: no blob, and the fallback index is left as it is
    assert (infos[1]["blobs_uploaded"], infos[1]["bytes_uploaded"]) == (0, 0)
    assert infos[0]["blobs_uploaded"] > 0


def test_a_pulled_base_is_named_by_its_registry_repository_and_digest(
    tmp_path: Path, plain: RegistryServer
) -> None:
    from strata.oci.platform import parse_platform
    from strata.registry.blobstore import BlobStore
    from strata.registry.client import RegistryClient
    from strata.registry.endpoint import Options, Registry
    from strata.registry.pull import pull
    from strata.registry.push import push

    image = small_image(tmp_path).image
    write_oci_layout(tmp_path / "base.oci", [image])
    client = RegistryClient(Registry.parse(plain.address), Options(env={}))
    pinned = push(client, "lib/base", tmp_path / "base.oci", ["1"], where="t").digest
    store = BlobStore(str(tmp_path / "blobs"))
    pulled = tmp_path / "pulled.oci"
    result = pull(client, store, "lib/base", pinned, parse_platform("x86_64"), pulled, None, "t")
    # the registry has no SBOM of it: the layout lists the image alone, as before
    assert result.sboms == 0
    assert [sorted(e) for e in json.loads((pulled / "index.json").read_bytes())["manifests"]] == [
        ["annotations", "digest", "mediaType", "platform", "size"]
    ]
    out = {"cyclonedx": str(tmp_path / "a.cdx.json"), "spdx": str(tmp_path / "a.spdx.json")}
    req = {
        "base": {"name": "", "path": str(pulled)},
        "image": str(tmp_path / "base.oci"),
        "name": "team/app",
        "outputs": out,
        "schema_version": 1,
    }
    lookup("Sbom")(req, "sbom.json")
    spdx = json.loads((tmp_path / "a.spdx.json").read_bytes())
    (base,) = [p for p in spdx["packages"] if p["SPDXID"].startswith("SPDXRef-Base-")]
    assert (base["name"], base["versionInfo"]) == (f"{plain.host}/lib/base", pinned)
    purl = base["externalRefs"][0]["referenceLocator"]
    assert purl == f"pkg:oci/base@sha256%3A{pinned[7:]}?repository_url={plain.host}/lib/base"
    cdx = json.loads((tmp_path / "a.cdx.json").read_bytes())
    assert [c["version"] for c in cdx["components"] if c["type"] == "container"] == [pinned]


def _push_with_sboms(tmp: Path, server: RegistryServer, repository: str) -> str:
    """Push a base image and its two SBOM referrers; the image's digest."""
    image = small_image(tmp / "b").image
    write_oci_layout(tmp / "b.oci", [image])
    out = {
        "cyclonedx": str(tmp / "b.cdx.json"),
        "referrers": str(tmp / "b.sbom.oci"),
        "spdx": str(tmp / "b.spdx.json"),
    }
    req = {"image": str(tmp / "b.oci"), "name": repository, "outputs": out, "schema_version": 1}
    lookup("Sbom")(req, "sbom.json")
    push = {
        "image": str(tmp / "b.sbom.oci"),
        "registry": server.address,
        "repository": repository,
        "schema_version": 1,
        "tags": ["1"],
    }
    lookup("ImagePush")(push, "push.json")
    return str(image.info()["manifest_digest"])


def test_a_pulled_base_keeps_its_sboms_and_the_image_sbom_names_them(
    tmp_path: Path, plain: RegistryServer
) -> None:
    """Pushed with its SBOMs (found under the fallback tag: 2.8 has no referrers API),
    pulled as a base, built on: the new image's documents name the base's by digest,
    and still pass the validators."""
    from sbom_check import cyclonedx_problems, spdx_problems
    from strata.oci.base import Selector, read_oci_layout
    from strata.oci.digest import sha256_bytes
    from strata.oci.platform import parse_platform
    from strata.registry.blobstore import BlobStore
    from strata.registry.client import RegistryClient
    from strata.registry.endpoint import Options, Registry
    from strata.registry.pull import pull

    pinned = _push_with_sboms(tmp_path, plain, "lib/sbom-base")
    client = RegistryClient(Registry.parse(plain.address), Options(env={}))
    store = BlobStore(str(tmp_path / "blobs"))
    layouts = []
    for i in range(2):
        layouts.append(tmp_path / f"pulled{i}.oci")
        result = pull(
            client, store, "lib/sbom-base", pinned, parse_platform("x86_64"), layouts[-1], None, "t"
        )
        assert result.sboms == 2
    # two pulls give the same layout (the referrers in digest order, after the image)
    index = (layouts[0] / "index.json").read_bytes()
    assert index == (layouts[1] / "index.json").read_bytes()
    entries = json.loads(index)["manifests"]
    assert "artifactType" not in entries[0]
    assert entries[1:] == sorted(entries[1:], key=lambda e: e["digest"])
    assert sorted(e["artifactType"] for e in entries[1:]) == [
        "application/spdx+json",
        "application/vnd.cyclonedx+json",
    ]
    # built on: the pulled layout is one image to from_image
    base = read_oci_layout(layouts[0], Selector())
    app = small_image(tmp_path / "app", base=base).image
    write_oci_layout(tmp_path / "app.oci", [app])
    out = {"cyclonedx": str(tmp_path / "a.cdx.json"), "spdx": str(tmp_path / "a.spdx.json")}
    req = {
        "base": {"name": "", "path": str(layouts[0])},
        "image": str(tmp_path / "app.oci"),
        "name": "team/app",
        "outputs": out,
        "schema_version": 1,
    }
    lookup("Sbom")(req, "sbom.json")
    base_spdx = (tmp_path / "b.spdx.json").read_bytes()
    base_cdx = (tmp_path / "b.cdx.json").read_bytes()
    spdx = json.loads((tmp_path / "a.spdx.json").read_bytes())
    (ref,) = spdx["externalDocumentRefs"]
    assert ref["checksum"] == {"algorithm": "SHA256", "checksumValue": sha256_bytes(base_spdx)[7:]}
    assert ref["spdxDocument"] == json.loads(base_spdx)["documentNamespace"]
    cdx = json.loads((tmp_path / "a.cdx.json").read_bytes())
    (comp,) = [c for c in cdx["components"] if c["type"] == "container"]
    assert comp["version"] == pinned
    assert sorted(r["hashes"][0]["content"] for r in comp["externalReferences"]) == sorted(
        [sha256_bytes(base_spdx)[7:], sha256_bytes(base_cdx)[7:]]
    )
    assert spdx_problems(tmp_path / "a.spdx.json") == ""
    assert cyclonedx_problems(tmp_path / "a.cdx.json") == ""


def test_a_damaged_sbom_layout_fails_the_push_in_one_line(
    tmp_path: Path, plain: RegistryServer
) -> None:
    """`strata run //app:push` runs this command: a referrer the layout lacks is one
    error line naming the layout and the fix, exit 1, no traceback."""
    import os
    import subprocess
    import sys

    _push_with_sboms(tmp_path, plain, "team/damaged")
    layout = tmp_path / "b.sbom.oci"
    for p in [layout, *layout.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    index = json.loads((layout / "index.json").read_bytes())
    (entry,) = [e for e in index["manifests"] if e.get("artifactType") == "application/spdx+json"]
    (layout / "blobs/sha256" / entry["digest"][7:]).unlink()
    req = {
        "image": str(layout),
        "label": "//app:push",
        "registry": plain.address,
        "repository": "team/damaged",
        "schema_version": 1,
    }
    (tmp_path / "push.json").write_text(json.dumps(req))
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "-m", "strata", "action", "ImagePush", f"@{tmp_path / 'push.json'}"],
        env=dict(os.environ, PYTHONPATH=str(root / "python")),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line == (
        f"error: //app:push: blob is missing from the layout (got {entry['digest']}); "
        "rebuild or copy the layout again"
    )


def _platform_image(tmp: Path, arch: str, cmd: str = "/opt/app/run") -> tuple[Path, Path, str]:
    """An image for `arch` in an OCI layout, its `.sbom.oci`, and its manifest digest."""
    from image_helpers import app_layer, make_layer
    from strata.oci.image import assemble
    from strata.oci.platform import parse_platform

    tmp.mkdir()
    blob = make_layer(tmp / "layer", app_layer, "gzip")[0]
    image = assemble(
        layers=[blob],
        fields={"Cmd": [cmd]},
        platform=parse_platform(arch),
        name="team/multi",
        tag=None,
    ).image
    write_oci_layout(tmp / "img.oci", [image])
    outputs = {
        "cyclonedx": str(tmp / "img.cdx.json"),
        "referrers": str(tmp / "img.sbom.oci"),
        "spdx": str(tmp / "img.spdx.json"),
    }
    req = {"image": str(tmp / "img.oci"), "name": "team/multi", "outputs": outputs}
    lookup("Sbom")({**req, "schema_version": 1}, "sbom.json")
    return tmp / "img.oci", tmp / "img.sbom.oci", image.info()["manifest_digest"]


def test_an_index_is_pushed_with_each_platforms_sboms_as_its_referrers(
    tmp_path: Path, plain: RegistryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    amd = _platform_image(tmp_path / "amd64", "x86_64")
    arm = _platform_image(tmp_path / "arm64", "aarch64")
    plain_req = {
        "images": [str(amd[0]), str(arm[0])],
        "name": "team/multi",
        "output": str(tmp_path / "index.oci"),
        "schema_version": 1,
        "tag": "v1",
    }
    lookup("ImageIndex")(plain_req, "index.json")
    with_sboms = {**plain_req, "output": str(tmp_path / "index.sbom.oci")}
    lookup("ImageIndex")({**with_sboms, "referrers": [str(arm[1]), str(amd[1])]}, "index.json")
    plain_index = json.loads((tmp_path / "index.oci" / "index.json").read_bytes())
    index = json.loads((tmp_path / "index.sbom.oci" / "index.json").read_bytes())
    # the index's own entries come first and are those of the plain layout
    assert index["manifests"][: len(plain_index["manifests"])] == plain_index["manifests"]
    assert len(index["manifests"]) == len(plain_index["manifests"]) + 4
    infos = []
    for i in range(2):
        req = {
            "image": str(tmp_path / "index.sbom.oci"),
            "outputs": {"push_info": str(tmp_path / f"push{i}.json")},
            "registry": plain.address,
            "repository": "team/multi",
            "schema_version": 1,
            "tags": ["v1"],
        }
        lookup("ImagePush")(req, "push.json")
        infos.append(json.loads((tmp_path / f"push{i}.json").read_bytes()))
    err = capsys.readouterr().err
    pushed = json.loads(_raw(plain, "team/multi:v1"))
    assert pushed["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert sorted(m["digest"] for m in pushed["manifests"]) == sorted([amd[2], arm[2]])
    for layout, _, digest in (amd, arm):
        assert f"referrers of {digest}: 2 (tag sha256-{digest[7:]})" in err
        listed = json.loads(_raw(plain, f"team/multi:sha256-{digest[7:]}"))
        assert len(listed["manifests"]) == 2
        for entry in listed["manifests"]:
            manifest = json.loads(_raw(plain, f"team/multi@{entry['digest']}"))
            assert manifest["subject"]["digest"] == digest
            blob = plain.blob_data(manifest["layers"][0]["digest"]).read_bytes()
            name = "img.spdx.json" if "spdx" in entry["artifactType"] else "img.cdx.json"
            assert blob == (layout.parent / name).read_bytes()
    assert (infos[1]["blobs_uploaded"], infos[1]["bytes_uploaded"]) == (0, 0)
    # a referrer of another image is refused in one line, and nothing is written
    other = _platform_image(tmp_path / "other", "x86_64", cmd="/opt/app/other")
    assert other[2] != amd[2]
    with pytest.raises(UserError, match=r"is not of one of the index's images") as e:
        lookup("ImageIndex")(
            {**with_sboms, "output": str(tmp_path / "bad.oci"), "referrers": [str(other[1])]},
            "index.json",
        )
    assert "\n" not in str(e.value)
    assert not (tmp_path / "bad.oci").exists()
