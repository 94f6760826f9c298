from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from strata.engine.cache import ActionResult, InvalidEntry, OutputFile, OutputTree
from strata.engine.cache_local import LocalDiskCache


def _any(_result: ActionResult) -> None:
    return None


def test_layout_round_trip_and_verification(tmp_path: Path) -> None:
    cache = LocalDiskCache(tmp_path / "c")
    src = tmp_path / "blob"
    src.write_bytes(b"hello")
    sha = hashlib.sha256(b"hello").hexdigest()
    assert not cache.has_blob(sha)
    cache.put_blob(sha, src)
    cache.put_blob(sha, src)  # storing twice is harmless
    assert (tmp_path / "c" / "cas" / sha[:2] / sha).read_bytes() == b"hello"
    assert cache.has_blob(sha)
    dest = tmp_path / "out" / "x"
    assert cache.get_blob(sha, dest) and dest.read_bytes() == b"hello"

    result = ActionResult(
        (OutputFile("bazel-out/a", sha, 5, True),),
        (OutputTree("bazel-out/t", (OutputFile("f", sha, 5, False),)),),
    )
    key = "ab" * 32
    assert cache.get_action_result(key, _any) is None
    cache.put_action_result(key, result)
    assert (tmp_path / "c" / "ac" / "ab" / key).is_file()
    assert cache.get_action_result(key, _any) == result


def test_corrupt_blob_is_a_miss_and_removed(tmp_path: Path) -> None:
    cache = LocalDiskCache(tmp_path)
    src = tmp_path / "blob"
    src.write_bytes(b"good")
    sha = hashlib.sha256(b"good").hexdigest()
    cache.put_blob(sha, src)
    entry = tmp_path / "cas" / sha[:2] / sha
    entry.chmod(0o644)
    entry.write_bytes(b"evil")
    dest = tmp_path / "dest"
    dest.write_bytes(b"previous")
    with pytest.raises(InvalidEntry, match="does not match its sha256"):
        cache.get_blob(sha, dest)
    assert dest.read_bytes() == b"previous"
    assert not entry.exists()
    assert [p.name for p in entry.parent.iterdir()] == []


@pytest.mark.parametrize(
    "junk",
    [
        b"{not json",
        b"{}",
        b"[]",
        b"\xff\xfe\x00garbage",
        b"[" * 100_000,
        b'{"files": [{"path": 1}], "trees": []}',
        b'{"files": 5, "trees": []}',
        b'{"files": [], "trees": [{"path": "t", "files": [], "symlinks": [["a", "b"]]}]}',
        b'{"files": [{"path": "a", "sha256": "0", "size": 1, "executable": "yes"}], "trees": []}',
    ],
)
def test_malformed_action_result_is_an_invalid_entry(tmp_path: Path, junk: bytes) -> None:
    cache = LocalDiskCache(tmp_path)
    key = "cd" * 32
    (tmp_path / "ac" / "cd").mkdir(parents=True)
    (tmp_path / "ac" / "cd" / key).write_bytes(junk)
    with pytest.raises(InvalidEntry, match="entry is not an action result") as err:
        cache.get_action_result(key, _any)
    assert err.value.cache == f"disk cache {tmp_path}"


def test_result_the_check_rejects_is_an_invalid_entry(tmp_path: Path) -> None:
    cache = LocalDiskCache(tmp_path)
    cache.put_action_result("ef" * 32, ActionResult(()))
    with pytest.raises(InvalidEntry, match="^disk cache .*: nope$"):
        cache.get_action_result("ef" * 32, lambda _r: "nope")
    assert cache.get_action_result("00" * 32, lambda _r: "nope") is None  # a plain miss


def test_blobs_share_the_outputs_bytes_and_an_edited_output_is_caught(tmp_path: Path) -> None:
    """A blob is a hard link to its output and a hit links the blob: the bytes exist once.

    Editing an output in place (root ignores its read-only mode) therefore changes
    the blob too; verification on read turns that into a miss, never a wrong hit.
    """
    import os

    cache = LocalDiskCache(tmp_path / "c")
    out = tmp_path / "out"
    out.write_bytes(b"layer bytes")
    sha = hashlib.sha256(b"layer bytes").hexdigest()
    cache.put_blob(sha, out)
    blob = tmp_path / "c" / "cas" / sha[:2] / sha
    assert os.stat(blob).st_ino == os.stat(out).st_ino
    hit = tmp_path / "again" / "out"
    assert cache.get_blob(sha, hit)
    assert os.stat(hit).st_ino == os.stat(blob).st_ino and os.stat(blob).st_nlink == 3
    assert not list((tmp_path / "c" / "cas" / sha[:2]).glob(".*")), "no temp files left"
    out.write_bytes(b"edited bytes")
    with pytest.raises(InvalidEntry, match="does not match its sha256"):
        cache.get_blob(sha, tmp_path / "third")
    assert not cache.has_blob(sha) and not (tmp_path / "third").exists()
