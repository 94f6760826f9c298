"""A base image's own SBOM in the image's SBOM, and damaged layouts as one-line errors.

A base layout that lists SBOM referrers of its image (what `pull_image` keeps
from the registry, or an image's `.sbom.oci`) is named in the new image's
documents by each document's digest; a damaged layout is one `error:` line
naming it and the fix, through the command line the rules run, never a
traceback.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from image_helpers import small_image
from sbom_check import cyclonedx_problems, spdx_problems
from strata.actions import lookup
from strata.errors import UserError
from strata.oci.base import Selector, read_oci_layout
from strata.oci.manifest import OCI_INDEX, OCI_MANIFEST
from strata.oci.oci_layout import write_oci_layout
from strata.sbom.cyclonedx import cyclonedx_bytes, cyclonedx_document
from strata.sbom.model import BaseImage, BaseSbom
from strata.sbom.spdx import spdx_bytes, spdx_document
from test_sbom import facts

ROOT = Path(__file__).resolve().parent.parent
SPDX = "application/spdx+json"
CDX = "application/vnd.cyclonedx+json"
BASE_SBOMS = (
    BaseSbom(SPDX, "sha256:" + "12" * 32, "https://strata.invalid/spdx/lib/base/x"),
    BaseSbom(CDX, "sha256:" + "34" * 32, "urn:cdx:3c3f1e1e-9d0f-5a7b-8c1d-2e3f4a5b6c7d/1"),
)


def _with_base(sboms: tuple[BaseSbom, ...]) -> Any:
    return dataclasses.replace(
        facts(), bases=(BaseImage("registry.example/lib/base", "sha256:" + "56" * 32, sboms),)
    )


def test_a_base_sbom_is_an_external_document_and_a_bom_reference(tmp_path: Path) -> None:
    f = _with_base(BASE_SBOMS)
    spdx = spdx_document(f)
    assert spdx["externalDocumentRefs"] == [
        {
            "checksum": {"algorithm": "SHA256", "checksumValue": "12" * 32},
            "externalDocumentId": "DocumentRef-sha256-" + "12" * 32,
            "spdxDocument": "https://strata.invalid/spdx/lib/base/x",
        }
    ]
    assert {
        "relatedSpdxElement": f"DocumentRef-sha256-{'12' * 32}:SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBED_BY",
        "spdxElementId": "SPDXRef-Base-" + "56" * 32,
    } in spdx["relationships"]
    cdx = cyclonedx_document(f)
    (base,) = [c for c in cdx["components"] if c["type"] == "container"]
    refs = {r["url"]: r["hashes"] for r in base["externalReferences"]}
    assert refs == {
        "https://strata.invalid/spdx/lib/base/x": [{"alg": "SHA-256", "content": "12" * 32}],
        BASE_SBOMS[1].uri: [{"alg": "SHA-256", "content": "34" * 32}],
    }
    assert {r["type"] for r in base["externalReferences"]} == {"bom"}
    (tmp_path / "a.spdx.json").write_bytes(spdx_bytes(f))
    (tmp_path / "a.cdx.json").write_bytes(cyclonedx_bytes(f))
    assert spdx_problems(tmp_path / "a.spdx.json") == ""
    assert cyclonedx_problems(tmp_path / "a.cdx.json") == ""


def test_the_summary_says_a_base_carries_its_own_sbom() -> None:
    from strata.sbom.summary import summary_lines

    base = "base: registry.example/lib/base sha256:" + "56" * 32
    assert base + " (carries its own SBOM: 2 documents)" in summary_lines(
        cyclonedx_document(_with_base(BASE_SBOMS))
    )
    assert base in summary_lines(cyclonedx_document(_with_base(())))


def test_a_base_without_an_sbom_adds_nothing() -> None:
    spdx = spdx_document(_with_base(()))
    assert "externalDocumentRefs" not in spdx
    assert all(r["relationshipType"] != "DESCRIBED_BY" for r in spdx["relationships"])
    cdx = cyclonedx_document(_with_base(()))
    assert all("externalReferences" not in c for c in cdx["components"])


def _sbom_layout(tmp: Path, name: str = "base") -> Path:
    """An image's `.sbom.oci` (the image and its two SBOM referrers), as a base layout."""
    image = small_image(tmp / name, config={"Cmd": [name]}).image
    write_oci_layout(tmp / f"{name}.oci", [image])
    out = {
        "cyclonedx": str(tmp / f"{name}.cdx.json"),
        "referrers": str(tmp / f"{name}.sbom.oci"),
        "spdx": str(tmp / f"{name}.spdx.json"),
    }
    req = {"image": str(tmp / f"{name}.oci"), "name": "lib/base", "outputs": out}
    lookup("Sbom")(req | {"schema_version": 1}, "req.json")
    return tmp / f"{name}.sbom.oci"


