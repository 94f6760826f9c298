"""Per-store-path layers and grouped layers made by concatenating them."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from strata.errors import UserError
from strata.oci.layer import Ownership, add_entries, write_layer
from strata.store import nar
from strata.store.layer import concat_layers, store_entries, write_store_layer
from strata.store.path import source_path


def make_path(root: Path, name: str, long: bool = False) -> tuple[Path, str]:
    src = root / name
    (src / "bin").mkdir(parents=True)
    (src / "bin" / name).write_text(f"#!/bin/sh\necho {name}\n")
    (src / "bin" / name).chmod(0o755)
    (src / "share" / "empty").mkdir(parents=True)
    (src / "share" / "doc").write_bytes(os.urandom(3000))
    (src / "lib").symlink_to("share")
    if long:
        deep = src / ("d" * 90) / ("e" * 90)
        deep.mkdir(parents=True)
        (deep / "ünïcode-file").write_text("x")
    store_path = str(source_path(nar.digest(src).sha256, name))
    return src, store_path


def members(path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(path) as t:
        return t.getmembers()


def test_store_path_layer_has_store_dir_parents_then_tree(tmp_path: Path) -> None:
    src, sp = make_path(tmp_path, "hello")
    desc = write_store_layer(tmp_path / "l.tar", src, sp, owner=Ownership(uid=7, gid=8))
    ms = members(tmp_path / "l.tar")
    base = sp.lstrip("/")
    assert [m.name for m in ms] == [
        "nix",
        "nix/store",
        base,
        f"{base}/bin",
        f"{base}/bin/hello",
        f"{base}/lib",
        f"{base}/share",
        f"{base}/share/doc",
        f"{base}/share/empty",
    ]
    modes = {m.name: (m.type, m.mode) for m in ms}
    assert modes["nix"] == (tarfile.DIRTYPE, 0o755)
    assert modes[base] == (tarfile.DIRTYPE, 0o555)
    assert modes[f"{base}/bin/hello"] == (tarfile.REGTYPE, 0o555)
    assert modes[f"{base}/share/doc"] == (tarfile.REGTYPE, 0o444)
    assert {(m.uid, m.gid, m.mtime) for m in ms} == {(7, 8, 1)}
    assert ms[5].linkname == "share"
    assert desc.diff_id == "sha256:" + hashlib.sha256((tmp_path / "l.tar").read_bytes()).hexdigest()


def test_custom_store_dir_parents(tmp_path: Path) -> None:
    src, _ = make_path(tmp_path, "x")
    sp = str(source_path(nar.digest(src).sha256, "x", store_dir="/opt/gnu/store"))
    names = [e.name for e in store_entries(src, sp, "/opt/gnu/store")][:4]
    assert names == ["opt", "opt/gnu", "opt/gnu/store", sp.lstrip("/")]


def test_same_store_path_same_layer_bytes(tmp_path: Path) -> None:
    src, sp = make_path(tmp_path / "a", "hello")
    copy = tmp_path / "b"
    shutil.copytree(src, copy, symlinks=True)
    for p in copy.rglob("*"):
        if p.is_file() and not p.is_symlink():
            os.utime(p, (12345, 12345))
    (copy / "share" / "doc").chmod(0o600)  # only the exec bit matters, as in the NAR
    one = write_store_layer(tmp_path / "1.tar", src, sp)
    two = write_store_layer(tmp_path / "2.tar", copy, sp)
    assert (tmp_path / "1.tar").read_bytes() == (tmp_path / "2.tar").read_bytes()
    assert one == two


def test_concatenation_equals_one_sorted_layer(tmp_path: Path) -> None:
    paths = sorted(
        (make_path(tmp_path / "src", n, long=(n == "b")) for n in ["a", "b", "c"]),
        key=lambda t: t[1],
    )
    tars = []
    for i, (src, sp) in enumerate(paths):
        write_store_layer(tmp_path / f"{i}.tar", src, sp)
        tars.append(tmp_path / f"{i}.tar")
    grouped = concat_layers(tmp_path / "group.tar", tars)

    entries = store_entries(*paths[0])
    for src, sp in paths[1:]:
        entries += store_entries(src, sp)[2:]
    direct = write_layer(tmp_path / "direct.tar", "none", lambda t: add_entries(t, entries))
    assert (tmp_path / "group.tar").read_bytes() == (tmp_path / "direct.tar").read_bytes()
    assert grouped == direct
    names = [m.name for m in members(tmp_path / "group.tar")]
    assert names.count("nix") == 1 and names.count("nix/store") == 1
    assert any(n.endswith("ünïcode-file") and len(n) > 200 for n in names)


def test_concatenation_of_compressed_cached_layers(tmp_path: Path) -> None:
    tars = []
    for n in ["p", "q"]:
        src, sp = make_path(tmp_path / "src", n)
        write_store_layer(tmp_path / f"{n}.tar.gz", src, sp, compressor="gzip")
        write_store_layer(tmp_path / f"{n}.tar", src, sp)
        tars.append(n)
    gz = concat_layers(tmp_path / "g.tar", [tmp_path / f"{n}.tar.gz" for n in tars])
    raw = concat_layers(tmp_path / "r.tar", [tmp_path / f"{n}.tar" for n in tars])
    assert gz.diff_id == raw.diff_id
    zipped = concat_layers(tmp_path / "z.tar.zst", [tmp_path / f"{n}.tar" for n in tars], "zstd")
    assert zipped.diff_id == raw.diff_id and zipped.digest != raw.digest


def _three_layers(tmp_path: Path) -> list[Path]:
    tars = []
    for n in ["p", "q", "r"]:
        src, sp = make_path(tmp_path / "src", n)
        (src / "big").write_bytes(os.urandom(3 << 20))  # larger than one copy chunk
        write_store_layer(tmp_path / f"{n}.tar", src, sp)
        tars.append(tmp_path / f"{n}.tar")
    return tars


def test_concatenation_without_kernel_copy_gives_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from strata.oci import spancopy

    tars = _three_layers(tmp_path)
    monkeypatch.setattr(spancopy, "_CHUNK", 1 << 20)
    kernel = concat_layers(tmp_path / "k.tar", tars)

    def refused(*args: object) -> int:
        raise OSError(errno.EXDEV, "cross-device")

    monkeypatch.setattr(os, "copy_file_range", refused)
    copied = concat_layers(tmp_path / "c.tar", tars)
    data = (tmp_path / "k.tar").read_bytes()
    assert data == (tmp_path / "c.tar").read_bytes()
    assert kernel == copied
    assert kernel.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert kernel.size == len(data)


def test_concatenation_of_a_layer_shorter_than_its_headers_is_refused(tmp_path: Path) -> None:
    tars = _three_layers(tmp_path)
    data = tars[1].read_bytes()
    tars[1].write_bytes(data[: len(data) // 2])  # cut inside the big file's data
    with pytest.raises(UserError, match=r"q\.tar: layer to join") as e:
        concat_layers(tmp_path / "g.tar", tars)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "g.tar").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cached_layers_and_their_group_get_descriptors(tmp_path: Path) -> None:
    import json

    from strata.oci.layer import write_descriptor

    outs = []
    for n in ["a", "b"]:
        src, sp = make_path(tmp_path / "src", n)
        blob = tmp_path / f"{n}.tar"
        desc = write_store_layer(blob, src, sp, owner=Ownership(uid=1000))
        write_descriptor(tmp_path / f"{n}.json", desc, blob)
        d = json.loads((tmp_path / f"{n}.json").read_text())
        assert d["compressor"] == "none" and d["size"] == blob.stat().st_size
        assert {m.uid for m in members(blob)} == {1000}
        outs.append(blob)
    group = concat_layers(tmp_path / "g.tar.gz", outs, "gzip")
    write_descriptor(tmp_path / "g.json", group, tmp_path / "g.tar.gz")
    g = json.loads((tmp_path / "g.json").read_text())
    assert g["compressor"] == "gzip" and g["digest"] != g["diff_id"]


def test_a_missing_layer_to_join_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(UserError) as e:
        concat_layers(tmp_path / "o.tar", [tmp_path / "nope.tar"])
    assert str(e.value) == (
        f"{tmp_path}/nope.tar: layer to join cannot be read (got No such file or directory); "
        "list store path layers that exist"
    )
    assert not (tmp_path / "o.tar").exists()
