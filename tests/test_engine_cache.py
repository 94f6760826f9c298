from __future__ import annotations

import hashlib
from pathlib import Path

from strata.engine.cache import ActionResult, OutputFile, OutputTree
from strata.engine.cache_local import LocalDiskCache


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
    assert cache.get_action_result(key) is None
    cache.put_action_result(key, result)
    assert (tmp_path / "c" / "ac" / "ab" / key).is_file()
    assert cache.get_action_result(key) == result


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
    assert not cache.get_blob(sha, dest)
    assert dest.read_bytes() == b"previous"
    assert not entry.exists()
    assert [p.name for p in entry.parent.iterdir()] == []


def test_malformed_action_result_is_a_miss(tmp_path: Path) -> None:
    cache = LocalDiskCache(tmp_path)
    key = "cd" * 32
    (tmp_path / "ac" / "cd").mkdir(parents=True)
    for junk in (b"{not json", b'{"files": [{"path": 1}]}', b"[]"):
        (tmp_path / "ac" / "cd" / key).write_bytes(junk)
        assert cache.get_action_result(key) is None