def _request(tmp: Path, base: Path) -> Path:
    image = small_image(tmp / "app").image
    write_oci_layout(tmp / "app.oci", [image])
    req = {
        "base": {"name": "", "path": str(base)},
        "image": str(tmp / "app.oci"),
        "name": "team/app",
        "outputs": {"cyclonedx": str(tmp / "o.cdx.json"), "spdx": str(tmp / "o.spdx.json")},
        "schema_version": 1,
    }
    (tmp / "req.json").write_text(json.dumps(req))
    return tmp / "req.json"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    return subprocess.run(
        [sys.executable, "-m", "strata", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_base_layouts_sbom_referrers_are_named_by_digest(tmp_path: Path) -> None:
    base = _sbom_layout(tmp_path)
    # the layout is still one image to every reader of a base
    assert read_oci_layout(base, Selector()).config["rootfs"]["diff_ids"]
    proc = _cli("action", "Sbom", f"@{_request(tmp_path, base)}")
    assert proc.returncode == 0, proc.stderr
    spdx_doc = (tmp_path / "base.spdx.json").read_bytes()
    cdx_doc = (tmp_path / "base.cdx.json").read_bytes()
    spdx = json.loads((tmp_path / "o.spdx.json").read_bytes())
    (ref,) = spdx["externalDocumentRefs"]
    assert "sha256:" + ref["checksum"]["checksumValue"] == sha(spdx_doc)
    assert ref["spdxDocument"] == json.loads(spdx_doc)["documentNamespace"]
    cdx = json.loads((tmp_path / "o.cdx.json").read_bytes())
    (comp,) = [c for c in cdx["components"] if c["type"] == "container"]
    hashes = sorted("sha256:" + r["hashes"][0]["content"] for r in comp["externalReferences"])
    assert hashes == sorted([sha(spdx_doc), sha(cdx_doc)])
    serial = json.loads(cdx_doc)["serialNumber"][len("urn:uuid:") :]
    assert f"urn:cdx:{serial}/1" in {r["url"] for r in comp["externalReferences"]}
    assert spdx_problems(tmp_path / "o.spdx.json") == ""
    assert cyclonedx_problems(tmp_path / "o.cdx.json") == ""


def sha(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def _referrer(layout: Path, kind: str) -> tuple[dict[str, Any], Path]:
    index = json.loads((layout / "index.json").read_bytes())
    (entry,) = [e for e in index["manifests"] if e.get("artifactType") == kind]
    return entry, layout / "blobs/sha256" / entry["digest"][7:]


def _unlink(layout: Path) -> None:
    _referrer(layout, SPDX)[1].unlink()


def _not_json(layout: Path) -> None:
    # a manifest that is not JSON, and an index that names it by its true digest
    entry, path = _referrer(layout, SPDX)
    path.unlink()
    data = b"{not json"
    (layout / "blobs/sha256" / sha(data)[7:]).write_bytes(data)
    index = (layout / "index.json").read_text()
    index = index.replace(entry["digest"], sha(data)).replace(
        f'"size":{entry["size"]}', f'"size":{len(data)}'
    )
    (layout / "index.json").write_text(index)


def _document_changed(layout: Path) -> None:
    manifest = json.loads(_referrer(layout, CDX)[1].read_bytes())
    doc = layout / "blobs/sha256" / manifest["layers"][0]["digest"][7:]
    os.chmod(doc, 0o644)
    doc.write_bytes(doc.read_bytes().replace(b"CycloneDX", b"CycloneDY"))


def _index_cut(layout: Path) -> None:
    data = (layout / "index.json").read_bytes()
    (layout / "index.json").write_bytes(data[: len(data) // 2])


DAMAGE = {
    "referrer manifest missing": (_unlink, "blob is missing (got blobs/sha256/"),
    "referrer manifest not JSON": (_not_json, "is not JSON (got "),
    "SBOM document changed": (_document_changed, "digest mismatch"),
    "index.json cut short": (_index_cut, "index.json is not JSON (got "),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_base_layout_is_one_line_naming_it(tmp_path: Path, damage: str) -> None:
    base = _sbom_layout(tmp_path)
    for p in [base, *base.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    do, message = DAMAGE[damage]
    do(base)
    proc = _cli("action", "Sbom", f"@{_request(tmp_path, base)}")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"error: {base}: "), line
    assert message in line
    assert "again" in line  # how to fix it: pull, build or copy it again


class _Answer:
    def __init__(self, status: int, data: bytes = b"", media_type: str = "") -> None:
        self.status, self.data, self.media_type = status, data, media_type

    def header(self, name: str) -> str:
        return self.media_type if name == "content-type" else ""


class _ReferrersApi:
    """A registry with the referrers API serving what an `.sbom.oci` layout holds, and
    listing besides a referrer that is no SBOM and one whose manifest names another
    subject (which a pull must leave out)."""

    def __init__(self, layout: Path, subject: str, extra: list[dict[str, Any]]) -> None:
        self.layout, self.subject = layout, subject
        index = json.loads((layout / "index.json").read_bytes())
        self.listing = [e for e in index["manifests"] if e.get("artifactType")] + extra
        self.paths: list[str] = []

        self.failing: set[str] = set()
        """Paths answered 500."""
        self.tampered: set[str] = set()
        """Manifest digests answered with other bytes."""

    def request(self, method: str, path: str, **kw: object) -> _Answer:
        answer = self._answer(path)
        ok = kw.get("ok", (200,))
        if answer.status not in ok:  # type: ignore[operator]
            raise UserError(f"registry answered {answer.status}", where="t")
        return answer

    def _answer(self, path: str) -> _Answer:
        self.paths.append(path)
        if path in self.failing:
            return _Answer(500)
        if path == f"/v2/lib/base/referrers/{self.subject}":
            index = {"manifests": self.listing, "mediaType": OCI_INDEX, "schemaVersion": 2}
            return _Answer(200, json.dumps(index).encode(), OCI_INDEX)
        digest = path.rpartition("/")[2]
        blob = self.layout / "blobs/sha256" / digest.partition(":")[2]
        if "/manifests/sha256:" in path and blob.is_file():
            data = blob.read_bytes()
            if digest in self.tampered:
                data = data.replace(b"created", b"creaTed")
            return _Answer(200, data, OCI_MANIFEST)
        return _Answer(404)


def test_pull_keeps_the_sboms_the_referrers_api_lists(tmp_path: Path) -> None:
    from strata.registry.blobstore import BlobStore
    from strata.registry.pull_referrers import pull_sbom_referrers

    layout = _sbom_layout(tmp_path)
    subject = json.loads((layout / "index.json").read_bytes())["manifests"][0]["digest"]
    other = _sbom_layout(tmp_path, "other")
    blobs = layout / "blobs/sha256"
    for p in (other / "blobs/sha256").iterdir():
        if not (blobs / p.name).exists():  # the other image's referrers, served too
            os.chmod(blobs, 0o755)
            (blobs / p.name).write_bytes(p.read_bytes())
    foreign = json.loads((other / "index.json").read_bytes())["manifests"][1:]
    not_sbom = dict(foreign[0], artifactType="application/vnd.example.signature")
    assert (
        json.loads((blobs / foreign[1]["digest"][7:]).read_bytes())["subject"]["digest"] != subject
    )
    fake = _ReferrersApi(layout, subject, [not_sbom, foreign[1]])
    store = BlobStore(tmp_path / "store")
    for p in blobs.iterdir():  # every blob is there: only manifests are asked for
        store.put_stream("sha256:" + p.name, p.stat().st_size, [p.read_bytes()], "t")
    got = pull_sbom_referrers(fake, store, "lib/base", [subject], "t")  # type: ignore[arg-type]
    assert sorted(a.descriptor["artifactType"] for a in got.artifacts) == [SPDX, CDX]
    assert [a.descriptor["digest"] for a in got.artifacts] == sorted(
        e["digest"] for e in fake.listing[:2]
    )
    assert got.blobs_fetched == 0
    # the API answered: the tag schema's index was not asked for
    assert not [p for p in fake.paths if "/manifests/sha256-" in p]


def test_pull_of_a_registry_with_no_referrers_keeps_none(tmp_path: Path) -> None:
    from strata.registry.blobstore import BlobStore
    from strata.registry.pull_referrers import pull_sbom_referrers

    layout = _sbom_layout(tmp_path)
    fake = _ReferrersApi(layout, "sha256:" + "0" * 64, [])
    got = pull_sbom_referrers(
        fake,  # type: ignore[arg-type]
        BlobStore(tmp_path / "store"),
        "lib/base",
        ["sha256:" + "9" * 64],
        "t",
    )
    assert got.artifacts == ()
    # the API answered 404: then the tag schema, which is not there either
    assert fake.paths == [
        "/v2/lib/base/referrers/sha256:" + "9" * 64,
        "/v2/lib/base/manifests/sha256-" + "9" * 64,
    ]


def test_pull_leaves_out_what_the_registry_fails_to_serve(tmp_path: Path) -> None:
    """An error answer to the listing, or a listed referrer the registry does not serve,
    is no SBOM, not a failed pull; wrong bytes under a referrer's digest fail it."""
    from strata.registry.blobstore import BlobMismatch, BlobStore
    from strata.registry.pull_referrers import pull_sbom_referrers

    layout = _sbom_layout(tmp_path)
    subject = json.loads((layout / "index.json").read_bytes())["manifests"][0]["digest"]
    fake = _ReferrersApi(layout, subject, [])
    store = BlobStore(tmp_path / "store")
    for p in (layout / "blobs/sha256").iterdir():
        store.put_stream("sha256:" + p.name, p.stat().st_size, [p.read_bytes()], "t")

    def pulled() -> list[str]:
        got = pull_sbom_referrers(fake, store, "lib/base", [subject], "t")  # type: ignore[arg-type]
        return [a.descriptor["artifactType"] for a in got.artifacts]

    spdx = next(e["digest"] for e in fake.listing if e["artifactType"] == SPDX)
    fake.failing = {f"/v2/lib/base/manifests/{spdx}"}
    assert pulled() == [CDX]
    fake.failing = {
        f"/v2/lib/base/referrers/{subject}",
        f"/v2/lib/base/manifests/sha256-{subject[7:]}",
    }
    assert pulled() == []
    fake.failing = set()
    fake.tampered = {spdx}
    with pytest.raises(BlobMismatch, match=f"manifest digest mismatch .*expected {spdx}"):
        pulled()
