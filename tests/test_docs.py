"""The rules reference (docs/rules.md and the README's index) is current and complete."""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from strata.engine.bzl_api import Reference
from strata.engine.bzl_docs import REFERENCE, REGENERATE, generated_files
from strata.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def _section(text: str, name: str) -> str:
    m = re.search(rf"^### {re.escape(name)}\n(.*?)(?=^### |\Z)", text, re.S | re.M)
    assert m, f"{REFERENCE} has no section for {name}"
    return m.group(1)


def test_reference_is_current() -> None:
    stale = []
    for path, want in generated_files(ROOT).items():
        have = (ROOT / path).read_text() if (ROOT / path).is_file() else ""
        if have != want:
            diff = difflib.unified_diff(have.splitlines(), want.splitlines(), path, "generated")
            stale.append("\n".join(list(diff)[:30]))
    assert not stale, (
        f"the rules reference is not current with rules/*.bzl: run {REGENERATE} "
        "and commit README.md and docs/rules.md\n" + "\n".join(stale)
    )


def test_every_public_symbol_and_attribute_is_documented() -> None:
    """Checked against the sources and the engine's own schemas, not the generator's list."""
    text = (ROOT / REFERENCE).read_text()
    ref = Reference(ROOT)
    for public in ("rules/defs.bzl", "rules/repositories.bzl"):
        source = (ROOT / public).read_text()
        names = re.findall(r"^(?:def ([A-Za-z]\w*)\(|([A-Za-z]\w*) = )", source, re.M)
        assert len(names) > 3, public
        for name in ("".join(n) for n in names):
            assert re.search(rf"^### {name}$", text, re.M), (
                f"{public}: {name} is not in {REFERENCE}"
            )
    documented = {s.definition for s in ref.symbols}
    for key, rule in ref.rules.items():
        if key not in documented:
            continue  # private rules (nix_store_path, strata_tool)
        symbol = next(s for s in ref.symbols if s.definition == key)
        # A raw rule's entry lists what differs; its macro's entry lists the rest.
        body = _section(text, symbol.name) + (
            _section(text, symbol.raw_for) if symbol.raw_for else ""
        )
        for attr, spec in rule.attrs.items():
            if attr.startswith("_"):
                continue
            assert re.search(rf"^\| `{attr}` \|", body, re.M), f"{symbol.name}: {attr} missing"
            assert spec.get("doc"), f"{symbol.name}: {attr} has an empty doc"


def test_what_the_readme_list_used_to_miss() -> None:
    """docker_image's image_name, files, from_image_* and max_layers; store_path's dict srcs."""
    text = (ROOT / REFERENCE).read_text()
    docker = _section(text, "docker_image")
    for attr in ("image_name", "files", "from_image_name", "from_image_tag", "max_layers"):
        assert re.search(rf"^\| `{attr}` \|", docker, re.M), attr
    assert "| `config` | dict |" in docker
    assert "| `srcs` | dict: label → string | `{}` |" in _section(text, "store_path")
    readme = (ROOT / "README.md").read_text()
    assert "- [`docker_image`](docs/rules.md#docker_image): " in readme


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "strata"
    root.mkdir()
    for name in ("WORKSPACE", "BUILD", "README.md", "requirements.lock"):
        shutil.copy(ROOT / name, root / name)
    for name in ("rules", "docs"):
        shutil.copytree(ROOT / name, root / name)
    (root / "tools").mkdir()
    for name in ("gen-docs", "lib.sh"):
        shutil.copy(ROOT / "tools" / name, root / "tools" / name)
    shutil.copytree(ROOT / "tools" / "bazel", root / "tools" / "bazel")  # WORKSPACE names it
    (root / "python").symlink_to(ROOT / "python")
    return root


def test_an_undocumented_attribute_or_argument_is_refused(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    merge = root / "rules/private/merge.bzl"
    text, n = re.subn(
        r'^(\s*"images": attr\.label_list\(.*doc = )"(?:[^"\\]|\\.)*"',
        r'\1""',
        merge.read_text(),
        flags=re.M,
    )
    assert n == 1
    merge.write_text(text)
    helpers = root / "rules/private/helpers.bzl"
    helpers.write_text(
        helpers.read_text().replace("      shell (label): The store", "      The store")
    )
    with pytest.raises(UserError) as err:
        Reference(root)
    assert "merge_images: attribute 'images' has no doc" in str(err.value)
    assert "bin_sh: attribute 'shell' has no doc" not in str(err.value)  # link_to's doc applies
    assert "write the missing doc= strings or docstring Args" in str(err.value)


def test_gen_docs_names_itself_when_stale_and_fixes_it(tmp_path: Path) -> None:
    check = subprocess.run(
        [str(ROOT / "tools/gen-docs"), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    root = _copy(tmp_path)
    # The venv tools/gen-docs made for this checkout: same lock file, so it is reused.
    (root / ".venv").symlink_to(ROOT / ".venv")
    merge = root / "rules/private/merge.bzl"
    merge.write_text(merge.read_text().replace("Layers two images share", "Layers both share"))
    env = {**os.environ, "PYTHONPATH": ""}
    stale = subprocess.run(
        [str(root / "tools/gen-docs"), "--check"], capture_output=True, text=True, env=env
    )
    assert stale.returncode == 1
    assert stale.stderr.strip().splitlines()[-1] == (
        f"error: {REFERENCE}: not current with rules/*.bzl; run {REGENERATE}"
    )
    write = subprocess.run([str(root / "tools/gen-docs")], capture_output=True, text=True, env=env)
    assert write.returncode == 0, write.stderr
    assert write.stdout.strip() == f"wrote {REFERENCE}"
    assert "Layers both share" in (root / REFERENCE).read_text()
    again = subprocess.run(
        [str(root / "tools/gen-docs"), "--check"], capture_output=True, text=True, env=env
    )
    assert again.returncode == 0, again.stderr
