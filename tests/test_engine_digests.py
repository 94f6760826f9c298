from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from strata.engine import digests
from strata.engine.digests import StatCache, tree_digest, tree_listing


def test_stat_cache_rehashes_only_changed_content(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"one")
    store = tmp_path / "stat"
    sc = StatCache(store)
    assert sc.digest(f).sha256 == hashlib.sha256(b"one").hexdigest()
    assert sc.hashed == 1
    sc.save()

    sc = StatCache(store)
    assert sc.digest(f).sha256 == hashlib.sha256(b"one").hexdigest()
    assert sc.hashed == 0  # stat unchanged: no read at all

    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert sc.digest(f).sha256 == hashlib.sha256(b"one").hexdigest()
    assert sc.hashed == 0  # touched: xxh3 matched, sha256 reused

    f.write_bytes(b"two")
    d = sc.digest(f)
    assert (d.sha256, d.size, d.executable) == (hashlib.sha256(b"two").hexdigest(), 3, False)
    assert sc.hashed == 1


def test_same_size_same_mtime_different_inode_is_rehashed(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"aaa")
    sc = StatCache()
    sc.digest(f)
    st = f.stat()
    g = tmp_path / "g"
    g.write_bytes(b"bbb")
    os.utime(g, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(g, f)
    assert sc.digest(f).sha256 == hashlib.sha256(b"bbb").hexdigest()


def test_corrupt_store_is_ignored(tmp_path: Path) -> None:
    store = tmp_path / "stat"
    store.write_text("{garbage")
    f = tmp_path / "f"
    f.write_bytes(b"x")
    assert StatCache(store).digest(f).size == 1


def test_tree_digest_covers_names_content_and_mode(tmp_path: Path) -> None:
    t = tmp_path / "t"
    (t / "sub").mkdir(parents=True)
    (t / "sub" / "a").write_bytes(b"a")
    (t / "b").write_bytes(b"b")
    sc = StatCache()
    listing = tree_listing(t, sc)
    assert [e[0] for e in listing] == ["b", "sub/a"]
    d1 = tree_digest(listing)
    (t / "b").chmod(0o755)
    d2 = tree_digest(tree_listing(t, sc))
    os.rename(t / "b", t / "c")
    d3 = tree_digest(tree_listing(t, sc))
    assert len({d1, d2, d3}) == 3


def test_a_file_changed_in_the_same_tick_after_hashing_is_not_trusted(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"one")
    store = tmp_path / "stat"
    sc = StatCache(store)
    assert sc.digest(f).sha256 == hashlib.sha256(b"one").hexdigest()  # hashed just after a change
    sc.save()
    st = f.stat()
    f.write_bytes(b"two")  # same size; and, as within one clock tick, the same mtime
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_mtime_ns == st.st_mtime_ns and f.stat().st_ino == st.st_ino
    assert StatCache(store).digest(f).sha256 == hashlib.sha256(b"two").hexdigest()


def test_an_old_file_is_trusted_by_its_stat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(digests, "RACY_NS", 0)  # as if hashed long after its last change
    f = tmp_path / "f"
    f.write_bytes(b"one")
    store = tmp_path / "stat"
    sc = StatCache(store)
    sc.digest(f)
    sc.save()
    reads: list[object] = []
    monkeypatch.setattr(digests, "xxh3_file", lambda p: reads.append(p) or "0" * 32)
    assert StatCache(store).digest(f).sha256 == hashlib.sha256(b"one").hexdigest()
    assert reads == []  # not even the xxh3 pass


def test_the_store_keeps_loaded_and_new_entries_and_drops_forgotten_ones(tmp_path: Path) -> None:
    a, b, c = (tmp_path / n for n in "abc")
    for p in (a, b, c):
        p.write_bytes(p.name.encode())
    store = tmp_path / "stat"
    sc = StatCache(store)
    sc.digest(a)
    sc.digest(b)
    sc.save()
    sc = StatCache(store)
    sc.forget(a)
    sc.record_output(c, hashlib.sha256(b"c").hexdigest())
    sc.save()
    sc = StatCache(store)
    assert [sc.digest(p).sha256 for p in (a, b, c)] == [
        hashlib.sha256(x).hexdigest() for x in (b"a", b"b", b"c")
    ]
    assert sc.hashed == 1  # a, forgotten; b was loaded, c recorded as written


def _sparse(path: Path, layout: list[tuple[str, int]]) -> bytes:
    """A file of data runs and holes ("data"/"hole", length) in order; returns its bytes."""
    content = bytearray()
    with open(path, "wb") as f:
        for kind, length in layout:
            if kind == "data":
                piece = bytes((len(content) + i) % 251 + 1 for i in range(length))
                f.write(piece)
            else:
                f.seek(length, os.SEEK_CUR)
                piece = bytes(length)
            content += piece
        f.truncate(len(content))
    return bytes(content)


MIB = 1 << 20


@pytest.mark.parametrize(
    "layout",
    [
        [("hole", 3 * MIB), ("data", 5000), ("hole", 2 * MIB + 7), ("data", MIB + 3)],
        [("data", 4096), ("hole", 5 * MIB)],
        [("hole", 2 * MIB)],
        [("data", 10), ("hole", MIB), ("data", 10), ("hole", MIB), ("data", 10)],
    ],
    ids=["holes-between", "trailing-hole", "all-hole", "small-runs"],
)
def test_a_sparse_file_hashes_as_its_bytes_without_reading_its_holes(
    tmp_path: Path, layout: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "sparse.img"
    content = _sparse(path, layout)
    read: list[int] = []
    real = os.preadv

    def counting(fd: int, buffers: list[memoryview], offset: int) -> int:
        n = real(fd, buffers, offset)
        read.append(n)
        return n

    monkeypatch.setattr(digests.os, "preadv", counting)
    x, sha = digests.xxh3_and_sha256_file(path)
    if os.stat(path).st_blocks * 512 < len(content):  # the file system kept the holes
        data = sum(n for kind, n in layout if kind == "data")
        # whole blocks around the data may be read, the megabytes of holes are not
        assert sum(read) <= data + 2 * 4096 * len(layout), (sum(read), data)
    assert sha == hashlib.sha256(content).hexdigest()
    assert x == digests.xxh3_file(path) and digests.sha256_file(path) == sha


def test_where_holes_cannot_be_found_the_file_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "sparse.img"
    content = _sparse(path, [("hole", 2 * MIB), ("data", 100), ("hole", MIB)])

    def refuse(fd: int, offset: int, how: int) -> int:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(digests.os, "lseek", refuse)
    assert digests.sha256_file(path) == hashlib.sha256(content).hexdigest()


def test_a_file_shorter_than_its_stat_is_hashed_as_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file cut while it is hashed: the digest is of the bytes read, no zeros made up."""
    path = tmp_path / "sparse.img"
    content = _sparse(path, [("hole", MIB), ("data", 3 * MIB), ("hole", MIB)])
    real = os.preadv

    def cut(fd: int, buffers: list[memoryview], offset: int) -> int:
        os.truncate(path, MIB + 100)
        return real(fd, buffers, offset)

    monkeypatch.setattr(digests.os, "preadv", cut)
    assert digests.sha256_file(path) == hashlib.sha256(content[: MIB + 100]).hexdigest()
