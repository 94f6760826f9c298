from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path

import pytest

from strata.cli import main
from strata.oci.layer import LayerDescriptor, Ownership, write_layer, write_layer_from_entries
from strata.oci.tree import LayerTree


def make_fixture_tree(root: Path) -> Path:
    """A fixed tree whose layer digests are pinned below; modes are set, not inherited."""
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "hello").write_bytes(b"#!/bin/sh\necho hello\n")
    (root / "bin" / "sh").symlink_to("hello")
    (root / "share" / "doc").mkdir(parents=True)
    (root / "share" / "doc" / "README").write_bytes(b"strata fixture\n" * 100)
    (root / "share" / "ünï").write_bytes(b"non-ascii name\n")
    for p, mode in [
        ("bin", 0o755),
        ("bin/hello", 0o755),
        ("share", 0o755),
        ("share/doc", 0o755),
        ("share/doc/README", 0o644),
        ("share/ünï", 0o444),
    ]:
        os.chmod(root / p, mode)
    return root


GOLDEN = {
    "none": (
        "sha256:8113e5ef668a45d4025468d209c584ae79a9e9525696d2c9a56432d37015dfaa",
        "sha256:8113e5ef668a45d4025468d209c584ae79a9e9525696d2c9a56432d37015dfaa",
    ),
    "gzip": (
        "sha256:8113e5ef668a45d4025468d209c584ae79a9e9525696d2c9a56432d37015dfaa",
        "sha256:296ff7335eeb31bb16fcb17584abb8bc4f681c76ffda94b53dc4eb41e13af8d9",
    ),
    "zstd": (
        "sha256:8113e5ef668a45d4025468d209c584ae79a9e9525696d2c9a56432d37015dfaa",
        "sha256:4677bf2809771aa0b17a358934febba2eb8e87999da630311f58fdd806aea3d2",
    ),
}


def _layer(root: Path, out: Path, compressor: str) -> LayerDescriptor:
    tree = LayerTree()
    tree.add_path(root, "opt/app")
    return write_layer_from_entries(out, compressor, tree.entries())


@pytest.mark.parametrize("compressor", ["none", "gzip", "zstd"])
def test_golden_digests(tmp_path: Path, compressor: str) -> None:
    root = make_fixture_tree(tmp_path / "src")
    out = tmp_path / "layer.blob"
    desc = _layer(root, out, compressor)
    blob = out.read_bytes()
    assert desc.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert desc.size == len(blob)
    assert (desc.diff_id, desc.digest) == GOLDEN[compressor]


def test_same_layer_from_two_directories(tmp_path: Path) -> None:
    a = _layer(make_fixture_tree(tmp_path / "one" / "src"), tmp_path / "a", "gzip")
    b = _layer(make_fixture_tree(tmp_path / "two" / "deeper" / "src"), tmp_path / "b", "gzip")
    assert a == b
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_layer_content_and_ownership(tmp_path: Path) -> None:
    root = make_fixture_tree(tmp_path / "src")
    tree = LayerTree()
    tree.add_path(root, "opt/app")
    desc = write_layer_from_entries(
        tmp_path / "l.tar",
        "none",
        tree.entries(),
        Ownership(uid=7, gid=8, uname="u", gname="g", mtime=99),
    )
    assert desc.digest == desc.diff_id and desc.size == desc.uncompressed_size
    with tarfile.open(tmp_path / "l.tar") as t:
        members = t.getmembers()
    assert [m.name for m in members][:4] == ["opt", "opt/app", "opt/app/bin", "opt/app/bin/hello"]
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(7, 8, "u", "g", 99)}


def test_failed_fill_leaves_no_blob(tmp_path: Path) -> None:
    def fill(tar: object) -> None:
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_layer(tmp_path / "x.tar.gz", "gzip", fill)  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == []


def _request(tmp_path: Path, **extra: object) -> Path:
    req = {
        "schema_version": 1,
        "compressor": "gzip",
        "output": str(tmp_path / "out" / "layer.tar.gz"),
        "descriptor": str(tmp_path / "out" / "layer.json"),
        "files": [],
        **extra,
    }
    path = tmp_path / "req.json"
    path.write_text(json.dumps(req, sort_keys=True))
    return path


def test_layer_action(tmp_path: Path) -> None:
    root = make_fixture_tree(tmp_path / "src")
    req = _request(
        tmp_path,
        files=[
            {"src": str(root / "bin" / "hello"), "dest": "/bin/hello"},
            {"dest": "/tmp", "type": "dir", "mode": "1777"},
            {"dest": "/bin/sh", "type": "symlink", "target": "hello"},
            {"dest": "/etc/motd", "type": "file", "content": "hi\n", "mode": "0600"},
        ],
        uid=1,
    )
    assert main(["action", "CustomizationLayer", f"@{req}"]) == 0
    desc = json.loads((tmp_path / "out" / "layer.json").read_text())
    assert desc["media_type"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert (tmp_path / "out" / "layer.json").read_text() == json.dumps(
        desc, sort_keys=True, separators=(",", ":")
    )
    with tarfile.open(tmp_path / "out" / "layer.tar.gz") as t:
        got = {m.name: (m.type, oct(m.mode), m.uid) for m in t.getmembers()}
    assert got == {
        "bin": (tarfile.DIRTYPE, "0o755", 1),
        "bin/hello": (tarfile.REGTYPE, "0o755", 1),
        "bin/sh": (tarfile.SYMTYPE, "0o777", 1),
        "etc": (tarfile.DIRTYPE, "0o755", 1),
        "etc/motd": (tarfile.REGTYPE, "0o600", 1),
        "tmp": (tarfile.DIRTYPE, "0o1777", 1),
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"compressor": "lzma"}, "unknown compressor (got 'lzma'); use one of: none, gzip, zstd"),
        (
            {"files": [{"src": "/dev/null", "dest": "x"}]},
            "/dev/null: a character device cannot be put in an image layer",
        ),
        (
            {"files": [{"dest": "x", "type": "dir", "mode": 755}]},
            'contents[0]: mode must be an octal string like "0755" (got 755)',
        ),
        (
            {"files": [{"dest": "x", "type": "blob"}]},
            "contents[0]: unknown content type (got 'blob')",
        ),
        (
            {"files": [{"src": "/nonexistent/x", "dest": "x"}]},
            "/nonexistent/x: source does not exist",
        ),
    ],
)
def test_bad_layer_requests_fail_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: dict[str, object], message: str
) -> None:
    req = _request(tmp_path, **extra)
    assert main(["action", "CustomizationLayer", f"@{req}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


def test_a_descriptor_that_cannot_be_written_takes_its_blob_with_it(tmp_path: Path) -> None:
    from strata.oci.layer import write_descriptor

    blob = tmp_path / "layer.tar"
    desc = write_layer_from_entries(blob, "none", [])
    (tmp_path / "not-a-dir").write_text("x")
    with pytest.raises(OSError):
        write_descriptor(tmp_path / "not-a-dir" / "layer.json", desc, blob)
    assert not blob.exists()
