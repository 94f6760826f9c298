"""The examples' SBOMs (the session's strata builds, tests/examples_build.py): every
SPDX and CycloneDX document passes the validators, lists the store paths the layers
hold, and `strata sbom` summarises an image and an index.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from examples_build import ROOT, strata_bin
from realtools import need, run
from sbom_check import (
    cyclonedx_graph,
    cyclonedx_problems,
    layout_layers,
    spdx_graph,
    spdx_problems,
    store_graph,
)

pytestmark = pytest.mark.realtool


def _sboms(base: Path) -> list[Path]:
    return sorted((strata_bin(base) / "examples").glob("*/*.spdx.json"))


def test_every_sbom_passes_the_validators(strata_bases: list[Path]) -> None:
    spdx = _sboms(strata_bases[0])
    # every image target of the examples: docker_image, layered_image, stream, run_as_root, ...
    assert len(spdx) >= 12, spdx
    for path in spdx:
        assert spdx_problems(path) == "", path
        assert (
            cyclonedx_problems(path.with_name(path.name[: -len(".spdx.json")] + ".cdx.json")) == ""
        )


@pytest.mark.parametrize(
    ("example", "image"),
    [("layered", "layered"), ("hello", "hello"), ("nginx", "nginx"), ("nix-db", "nix-db")],
)
def test_sbom_lists_the_store_paths_in_the_layers(
    example: str, image: str, strata_bases: list[Path]
) -> None:
    out = strata_bin(strata_bases[0]) / "examples" / example
    actual = store_graph(layout_layers(out / f"{image}.oci"))
    assert actual, "the image holds store paths"
    spdx = json.loads((out / f"{image}.spdx.json").read_bytes())
    cdx = json.loads((out / f"{image}.cdx.json").read_bytes())
    assert spdx_graph(spdx) == actual
    assert cyclonedx_graph(cdx) == actual
    info = json.loads((out / f"{image}.image.json").read_bytes())
    image_pkg = spdx["packages"][0]
    assert image_pkg["versionInfo"] == info["manifest_digest"]
    assert cdx["metadata"]["component"]["version"] == info["manifest_digest"]


def _strata_sbom(base: Path, target: str) -> subprocess.CompletedProcess[str]:
    return run(ROOT / "tools" / "strata", "sbom", f"--output_base={base}", target, cwd=ROOT)


def test_strata_sbom_prints_a_summary(strata_bases: list[Path]) -> None:
    proc = _strata_sbom(strata_bases[0], "//examples/layered")
    lines = proc.stdout.splitlines()
    info = json.loads(
        (strata_bin(strata_bases[0]) / "examples/layered/layered.image.json").read_bytes()
    )
    assert lines[0] == f"examples/layered/layered {info['manifest_digest']}"
    assert lines[1].startswith("13 store paths")
    assert "largest dependencies:" in lines
    assert "0 executed" in proc.stderr  # already built with the sbom group
    bad = subprocess.run(
        [
            ROOT / "tools" / "strata",
            "sbom",
            f"--output_base={strata_bases[0]}",
            "//examples/hello:hello_bin",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1
    assert bad.stderr.strip().endswith(
        "not an image target (got no output group 'sbom'); name a docker_image, "
        "layered_image, stream_layered_image, run_as_root, merge_images or image_index"
    )


def test_strata_sbom_of_an_index_summarises_each_platform(strata_bases: list[Path]) -> None:
    proc = _strata_sbom(strata_bases[0], "//examples/multiarch:multiarch")
    index = json.loads(
        (strata_bin(strata_bases[0]) / "examples/multiarch/multiarch.oci/index.json").read_bytes()
    )
    platform_digests = {e["digest"] for e in index["manifests"] if "platform" in e}
    shown = {line.split()[1] for line in proc.stdout.splitlines() if line.startswith("examples/")}
    assert len(platform_digests) == 2 and shown == platform_digests


def test_multiarch_sbom_layout_holds_each_platforms_referrers(examples_bazel_bin: Path) -> None:
    """`multiarch.sbom.oci` (output group `sbom`, what image_push pushes): the index as
    multiarch.oci has it, then each platform's two SBOM documents with its manifest as subject."""
    skopeo = need("skopeo")
    out = examples_bazel_bin / "examples" / "multiarch"
    layout = out / "multiarch.sbom.oci"
    plain = json.loads((out / "multiarch.oci" / "index.json").read_bytes())["manifests"]
    entries = json.loads((layout / "index.json").read_bytes())["manifests"]
    assert entries[: len(plain)] == plain
    raw = json.loads(run(skopeo, "inspect", "--raw", f"oci:{layout}:latest").stdout)
    platforms = {m["digest"]: m["platform"]["architecture"] for m in raw["manifests"]}
    subjects: dict[str, list[str]] = {}
    for entry in entries[len(plain) :]:
        blob = layout / "blobs" / "sha256" / entry["digest"].removeprefix("sha256:")
        manifest = json.loads(blob.read_bytes())
        assert manifest["artifactType"] == entry["artifactType"]
        subjects.setdefault(platforms[manifest["subject"]["digest"]], []).append(
            entry["artifactType"]
        )
    assert {arch: sorted(types) for arch, types in subjects.items()} == {
        arch: ["application/spdx+json", "application/vnd.cyclonedx+json"]
        for arch in ("amd64", "arm64")
    }
