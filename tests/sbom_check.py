"""Checking an SBOM against the image it describes, and against the real validators.

The store paths an image holds are read from its layers (entries under the store
directory), and their references found as Nix finds them: a path references
another when the other's 32-character hash appears in its bytes (file contents or
link targets). Nothing here reads strata's own records of the paths.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

from strata.oci.compress import open_decompressed


def layout_layers(layout: Path, ref: str = "") -> list[Path]:
    index = json.loads((layout / "index.json").read_bytes())
    found = [
        d
        for d in index["manifests"]
        if not ref or d.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref
    ]
    assert len(found) == 1, found
    manifest = json.loads((layout / "blobs/sha256" / found[0]["digest"][7:]).read_bytes())
    return [layout / "blobs/sha256" / d["digest"][7:] for d in manifest["layers"]]


def store_graph(layers: list[Path], store_dir: str = "/nix/store") -> dict[str, set[str]]:
    """Store path -> the other store paths of the image whose hash its bytes mention."""
    prefix = store_dir.strip("/") + "/"
    content: dict[str, bytearray] = {}
    for blob in layers:
        with open_decompressed(blob) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
            for m in tar:
                name = m.name.lstrip("./").lstrip("/")
                if not name.startswith(prefix) or name == prefix.rstrip("/"):
                    continue
                top = "/" + prefix + name[len(prefix) :].split("/")[0]
                buf = content.setdefault(top, bytearray())
                if m.issym() or m.islnk():
                    buf += m.linkname.encode()
                elif m.isfile():
                    f = tar.extractfile(m)
                    buf += f.read() if f else b""
    hashes = {p: p.rsplit("/", 1)[1][:32].encode() for p in content}
    return {
        p: {q for q, h in hashes.items() if q != p and h in data} for p, data in content.items()
    }


def spdx_graph(doc: dict[str, Any]) -> dict[str, set[str]]:
    """Store path -> store paths it DEPENDS_ON, from an SPDX document."""
    by_id = {p["SPDXID"]: p.get("packageFileName") for p in doc["packages"]}
    out: dict[str, set[str]] = {p: set() for p in by_id.values() if p}
    for r in doc["relationships"]:
        if r["relationshipType"] == "DEPENDS_ON":
            out[by_id[r["spdxElementId"]]].add(by_id[r["relatedSpdxElement"]])
    return out


def cyclonedx_graph(doc: dict[str, Any]) -> dict[str, set[str]]:
    paths = {c["bom-ref"] for c in doc["components"] if c["type"] == "library"}
    return {d["ref"]: set(d.get("dependsOn", [])) for d in doc["dependencies"] if d["ref"] in paths}


def spdx_problems(path: Path) -> str:
    """pyspdxtools' verdict on an SPDX file: "" when valid, its output otherwise."""
    tool = Path(sys.executable).parent / "pyspdxtools"
    proc = subprocess.run([tool, "-i", path], capture_output=True, text=True, check=False)
    return "" if proc.returncode == 0 else proc.stdout + proc.stderr


def cyclonedx_problems(path: Path) -> str:
    """cyclonedx-python-lib's strict JSON schema validation (1.5): "" when valid."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(path.read_text())
    return "" if error is None else str(error)
