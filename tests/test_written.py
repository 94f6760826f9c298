"""strata.written: digests noted while writing are believed only for the unchanged file."""

from __future__ import annotations

import os
from pathlib import Path

from strata import written
from strata.engine.digests import xxh3_and_sha256_file
from strata.oci.layer import Ownership, write_layer_from_entries
from strata.oci.tree import FILE, Entry
from strata.store.layer import concat_layers


def _layer(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    src = path.parent / "src.txt"
    src.write_bytes(b"hello\n" * 1000)
    entry = Entry("hello.txt", FILE, 0o444, size=src.stat().st_size, source=str(src))
    write_layer_from_entries(path, "none", [entry], Ownership())
    return path


def test_a_note_follows_the_file_through_a_rename(tmp_path: Path) -> None:
    layer = _layer(tmp_path / "a" / "l.tar")
    want = xxh3_and_sha256_file(layer)
    assert written.recall(layer.stat()) == want
    os.rename(tmp_path / "a", tmp_path / "b")  # as an output directory is put in place
    assert written.recall((tmp_path / "b" / "l.tar").stat()) == want


def test_a_file_changed_after_its_note_is_not_believed(tmp_path: Path) -> None:
    layer = _layer(tmp_path / "l.tar")
    with layer.open("r+b") as f:
        f.seek(0, os.SEEK_END)
        f.write(bytes(512))
    assert written.recall(layer.stat()) is None
    other = tmp_path / "other"
    other.write_bytes(b"x")
    assert written.recall(other.stat()) is None


def test_a_joined_layer_is_noted_as_written(tmp_path: Path) -> None:
    parts = [_layer(tmp_path / f"p{i}" / "l.tar") for i in range(2)]
    joined = tmp_path / "joined.tar"
    concat_layers(joined, parts)
    assert written.recall(joined.stat()) == xxh3_and_sha256_file(joined)
