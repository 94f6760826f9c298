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
