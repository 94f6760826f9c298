"""README's "Using strata from Bazel": its snippets, as written, build under Bazel and strata.

The WORKSPACE and BUILD snippets marked `<!-- tested: ... -->` are copied
into a fresh workspace (only the strata checkout's path substituted for
`/path/to/strata`) and built by real Bazel 4.2.3 and by `tools/strata
build`; the image bytes must be identical. The rules reference must name
every public symbol of rules/defs.bzl.
"""

from __future__ import annotations

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
    run(*common, "build", *flags, "//app", cwd=ws)
    bazel_bin = Path(run(*common, "info", *flags, "bazel-bin", cwd=ws).stdout.strip())
    base = tmp_path / "strata-base"
    run(ROOT / "tools" / "strata", "build", f"--output_base={base}", "//app", cwd=ws)
    (strata_bin,) = base.glob("execroot/*/bazel-out/k8-fastbuild/bin")
    ours = (bazel_bin / "app" / "app.tar").read_bytes()
    assert ours == (strata_bin / "app" / "app.tar").read_bytes()
    # and it is the image the README describes: the greeting linked at /share
    links = {}
    with tarfile.open(bazel_bin / "app" / "app.tar") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        for layer in manifest[0]["Layers"]:
            with tarfile.open(fileobj=tar.extractfile(layer), mode="r:*") as t:
                links.update({m.name: m.linkname for m in t.getmembers() if m.issym()})
    assert links["share/greeting.txt"].endswith("-greeting-1.0/share/greeting.txt")
    assert (ws / "strata-bin" / "app" / "app.tar").read_bytes() == ours


def test_rules_reference_names_every_public_symbol() -> None:
    defs = (ROOT / "rules" / "defs.bzl").read_text()
    public = set(re.findall(r"^([A-Za-z]\w*) = _", defs, re.M))
    public |= set(re.findall(r"^def ([a-z]\w*)\(", defs, re.M))
    reference = section().split("### Rules reference", 1)[1]
    missing = sorted(p for p in public if f"`{p}" not in reference)
    assert not missing, f"README's rules reference lacks {missing}"
