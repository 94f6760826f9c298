"""strata.store.layer_writer: the layer written in the NAR's pass is the layer of the named path.

The reference is the layer written after naming, from the same planned
entries (`planned_store_entries` with the real name, as StorePath did with
two reads of every source): same bytes, same descriptor, same NAR facts,
on generated store paths (long and non-ASCII names, empty and multi-MiB
files, links, empty directories, one-file paths) and store directories long
enough to push the hash across the ustar name field's end.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import storegen
from strata import written
from strata.engine.digests import xxh3_and_sha256_file
from strata.errors import UserError
from strata.oci.layer import Ownership, write_layer_from_entries
from strata.oci.tree import Entry
from strata.store.layer import planned_store_entries
from strata.store.layer_writer import StoreLayerWriter
from strata.store.nar import dump_entries
from strata.store.references import describe_nar


def _planned(root: Path) -> list[Entry]:
    return storegen.planned(root)


def _chunks(planned: list[Entry], contents: object = None) -> object:
    return storegen.nar_chunks(planned, contents)


def _both(
    planned: list[Entry], name: str, store_dir: str, compressor: str, tmp: Path
) -> tuple[tuple[bytes, object, object], tuple[bytes, object, object]]:
    owner = Ownership(uid=7, gname="g")
    before = describe_nar(_chunks(planned), name, store_dir=store_dir)  # type: ignore[arg-type]
    entries = planned_store_entries(planned, before.info.path, store_dir)
    old = write_layer_from_entries(tmp / "old.tar", compressor, entries, owner)
    with StoreLayerWriter(tmp / "new.tar", planned, name, store_dir, compressor, owner) as w:
        after = describe_nar(_chunks(planned, w.contents), name, store_dir=store_dir)  # type: ignore[arg-type]
        new = w.finish(after.info.path)
    assert sorted(os.listdir(tmp)) == ["new.tar", "old.tar"]  # no temporary file left
    for written_path in (tmp / "old.tar", tmp / "new.tar"):  # the digests noted while writing
        assert written.recall(written_path.stat()) == xxh3_and_sha256_file(written_path)
    return (
        ((tmp / "old.tar").read_bytes(), old, before.info),
        ((tmp / "new.tar").read_bytes(), new, after.info),
    )


@pytest.mark.parametrize("compressor", ["none", "gzip"])
def test_same_layer_as_written_after_naming(compressor: str, tmp_path: Path) -> None:
    paths = [p for s in storegen.generate(7, 40, dangling=True, big=2) for p in s.paths]
    seen: set[str] = set()
    store_dirs = ["/nix/store", "/" + "d" * 60 + "/store", "/" + "é" * 20 + "/s"]
    for i, p in enumerate(paths):
        if p.name in seen:
            continue
        seen.add(p.name)
        spec = storegen.SetSpec("t", (p,))
        (root,) = storegen.write_store(spec, tmp_path / f"src{i}")
        store_dir = store_dirs[i % len(store_dirs)]
        name = ("long-" * 12 + "x") if i % 5 == 0 else p.name
        out = tmp_path / f"out{i}"
        out.mkdir()
        old, new = _both(_planned(Path(root)), name, store_dir, compressor, out)
        assert new == old, (p.name, store_dir)
    assert len(seen) > 20


def test_a_one_file_store_path(tmp_path: Path) -> None:
    f = tmp_path / "hello"
    f.write_bytes(b"#!/bin/sh\necho hi\n" * 1000)
    out = tmp_path / "out"
    out.mkdir()
    old, new = _both(_planned(f), "hello", "/nix/store", "none", out)
    assert new == old


def test_a_file_changing_size_leaves_no_layer(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"12345")
    planned = _planned(src)
    (src / "a").write_bytes(b"123456")  # after planning, before reading
    out = tmp_path / "out"
    with (
        pytest.raises(UserError, match="file changed size while being read"),
        StoreLayerWriter(out / "l.tar", planned, "x", "/nix/store") as w,
    ):
        describe_nar(dump_entries(planned, contents=w.contents), "x")
        w.finish("/nix/store/" + "1" * 32 + "-x")
    assert os.listdir(out) == []


def test_the_layer_holds_the_named_path(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "bin").mkdir(parents=True)
    (src / "bin" / "tool").write_text("tool\n")
    planned = _planned(src)
    with StoreLayerWriter(tmp_path / "l.tar", planned, "tool-1.0") as w:
        d = describe_nar(dump_entries(planned, contents=w.contents), "tool-1.0")
        desc = w.finish(d.info.path)
    data = (tmp_path / "l.tar").read_bytes()
    assert d.info.path.encode().lstrip(b"/") + b"/bin/tool" in data
    assert b"0" * 32 not in data
    assert json.dumps(desc.to_json())  # a descriptor like any layer's
    assert desc.size == len(data) and desc.digest == desc.diff_id
