"""strata.sbom and the Sbom action: name splitting, document shape, validators, determinism."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from image_helpers import app_layer, make_layer, small_image
from realtools import need
from sbom_check import cyclonedx_problems, spdx_problems
from strata.actions import lookup
from strata.errors import UserError
from strata.oci.oci_layout import write_oci_layout
from strata.sbom.cyclonedx import cyclonedx_bytes, cyclonedx_document
from strata.sbom.model import (
    BaseImage,
    ImageFacts,
    LayerFile,
    StorePathPackage,
    nar_sha256_hex,
    oci_purl,
    parse_drv_name,
)
from strata.sbom.spdx import spdx_bytes, spdx_document
from strata.store import base32

NAMES = [
    "hello-2.12",
    "nix-0.12pre12876",
    "python3.11-requests-2.31.0",
    "glibc-2.37-8-bin",
    "foo-bar",
    "foo-_bar",
    "foo-",
    "-1",
    "a-b-c-1-d",
    "openssl-3.0.13-dev",
    "busybox",
    "x-.1",
]
DIGEST = "sha256:" + "ab" * 32
P = "/nix/store/"


def _path(h: str, name: str, refs: tuple[str, ...] = (), deriver: str = "") -> StorePathPackage:
    return StorePathPackage(f"{P}{h * 32}-{name}", refs, "cd" * 32, 1234, deriver)


def facts(digest: str = DIGEST, files: tuple[LayerFile, ...] = ()) -> ImageFacts:
    lib = _path("1", "libfoo-1.2")
    app = _path("2", "app-0.1", (lib.path,), deriver=f"{P}{'3' * 32}-app-0.1.drv")
    return ImageFacts(
        name="example.com/team/app",
        manifest_digest=digest,
        created="2024-01-01T00:00:00Z",
        store_paths=(app, lib),
        roots=(app.path,),
        bases=(BaseImage("registry.example/library/debian", "sha256:" + "ef" * 32),),
        files=files,
    )


FILES = (
    LayerFile("/etc/motd", "00" * 32, "11" * 20, 6, "customisation"),
    LayerFile("/etc/motd", "22" * 32, "33" * 20, 7, "run_as_root"),
)


@pytest.mark.realtool
@pytest.mark.parametrize("name", NAMES)
def test_names_split_as_nix_parse_drv_name(name: str) -> None:
    out = subprocess.run(
        [need("nix-instantiate"), "--eval", "--json", "-E", f'builtins.parseDrvName "{name}"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    want = json.loads(out)
    assert parse_drv_name(name) == (want["name"], want["version"])


def test_name_split_examples() -> None:
    assert parse_drv_name("hello-2.12") == ("hello", "2.12")
    assert parse_drv_name("python3.11-requests-2.31.0") == ("python3.11-requests", "2.31.0")
    assert parse_drv_name("foo-bar") == ("foo-bar", "")


def test_nar_hash_in_nix_base32_or_hex() -> None:
    raw = bytes(range(32))
    assert nar_sha256_hex("sha256:" + base32.encode(raw)) == raw.hex()
    assert nar_sha256_hex("sha256:" + raw.hex()) == raw.hex()
    with pytest.raises(ValueError):
        nar_sha256_hex("md5:" + raw.hex())


def test_image_purl() -> None:
    assert oci_purl("example.com/team/App", DIGEST) == (
        f"pkg:oci/app@sha256%3A{'ab' * 32}?repository_url=example.com/team/app"
    )


def test_spdx_shape() -> None:
    doc = spdx_document(facts(files=FILES))
    by_id = {p["SPDXID"]: p for p in doc["packages"]}
    assert doc["spdxVersion"] == "SPDX-2.3"
    assert doc["creationInfo"]["created"] == "2024-01-01T00:00:00Z"
    image = by_id["SPDXRef-Image"]
    assert image["checksums"] == [{"algorithm": "SHA256", "checksumValue": "ab" * 32}]
    app = by_id[f"SPDXRef-StorePath-{'2' * 32}"]
    assert (app["name"], app["versionInfo"], app["packageFileName"]) == (
        "app",
        "0.1",
        f"{P}{'2' * 32}-app-0.1",
    )
    assert app["checksums"] == [{"algorithm": "SHA256", "checksumValue": "cd" * 32}]
    assert "app-0.1.drv" in app["sourceInfo"]
    rels = {
        (r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"])
        for r in doc["relationships"]
    }
    assert (f"SPDXRef-StorePath-{'2' * 32}", "DEPENDS_ON", f"SPDXRef-StorePath-{'1' * 32}") in rels
    assert ("SPDXRef-Image", "DESCENDANT_OF", f"SPDXRef-Base-{'ef' * 32}") in rels
    assert ("SPDXRef-Image", "CONTAINS", "SPDXRef-Layer-run-as-root") in rels
    # one file path in two layers: two files, two ids
    assert len({f["SPDXID"] for f in doc["files"]}) == 2


def test_cyclonedx_shape() -> None:
    doc = cyclonedx_document(facts(files=FILES))
    assert doc["specVersion"] == "1.5"
    assert doc["metadata"]["component"]["version"] == DIGEST
    deps = {d["ref"]: d.get("dependsOn", []) for d in doc["dependencies"]}
    app, lib = f"{P}{'2' * 32}-app-0.1", f"{P}{'1' * 32}-libfoo-1.2"
    assert deps[app] == [lib] and deps[lib] == []
    image_ref = doc["metadata"]["component"]["bom-ref"]
    assert app in deps[image_ref] and lib not in deps[image_ref]
    props = {
        p["name"]: p["value"]
        for c in doc["components"]
        if c["bom-ref"] == app
        for p in c["properties"]
    }
    assert props["nix:deriver"].endswith("app-0.1.drv") and props["nix:nar_size"] == "1234"


def test_bytes_depend_on_the_digest_only(tmp_path: Path) -> None:
    a, b = spdx_bytes(facts()), spdx_bytes(facts())
    assert a == b and cyclonedx_bytes(facts()) == cyclonedx_bytes(facts())
    other = "sha256:" + "ac" * 32
    assert (
        json.loads(spdx_bytes(facts(other)))["documentNamespace"]
        != json.loads(a)["documentNamespace"]
    )
    assert (
        json.loads(cyclonedx_bytes(facts(other)))["serialNumber"]
        != json.loads(cyclonedx_bytes(facts()))["serialNumber"]
    )


def test_documents_pass_the_real_validators(tmp_path: Path) -> None:
    for i, f in enumerate([facts(), facts(files=FILES)]):
        (tmp_path / f"{i}.spdx.json").write_bytes(spdx_bytes(f))
        (tmp_path / f"{i}.cdx.json").write_bytes(cyclonedx_bytes(f))
        assert spdx_problems(tmp_path / f"{i}.spdx.json") == ""
        assert cyclonedx_problems(tmp_path / f"{i}.cdx.json") == ""


def test_validators_catch_a_broken_document(tmp_path: Path) -> None:
    doc = spdx_document(facts())
    del doc["dataLicense"]
    (tmp_path / "bad.spdx.json").write_text(json.dumps(doc))
    assert spdx_problems(tmp_path / "bad.spdx.json") != ""
    cdx = cyclonedx_document(facts())
    cdx["components"][0]["type"] = "nonsense"
    (tmp_path / "bad.cdx.json").write_text(json.dumps(cdx))
    assert cyclonedx_problems(tmp_path / "bad.cdx.json") != ""


def _store_info(tmp: Path) -> Path:
    lib = {
        "narHash": "sha256:" + "01" * 32,
        "narSize": 8,
        "path": f"{P}{'1' * 32}-lib-2",
        "references": [],
    }
    app = {
        "narHash": "sha256:" + base32.encode(bytes(32)),
        "narSize": 9,
        "path": f"{P}{'2' * 32}-app-1.0",
        "references": [lib["path"], f"{P}{'2' * 32}-app-1.0"],
    }
    info = dict(app, closure=[app, lib])
    (tmp / "app.info.json").write_text(json.dumps(info))
    return tmp / "app.info.json"


def test_action_writes_both_documents(tmp_path: Path) -> None:
    image = small_image(tmp_path).image
    write_oci_layout(tmp_path / "img.oci", [image])
    custom, _ = make_layer(tmp_path / "custom", app_layer)
    req = {
        "image": str(tmp_path / "img.oci"),
        "layers": [{"blob": str(custom.path), "layer": "customisation"}],
        "name": "example.com/strata/small",
        "outputs": {
            "cyclonedx": str(tmp_path / "o.cdx.json"),
            "spdx": str(tmp_path / "o.spdx.json"),
        },
        "schema_version": 1,
        "store_paths": [str(_store_info(tmp_path))],
    }
    lookup("Sbom")(req, "req.json")
    spdx = json.loads((tmp_path / "o.spdx.json").read_bytes())
    digest = image.info()["manifest_digest"]
    assert spdx["packages"][0]["versionInfo"] == digest
    assert spdx["creationInfo"]["created"] == "1970-01-01T00:00:01Z"
    names = {p.get("packageFileName") for p in spdx["packages"]}
    assert {f"{P}{'1' * 32}-lib-2", f"{P}{'2' * 32}-app-1.0"} <= names
    assert sorted(f["fileName"] for f in spdx["files"]) == ["./etc/motd", "./opt/app/run"]
    assert spdx_problems(tmp_path / "o.spdx.json") == ""
    assert cyclonedx_problems(tmp_path / "o.cdx.json") == ""
    # the same request again: the same bytes
    first = (tmp_path / "o.spdx.json").read_bytes(), (tmp_path / "o.cdx.json").read_bytes()
    lookup("Sbom")(req, "req.json")
    assert first == (
        (tmp_path / "o.spdx.json").read_bytes(),
        (tmp_path / "o.cdx.json").read_bytes(),
    )


def test_action_refuses_a_request_without_an_image(tmp_path: Path) -> None:
    req = {"name": "x", "outputs": {}, "schema_version": 1}
    with pytest.raises(UserError, match="exactly one of 'image' and 'assemble' \\(got neither\\)"):
        lookup("Sbom")(req, "req.json")


def test_summary_sizes_and_largest_dependencies() -> None:
    from strata.sbom.summary import summary_lines

    lib = StorePathPackage(f"{P}{'1' * 32}-libfoo-1.2", (), "cd" * 32, 3 * 1024 * 1024)
    app = StorePathPackage(f"{P}{'2' * 32}-app-0.1", (lib.path,), "cd" * 32, 1024)
    f = ImageFacts("example.com/app", DIGEST, "2024-01-01T00:00:00Z", (app, lib), (app.path,))
    lines = summary_lines(cyclonedx_document(f))
    assert lines[0] == f"example.com/app {DIGEST}"
    assert lines[1].startswith("2 store paths (3.0 MiB)")
    table = lines[lines.index(f"{'closure':>10}  {'own':>10}  package") + 1 :]
    # app's closure holds libfoo: largest closure first
    assert table[0].split() == ["3.0", "MiB", "1.0", "KiB", "app", "0.1"]
    assert table[1].split() == ["3.0", "MiB", "3.0", "MiB", "libfoo", "1.2"]
    deps = lines[lines.index("largest dependencies:") + 1 :]
    assert deps == [f"     3.0 MiB  {lib.path} (used by 1)"]


def test_referrers_layout_holds_the_image_and_both_documents(tmp_path: Path) -> None:
    from strata.registry.push_source import read_layout

    image = small_image(tmp_path).image
    write_oci_layout(tmp_path / "img.oci", [image])
    out = tmp_path / "img.sbom.oci"
    req = {
        "image": str(tmp_path / "img.oci"),
        "name": "example.com/strata/small",
        "outputs": {
            "cyclonedx": str(tmp_path / "img.cdx.json"),
            "referrers": str(out),
            "spdx": str(tmp_path / "img.spdx.json"),
        },
        "schema_version": 1,
    }
    lookup("Sbom")(req, "req.json")
    entries = json.loads((out / "index.json").read_bytes())["manifests"]
    own = json.loads((tmp_path / "img.oci/index.json").read_bytes())["manifests"]
    assert entries[:1] == own
    subject = own[0]
    kinds = {}
    for e in entries[1:]:
        manifest = json.loads((out / "blobs/sha256" / e["digest"][7:]).read_bytes())
        assert manifest["subject"] == {k: subject[k] for k in ("digest", "mediaType", "size")}
        assert manifest["artifactType"] == e["artifactType"]
        assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
        (layer,) = manifest["layers"]
        kinds[e["artifactType"]] = (out / "blobs/sha256" / layer["digest"][7:]).read_bytes()
    assert kinds == {
        "application/spdx+json": (tmp_path / "img.spdx.json").read_bytes(),
        "application/vnd.cyclonedx+json": (tmp_path / "img.cdx.json").read_bytes(),
    }
    # what a push reads as the image is still the image alone, byte for byte
    assert read_layout(out).digest == subject["digest"]


def test_referrers_need_a_stored_image(tmp_path: Path) -> None:
    req = {
        "assemble": {"layers": [], "name": "x"},
        "name": "x",
        "outputs": {"cyclonedx": "a", "referrers": "b", "spdx": "c"},
        "schema_version": 1,
    }
    with pytest.raises(UserError, match="outputs.referrers needs 'image'"):
        lookup("Sbom")(req, "req.json")


class _Answer:
    def __init__(self, status: int, headers: dict[str, str] | None = None, data: bytes = b""):
        self.status, self.headers, self.data = status, headers or {}, data

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


class _FakeRegistry:
    """Just enough of RegistryClient: every blob present; manifests PUT answer OCI-Subject
    when `api` (a registry with the referrers API)."""

    def __init__(self, api: bool) -> None:
        self.api = api
        self.calls: list[tuple[str, str]] = []

    def request(self, method: str, path: str, **kw: object) -> _Answer:
        self.calls.append((method, path))
        body = kw.get("body")
        if method == "PUT" and isinstance(body, bytes) and b'"subject"' in body and self.api:
            return _Answer(201, {"oci-subject": json.loads(body)["subject"]["digest"]})
        return _Answer(404 if method == "GET" else 200)


@pytest.mark.parametrize("api", [True, False])
def test_referrers_api_or_fallback_tag(tmp_path: Path, api: bool) -> None:
    from strata.registry.push import PushCounters
    from strata.registry.referrers import layout_referrers, push_referrers

    image = small_image(tmp_path).image
    write_oci_layout(tmp_path / "img.oci", [image])
    out = {"cyclonedx": str(tmp_path / "a.cdx.json"), "spdx": str(tmp_path / "a.spdx.json")}
    req = {"image": str(tmp_path / "img.oci"), "name": "x", "schema_version": 1}
    lookup("Sbom")(req | {"outputs": out | {"referrers": str(tmp_path / "r.oci")}}, "s.json")
    fake = _FakeRegistry(api)
    found = layout_referrers(tmp_path / "r.oci", "t")
    (result,) = push_referrers(fake, "team/x", found, PushCounters(), where="t")  # type: ignore[arg-type]
    digest = image.info()["manifest_digest"]
    assert result.subject == digest and len(result.pushed) == 2
    tag_calls = [c for c in fake.calls if c[1].endswith(f"/manifests/sha256-{digest[7:]}")]
    if api:
        assert (result.fallback_tag, tag_calls) == ("", [])
    else:
        assert result.fallback_tag == f"sha256-{digest[7:]}" and result.fallback_changed
        assert [m for m, _ in tag_calls] == ["GET", "PUT"]
