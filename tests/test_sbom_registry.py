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
    from strata.registry.client import Options, Registry, RegistryClient
    from strata.registry.pull import pull
    from strata.registry.push import push

    image = small_image(tmp_path).image
    write_oci_layout(tmp_path / "base.oci", [image])
    client = RegistryClient(Registry.parse(plain.address), Options(env={}))
    pinned = push(client, "lib/base", tmp_path / "base.oci", ["1"], where="t").digest
    store = BlobStore(str(tmp_path / "blobs"))
    pulled = tmp_path / "pulled.oci"
    pull(client, store, "lib/base", pinned, parse_platform("x86_64"), pulled, None, "t")
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
