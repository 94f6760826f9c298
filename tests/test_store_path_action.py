"""The StorePath action hashes and layers a path straight from its sources.

Its outputs must equal, byte for byte, what laying the content out on disk
and then hashing and layering that tree gives (the library's `describe` and
`write_store_layer`, checked against real `nix-store` in test_store_path):
the name, NAR hash, info and layer are a function of the content only.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from strata.actions import lookup
from strata.actions.request import plan_tree
from strata.errors import UserError
from strata.oci.tree import BYTES, DIR, FILE, SYMLINK
from strata.store.layer import write_store_layer
from strata.store.references import describe


def _sources(root: Path) -> Path:
    src = root / "src"
    (src / "bin").mkdir(parents=True)
    (src / "bin" / "tool").write_bytes(b"#!/bin/sh\necho hi\n")
    (src / "bin" / "tool").chmod(0o755)
    (src / "lib" / "sub").mkdir(parents=True)
    (src / "lib" / "sub" / "ünïcode").write_bytes(os.urandom(3 << 20))
    (src / "lib" / "a.so").write_bytes(b"")
    (src / "lib" / ("n" * 200)).write_bytes(b"long name")
    (src / "empty").mkdir()
    return src


def _contents(src: Path) -> list[dict[str, str]]:
    return [
        {"dest": "bin/tool", "mode": "0755", "src": str(src / "bin" / "tool")},
        {"dest": "lib", "src": str(src / "lib")},
        {"dest": "share/empty", "type": "dir"},
        {"dest": "etc/motd", "type": "file", "content": "welcome\n"},
        {"dest": "lib64", "target": "lib", "type": "symlink"},
        {"dest": "share/doc", "target": "../lib/sub", "type": "symlink"},
        {"dest": "bin/dangling", "target": "/nonexistent", "type": "symlink"},
    ]


def _lay_out(contents: list[dict[str, str]], dest: Path, where: str) -> None:
    """The content on disk, as the StorePath action used to write it."""
    for e in plan_tree({"contents": contents}, where).entries():
        p = dest / e.name
        if e.kind == DIR:
            p.mkdir(parents=True, exist_ok=True)
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        if e.kind == SYMLINK:
            os.symlink(e.target, p)
            continue
        if e.kind == FILE:
            shutil.copyfile(e.source, p)
        elif e.kind == BYTES:
            p.write_bytes(e.data)
        os.chmod(p, 0o755 if e.mode & 0o111 else 0o644)


def _run(tmp_path: Path, tag: str, contents: list[dict[str, str]], refs: list[str]) -> Path:
    out = tmp_path / tag
    out.mkdir()
    req = {
        "schema_version": 1,
        "name": "thing-1.0",
        "contents": contents,
        "references": refs,
        "outputs": {
            "info": str(out / "info.json"),
            "layer": str(out / "layer.tar"),
            "descriptor": str(out / "layer.json"),
        },
    }
    lookup("StorePath")(req, "req.json")
    return out


def test_outputs_equal_the_laid_out_tree(tmp_path: Path) -> None:
    src = _sources(tmp_path)
    dep = _run(tmp_path, "dep", [{"dest": "x", "type": "file", "content": "dep"}], [])
    dep_path = json.loads((dep / "info.json").read_bytes())["path"]
    contents = [*_contents(src), {"dest": "bin/ref", "target": dep_path, "type": "symlink"}]
    out = _run(tmp_path, "new", contents, [str(dep / "info.json")])
    info = json.loads((out / "info.json").read_bytes())

    tree = tmp_path / "tree"
    tree.mkdir()
    _lay_out(contents, tree, "test")
    old = describe(tree, "thing-1.0", references=[dep_path])
    assert info["path"] == old.info.path
    assert (info["narHash"], info["narSize"]) == (old.info.nar_hash, old.info.nar_size)
    assert info["references"] == [dep_path]
    write_store_layer(tmp_path / "old.tar", tree, old.info.path)
    assert (out / "layer.tar").read_bytes() == (tmp_path / "old.tar").read_bytes()
    assert not (out / "tree").exists()  # nothing but the declared outputs is written


def test_single_file_path_equals_the_laid_out_file(tmp_path: Path) -> None:
    f = tmp_path / "script"
    f.write_bytes(b"#!/bin/sh\n")
    f.chmod(0o755)
    out = _run(tmp_path, "one", [{"dest": "", "src": str(f)}], [])
    info = json.loads((out / "info.json").read_bytes())
    old = describe(f, "thing-1.0")
    assert info["path"] == old.info.path and info["narHash"] == old.info.nar_hash
    write_store_layer(tmp_path / "old.tar", f, old.info.path)
    assert (out / "layer.tar").read_bytes() == (tmp_path / "old.tar").read_bytes()


def test_undeclared_reference_is_still_an_error(tmp_path: Path) -> None:
    dep = _run(tmp_path, "dep", [{"dest": "x", "type": "file", "content": "dep"}], [])
    dep_path = json.loads((dep / "info.json").read_bytes())["path"]
    other = _run(
        tmp_path,
        "mid",
        [{"dest": "y", "type": "file", "content": dep_path}],
        [str(dep / "info.json")],
    )
    mid_path = json.loads((other / "info.json").read_bytes())["path"]
    with pytest.raises(UserError, match="does not declare it as a reference"):
        _run(
            tmp_path,
            "bad",
            [{"dest": "z", "type": "file", "content": f"{mid_path} {dep_path}"}],
            [str(other / "info.json")],
        )
