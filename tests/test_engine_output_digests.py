"""Output digests the engine is told (by the worker child, by inode) or reads, and source
digests taken ahead on threads."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import xxhash

from strata.engine.digests import StatCache
from strata.engine.execution.output_digests import OutputDigests, Pending
from strata.engine.execution.source_digests import SourceDigests
from strata.engine.execution.workers import Channel, ReportedDigest
from strata.worker import report_digests

PYTHON_DIR = Path(__file__).resolve().parent.parent / "python"


def _true(data: bytes) -> tuple[str, str]:
    return xxhash.xxh3_128(data).hexdigest(), hashlib.sha256(data).hexdigest()


def _nothing(path: str) -> None:
    return None


def test_a_link_to_an_output_an_earlier_build_left_is_looked_up_only_when_needed(
    tmp_path: Path,
) -> None:
    """A cache hit or up-to-date action's outputs are learnt from the stat cache, lazily."""
    blob = tmp_path / "layer.tar"
    blob.write_bytes(b"layer")
    looked_up: list[str] = []

    def recall(path: str) -> tuple[os.stat_result, str, str] | None:
        looked_up.append(path)
        return (os.stat(path), "x" * 32, "s" * 64) if path == str(blob) else None

    digests = OutputDigests(threads=1, recall=recall)
    digests.defer(lambda: [str(blob), str(tmp_path / "gone")])
    lone = tmp_path / "lone"
    lone.write_bytes(b"alone")  # one link: nothing deferred can vouch for it
    assert digests.digest([Pending(str(lone), lone.stat())]) == [_true(b"alone")]
    assert looked_up == []
    link = tmp_path / "group" / "layer-000.tar"
    link.parent.mkdir()
    os.link(blob, link)
    assert digests.digest([Pending(str(link), link.stat())]) == [("x" * 32, "s" * 64)]
    assert looked_up == [str(blob), str(tmp_path / "gone")]
    assert digests.read == 1  # "lone" alone


def test_a_hard_link_to_a_known_output_is_not_read(tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"layer")
    digests = OutputDigests(threads=2, recall=_nothing)
    # Digests nobody could compute from the bytes: if they come back, nothing was read.
    digests.learn(blob.stat(), "x" * 32, "s" * 64)
    os.link(blob, tmp_path / "oci-blob")
    link = tmp_path / "oci-blob"
    assert digests.digest([Pending(str(link), link.stat())]) == [("x" * 32, "s" * 64)]
    assert digests.read == 0
    # Once the file changed (new mtime), the inode's digests no longer hold.
    os.utime(link, ns=(1, 1))
    assert digests.digest([Pending(str(link), link.stat())]) == [_true(b"layer")]
    assert digests.read == 1


def test_a_report_is_believed_only_for_the_stat_it_was_taken_at(tmp_path: Path) -> None:
    f = tmp_path / "out"
    f.write_bytes(b"fresh")
    st = f.stat()
    told = ReportedDigest(st.st_size, st.st_mtime_ns, st.st_ino, "x" * 32, "s" * 64)
    digests = OutputDigests(threads=1, recall=_nothing)
    assert digests.digest([Pending(str(f), st, told)]) == [("x" * 32, "s" * 64)]
    f.write_bytes(b"changed")  # same inode, new size and mtime: the report is stale
    assert digests.digest([Pending(str(f), f.stat(), told)]) == [_true(b"changed")]
    assert digests.read == 1


def test_many_files_are_hashed_on_threads_in_order(tmp_path: Path) -> None:
    files = []
    for i in range(20):
        p = tmp_path / f"f{i}"
        p.write_bytes(os.urandom(1000) * (i + 1))
        files.append(p)
    digests = OutputDigests(threads=4, recall=_nothing)
    try:
        got = digests.digest([Pending(str(p), p.stat()) for p in files])
    finally:
        digests.close()
    assert got == [_true(p.read_bytes()) for p in files]
    assert digests.read == 20


