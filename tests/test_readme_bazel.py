"""README's "Using strata from Bazel": its snippets, as written, build under Bazel and strata.

The WORKSPACE and BUILD snippets marked `<!-- tested: ... -->` are copied
into a fresh workspace (only the strata checkout's path substituted for
`/path/to/strata`) and built by real Bazel 4.2.3 and by `tools/strata
build`: a plain build makes the OCI layout and no docker-archive, the
`tarball` output group makes the docker-archive; the bytes must be identical.
The rules reference must name every public symbol of rules/defs.bzl.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from pathlib import Path

import pytest

from realtools import need, run

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Using strata from Bazel"

pytestmark = pytest.mark.realtool


def section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end >= 0 else len(text)]


def snippets() -> dict[str, str]:
    """{file name: text} of the marked code blocks of the section."""
    found = re.findall(r"<!-- tested: (\S+) [^>]*-->\n```starlark\n(.*?)```\n", section(), re.S)
    return dict(found)


# app.tar of the README's BUILD snippet as strata wrote it before whole-image tarballs became
# an output group (ImageAssemble wrote it on every build): asking for it must give these bytes.
APP_TAR_SHA256 = "77d12c89a8b9636e43f7d26372a4670e192f98460ddee3ea4ade6cd0b6c0e6b6"


def _listed(stderr: str, label: str) -> list[str]:
    """The files a build printed under `Target <label> up-to-date:`."""
    lines = stderr.splitlines()
    start = lines.index(f"Target {label} up-to-date:") + 1
    out = []
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        out.append(line.strip())
    return out


def test_readme_snippets_build_identically_under_bazel_and_strata(tmp_path: Path) -> None:
    bazel = need("bazel")
    files = snippets()
    assert sorted(files) == ["WORKSPACE", "app/BUILD"]
    assert 'path = "/path/to/strata"' in files["WORKSPACE"]
    assert "strata_dependencies()" in files["WORKSPACE"]
    assert "layered_image(" in files["app/BUILD"] and "store_path(" in files["app/BUILD"]
    ws = tmp_path / "ws"
    for name, text in files.items():
        (ws / name).parent.mkdir(parents=True, exist_ok=True)
        (ws / name).write_text(text.replace("/path/to/strata", str(ROOT)))
    common = [bazel, "--batch", f"--output_user_root={tmp_path / 'bazel-root'}"]
    flags = ["--symlink_prefix=/", "--spawn_strategy=processwrapper-sandbox"]
    base = tmp_path / "strata-base"
    strata = [ROOT / "tools" / "strata", "build", f"--output_base={base}"]

    # A plain build: the image record alone, no layout and no tarball, in both engines.
    built = run(*common, "build", *flags, "//app", cwd=ws)
    bazel_bin = Path(run(*common, "info", *flags, "bazel-bin", cwd=ws).stdout.strip())
    assert _listed(built.stderr, "//app:app") == [f"{bazel_bin}/app/app.image.json"]
    ours = run(*strata, "//app", cwd=ws)
    assert _listed(ours.stderr, "//app:app") == ["strata-bin/app/app.image.json"]
    (strata_bin,) = base.glob("execroot/*/bazel-out/k8-fastbuild/bin")
    for out in (bazel_bin, strata_bin):
        assert not (out / "app" / "app.oci").exists()
        assert not (out / "app" / "app.tar").exists()
    image_json = (bazel_bin / "app" / "app.image.json").read_bytes()
    assert image_json == (strata_bin / "app" / "app.image.json").read_bytes()

    # Asked for, the OCI layout is the same files in both engines, and the record's image.
    oci = "--output_groups=+oci"
    built = run(*common, "build", *flags, oci, "//app", cwd=ws)
    assert _listed(built.stderr, "//app:app")[-1] == f"{bazel_bin}/app/app.oci"
    ours = run(*strata, oci, "//app", cwd=ws)
    assert _listed(ours.stderr, "//app:app") == [
        "strata-bin/app/app.image.json",
        "strata-bin/app/app.oci",
    ]
    assert _tree(bazel_bin / "app" / "app.oci") == _tree(strata_bin / "app" / "app.oci")
    index = json.loads((strata_bin / "app" / "app.oci" / "index.json").read_bytes())
    assert index["manifests"][0]["digest"] == json.loads(image_json)["manifest_digest"]

    # Asked for, the docker-archive is the same bytes in both engines, and as before.
    tarball = "--output_groups=+tarball"
    built = run(*common, "build", *flags, tarball, "//app", cwd=ws)
    assert _listed(built.stderr, "//app:app")[-1] == f"{bazel_bin}/app/app.tar"
    ours = run(*strata, tarball, "//app", cwd=ws)
    assert _listed(ours.stderr, "//app:app") == [
        "strata-bin/app/app.image.json",
        "strata-bin/app/app.tar",
    ]
    archive = (bazel_bin / "app" / "app.tar").read_bytes()
    assert archive == (strata_bin / "app" / "app.tar").read_bytes()
    assert hashlib.sha256(archive).hexdigest() == APP_TAR_SHA256
    # and it is the image the README describes: the greeting linked at /share
    links = {}
    with tarfile.open(bazel_bin / "app" / "app.tar") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        for layer in manifest[0]["Layers"]:
            with tarfile.open(fileobj=tar.extractfile(layer), mode="r:*") as t:
                links.update({m.name: m.linkname for m in t.getmembers() if m.issym()})
    assert links["share/greeting.txt"].endswith("-greeting-1.0/share/greeting.txt")
    assert (ws / "strata-bin" / "app" / "app.tar").read_bytes() == archive


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_rules_reference_names_every_public_symbol() -> None:
    defs = (ROOT / "rules" / "defs.bzl").read_text()
    public = set(re.findall(r"^([A-Za-z]\w*) = _", defs, re.M))
    public |= set(re.findall(r"^def ([a-z]\w*)\(", defs, re.M))
    reference = section().split("### Rules reference", 1)[1]
    missing = sorted(p for p in public if f"`{p}" not in reference)
    assert not missing, f"README's rules reference lacks {missing}"
