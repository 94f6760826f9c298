"""An image's SBOM as a CycloneDX 1.5 JSON document.

The image is `metadata.component` (type `container`, its `pkg:oci` purl as
bom-ref); each store path is a `library` component whose bom-ref is its full
store path, with the NAR sha256 as hash and the path, NAR size and deriver as
`nix:` properties; base images are `container` components (a `bom` external reference, with
its sha256, for each SBOM a base carries as an OCI referrer); files of the
image's own top layers are `file` components. `dependencies` has the image
depending on its contents' roots and bases, and each store path on the paths
it references. The serial number is a UUID derived from the manifest digest.

Spec: https://cyclonedx.org/docs/1.5/json/
"""

from __future__ import annotations

from typing import Any

from strata.canonical import json_bytes
from strata.sbom.model import BaseImage, ImageFacts, LayerFile, StorePathPackage, oci_purl


def _image(facts: ImageFacts) -> dict[str, Any]:
    purl = oci_purl(facts.name, facts.manifest_digest)
    return {
        "bom-ref": purl,
        "hashes": [{"alg": "SHA-256", "content": facts.digest_hex}],
        "name": facts.name,
        "purl": purl,
        "type": "container",
        "version": facts.manifest_digest,
    }


def _store_path(p: StorePathPackage) -> dict[str, Any]:
    props = [
        {"name": "nix:nar_size", "value": str(p.nar_size)},
        {"name": "nix:store_path", "value": p.path},
    ]
    if p.deriver:
        props.insert(0, {"name": "nix:deriver", "value": p.deriver})
    comp: dict[str, Any] = {
        "bom-ref": p.path,
        "hashes": [{"alg": "SHA-256", "content": p.nar_sha256}],
        "name": p.name,
        "properties": props,
        "type": "library",
    }
    if p.version:
        comp["version"] = p.version
    return comp


def _base(b: BaseImage) -> dict[str, Any]:
    purl = oci_purl(b.name, b.digest)
    comp: dict[str, Any] = {
        "bom-ref": purl,
        "hashes": [{"alg": "SHA-256", "content": b.digest.partition(":")[2]}],
        "name": b.name or "base image",
        "purl": purl,
        "type": "container",
        "version": b.digest,
    }
    refs = [
        {
            "comment": f"its own SBOM ({d.artifact_type}), carried as an OCI referrer",
            "hashes": [{"alg": "SHA-256", "content": d.hex}],
            "type": "bom",
            "url": d.uri or f"{purl}#{d.digest}",
        }
        for d in b.sboms
    ]
    if refs:
        comp["externalReferences"] = refs
    return comp


def _file(f: LayerFile) -> dict[str, Any]:
    return {
        "bom-ref": f"file:{f.layer}:{f.path}",
        "hashes": [{"alg": "SHA-1", "content": f.sha1}, {"alg": "SHA-256", "content": f.sha256}],
        "name": f.path,
        "properties": [
            {"name": "strata:layer", "value": f.layer},
            {"name": "strata:size", "value": str(f.size)},
        ],
        "type": "file",
    }


def cyclonedx_document(facts: ImageFacts) -> dict[str, Any]:
    image = _image(facts)
    paths = sorted(facts.store_paths, key=lambda p: p.path)
    known = {p.path for p in paths}
    bases = [_base(b) for b in facts.bases]
    files = sorted(facts.files, key=lambda f: (f.path, f.layer))
    roots = sorted(r for r in facts.roots if r in known)
    deps: list[dict[str, Any]] = [
        {
            "dependsOn": sorted(roots + [b["bom-ref"] for b in bases]),
            "ref": image["bom-ref"],
        }
    ]
    deps += [{"ref": b["bom-ref"]} for b in bases]
    for p in paths:
        refs = sorted(r for r in p.references if r != p.path and r in known)
        deps.append({"dependsOn": refs, "ref": p.path} if refs else {"ref": p.path})
    return {
        "bomFormat": "CycloneDX",
        "components": bases + [_store_path(p) for p in paths] + [_file(f) for f in files],
        "dependencies": deps,
        "metadata": {
            "component": image,
            "timestamp": facts.created,
            "tools": {"components": [{"name": "strata", "type": "application"}]},
        },
        "serialNumber": f"urn:uuid:{facts.derived_uuid('cyclonedx')}",
        "specVersion": "1.5",
        "version": 1,
    }


def cyclonedx_bytes(facts: ImageFacts) -> bytes:
    return json_bytes(cyclonedx_document(facts)) + b"\n"