def test_the_child_reports_files_it_wrote_and_leaves_links_to_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("out").mkdir()
    Path("out/a.tar").write_bytes(b"a")
    Path("out/tree/sub").mkdir(parents=True)
    Path("out/tree/sub/b").write_bytes(b"b")
    Path("out/tree/lnk").symlink_to("sub/b")
    os.link("out/a.tar", "out/tree/shared")  # two links: the engine knows it by inode
    report = tmp_path / "report"
    with open(report, "wb") as f:
        report_digests(["out/a.tar", "out/missing"], ["out/tree"], f.fileno())
    files = json.loads(report.read_bytes())["files"]
    assert sorted(files) == ["out/tree/sub/b"]
    size, _mtime, ino, xxh3, sha = files["out/tree/sub/b"]
    assert (size, ino, xxh3, sha) == (1, os.stat("out/tree/sub/b").st_ino, *_true(b"b"))
    os.unlink("out/tree/shared")
    with open(report, "wb") as f:
        report_digests(["out/a.tar"], [], f.fileno())
    assert json.loads(report.read_bytes())["files"]["out/a.tar"][3:] == list(_true(b"a"))


def test_a_channel_is_emptied_for_each_use_and_keeps_the_tail(tmp_path: Path) -> None:
    channel = Channel(tmp_path)
    out, err, rep = channel.fds()
    os.write(out, b"x" * 100_000)
    os.write(err, b"oops\n")
    os.write(rep, b'{"files": {"o": [1, 2, 3, "x", "s"]}}')
    text = channel.output()
    assert text.startswith("...(truncated)...\n") and text.endswith("x" * 10 + "oops\n")
    assert len(text) == len("...(truncated)...\n") + 64 * 1024 + len("oops\n")
    assert channel.digests() == {"o": ReportedDigest(1, 2, 3, "x", "s")}
    channel.reset()
    assert channel.output() == "" and channel.digests() == {}
    os.write(out, b"again")
    assert channel.output() == "again"
    channel.close()
    assert list(tmp_path.iterdir()) == []  # unnamed files: nothing to clean up


def test_a_worker_of_another_protocol_refuses_in_one_line(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "strata", "worker"],
        env={"PYTHONPATH": str(PYTHON_DIR), "PATH": "/bin:/usr/bin"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 2
    assert res.stderr == (
        "error: strata worker: the engine speaks worker protocol 1, this strata speaks 2; "
        "use the same strata version for the engine and the @strata repository\n"
    )


def test_sources_are_digested_once_ahead_and_missing_ones_say_so(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    for i in range(30):
        (tmp_path / "pkg" / f"f{i}").write_bytes(b"%d" % i * 5000)
    stat_cache = StatCache()
    ahead = SourceDigests(stat_cache, lambda p: tmp_path / p, threads=3)
    try:
        ahead.submit([0], [f"pkg/f{i}" for i in range(10)])
        ahead.submit([1], [f"pkg/f{i}" for i in range(10, 20)])
        first = {**ahead.take(1), **ahead.take(0)}
        # a directory source lists files already digested: the stat cache has them
        ahead.submit([2, 4], [f"pkg/f{i}" for i in range(20, 30)] + ["pkg/gone", "pkg"])
        second = ahead.take(4)
        taken_again = ahead.take(2)  # one task for both: its digests are handed over once
    finally:
        ahead.close()
    assert taken_again == {}
    assert ahead.take(3) == {}
    want = {f"pkg/f{i}": hashlib.sha256(b"%d" % i * 5000).hexdigest() for i in range(30)}
    assert {**first, **{k: v for k, v in second.items() if k.startswith("pkg/f")}} == want
    assert second["pkg/gone"] is None
    assert second["pkg"] is not None and len(second["pkg"]) == 64  # a source directory
    assert stat_cache.hashed == 30  # each file read once, the directory's from the cache
