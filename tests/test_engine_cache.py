from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from strata import written
from strata.engine.cache import ActionResult, InvalidEntry, OutputFile, OutputTree
from strata.engine.cache import local as cache_local
from strata.engine.cache.local import LocalDiskCache
from strata.engine.digests import xxh3_file


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


# -- what others may leave in a shared cache (found by tests/test_bad_inputs_cache.py) ------


def _stored(tmp_path: Path, data: bytes) -> tuple[LocalDiskCache, str, Path]:
    cache = LocalDiskCache(tmp_path / "c")
    (tmp_path / "src").write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    cache.put_blob(sha, tmp_path / "src")
    return cache, sha, tmp_path / "c" / "cas" / sha[:2] / sha


def test_a_blob_that_is_a_link_is_refused_and_nothing_is_changed_through_it(
    tmp_path: Path,
) -> None:
    # A link to a host file with the right bytes was linked in as the output, and the
    # output's chmod then changed the host file's mode.
    cache, sha, blob = _stored(tmp_path, b"host bytes")
    host = tmp_path / "host"
    host.write_bytes(b"host bytes")
    host.chmod(0o640)
    blob.unlink()
    blob.symlink_to(host)
    with pytest.raises(InvalidEntry, match=f"blob {sha} is not a regular file"):
        cache.get_blob(sha, tmp_path / "out")
    assert not blob.is_symlink() and not (tmp_path / "out").exists()
    assert host.stat().st_mode & 0o777 == 0o640 and host.stat().st_nlink == 1


def test_a_link_in_place_of_a_cache_directory_is_never_written_through(tmp_path: Path) -> None:
    cache, sha, blob = _stored(tmp_path, b"bytes")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(blob.parent)
    blob.parent.symlink_to(elsewhere)
    with pytest.raises(InvalidEntry, match="is not a directory"):
        cache.get_blob(sha, tmp_path / "out")
    cache.put_blob(sha, tmp_path / "src")
    cache.put_action_result(sha, ActionResult(()))
    assert list(elsewhere.iterdir()) == []
    assert blob.read_bytes() == b"bytes" and not blob.parent.is_symlink()


def test_an_action_result_that_is_a_directory_is_invalid_and_replaced(tmp_path: Path) -> None:
    # Writing the fresh result over it was an IsADirectoryError traceback.
    cache = LocalDiskCache(tmp_path / "c")
    key = "cd" * 32
    (tmp_path / "c" / "ac" / "cd" / key).mkdir(parents=True)
    with pytest.raises(InvalidEntry, match="is not a regular file"):
        cache.get_action_result(key, _any)
    cache.put_action_result(key, ActionResult(()))
    assert cache.get_action_result(key, _any) == ActionResult(())


def test_a_missing_blob_is_invalid_but_a_tiered_cache_may_fetch_it(tmp_path: Path) -> None:
    cache, sha, blob = _stored(tmp_path, b"bytes")
    blob.unlink()
    assert not cache.fetch_blob(sha, tmp_path / "out")
    with pytest.raises(InvalidEntry, match=f"blob {sha} is missing"):
        cache.get_blob(sha, tmp_path / "out")


def test_a_blob_verified_as_it_was_downloaded_is_not_hashed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, sha, blob = _stored(tmp_path, b"downloaded and checked\n")
    # what a download from a remote cache notes once the blob's sha256 matched
    written.note(blob, xxh3_file(blob), sha)
    hashed: list[Path] = []
    real = cache_local.sha256_file

    def counting(path: Path) -> str:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(cache_local, "sha256_file", counting)
    assert cache.fetch_blob(sha, tmp_path / "out1")
    assert hashed == []
    # changed after it was checked: hashed, caught, removed
    os.chmod(blob, 0o644)
    blob.write_bytes(b"changed after the check\n")
    with pytest.raises(InvalidEntry):
        cache.fetch_blob(sha, tmp_path / "out2")
    assert len(hashed) == 1
    assert not blob.exists()


def test_fetching_a_blob_onto_a_link_of_itself_leaves_no_temporary(tmp_path: Path) -> None:
    """rename() of one link of a file onto another link of it does nothing: the temporary
    name must still go, or it stays in the output (e.g. an OCI layout's blobs/)."""
    cache = LocalDiskCache(tmp_path / "c")
    src = tmp_path / "src"
    src.write_bytes(b"layer bytes")
    sha = hashlib.sha256(b"layer bytes").hexdigest()
    cache.put_blob(sha, src)
    out = tmp_path / "out"
    out.mkdir()
    assert cache.get_blob(sha, out / "blob")
    assert cache.get_blob(sha, out / "blob")  # again, onto the link it made
    assert sorted(p.name for p in out.iterdir()) == ["blob"]
    assert (out / "blob").read_bytes() == b"layer bytes"
