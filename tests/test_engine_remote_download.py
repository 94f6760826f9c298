"""Outputs of remote hits stay on the server until needed (`--remote_download_outputs`).

A fresh output base building through a warm cache downloads the outputs it was
asked for and those an action that runs here reads; nothing else. A no-op
after it asks the server nothing; a blob the server lost by the time it is
needed makes its action run here. `all` downloads everything, `minimal` not
even what was asked for.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from cache_server import CacheServer, cache_url, serving, sha_hex
from enginekit import BIN, sh
from strata.engine.action import Action
from strata.engine.build import ExecutionConfig, execute
from strata.engine.cache.http import RemoteOptions
from strata.engine.execution.report import BuildStats, Reporter
from strata.engine.execution.scheduler import BuildOptions
from strata.engine.outputbase import OutputBase

F, TREE, USE, MORE = (f"{BIN}/pkg/{n}" for n in ("f", "tree", "use", "more"))
F_BLOB = "/team/cas/" + sha_hex(b"ALPHA\n")
USE_BLOB = "/team/cas/" + sha_hex(b"ALPHA\ny\n")
Y_BLOB = "/team/cas/" + sha_hex(b"y\n")
"""The blobs of f, use and the tree's one file (the lookups read the tree's listing, a
blob of its own)."""


@pytest.fixture
def server() -> Iterator[CacheServer]:
    with serving() as srv:
        yield srv


def _actions(more: bool = False) -> list[Action]:
    actions = [
        sh("//pkg:f", f"tr a-z A-Z < pkg/a.txt > {F}", ["pkg/a.txt"], [F]),
        sh("//pkg:tree", f"mkdir -p {TREE} && echo y > {TREE}/y", [], [], output_dirs=(TREE,)),
        sh("//pkg:use", f"cat {F} {TREE}/y > {USE}", [F, TREE], [USE]),
    ]
    if more:  # an action the cache has never seen, reading f alone
        actions.append(sh("//pkg:more", f"cat {F} {F} > {MORE}", [F], [MORE]))
    return actions


def _build(
    tmp: Path, name: str, url: str, wanted: list[str], mode: str = "toplevel", more: bool = False
) -> tuple[BuildStats, str, Path]:
    ws = tmp / "ws"
    (ws / "pkg").mkdir(parents=True, exist_ok=True)
    (ws / "WORKSPACE").write_text("")
    (ws / "pkg" / "a.txt").write_text("alpha\n")
    stream = io.StringIO()
    base = OutputBase(tmp / name, ws)
    config = ExecutionConfig(
        BuildOptions(jobs=2, download_outputs=mode),
        disk_cache=tmp / f"{name}-disk",
        remote=RemoteOptions(url=url, download_outputs=mode),
    )
    stats = execute(base, _actions(more), wanted, config, Reporter(stream, tty=False))
    return stats, stream.getvalue(), base.execroot


def _blobs_read(server: CacheServer, since: int) -> list[str]:
    """Which of the outputs' blobs were downloaded since log entry `since`."""
    files = (F_BLOB, USE_BLOB, Y_BLOB)
    return [p for m, p, _h, _b in server.log[since:] if m == "GET" and p in files]


def test_only_what_is_asked_for_or_read_here_comes_down(
    server: CacheServer, tmp_path: Path
) -> None:
    url = cache_url(server)
    _build(tmp_path, "team-a", url, [F, TREE, USE])  # fills the cache

    # Team B asks for `use` only: its blob comes down, f's and the tree's stay remote.
    start = len(server.log)
    stats, _, root = _build(tmp_path, "team-b", url, [USE])
    assert (stats.executed, stats.cache_hits) == (0, 3)
    assert (root / USE).read_bytes() == b"ALPHA\ny\n"
    assert not (root / F).exists() and not (root / TREE).exists()
    assert _blobs_read(server, start) == [USE_BLOB]

    # A no-op asks the server nothing: the records know what is still remote.
    start = len(server.log)
    stats, _, _ = _build(tmp_path, "team-b", url, [USE])
    assert (stats.executed, server.log[start:]) == (0, [])

    # An action that runs here brings down what it reads (f), and only that.
    start = len(server.log)
    stats, _, root = _build(tmp_path, "team-b", url, [USE, MORE], more=True)
    assert stats.executed_labels == ["//pkg:more Genrule"]
    assert (root / MORE).read_bytes() == b"ALPHA\nALPHA\n"
    assert (root / F).read_bytes() == b"ALPHA\n" and not (root / TREE).exists()
    assert _blobs_read(server, start) == [F_BLOB]

    # Asking for the tree later brings it down too, with no action run.
    stats, _, root = _build(tmp_path, "team-b", url, [TREE])
    assert stats.executed == 0 and (root / TREE / "y").read_bytes() == b"y\n"


def test_all_downloads_every_output_and_minimal_none(server: CacheServer, tmp_path: Path) -> None:
    url = cache_url(server)
    _build(tmp_path, "team-a", url, [F, TREE, USE])
    _, _, root = _build(tmp_path, "all", url, [USE], mode="all")
    assert (root / F).is_file() and (root / TREE / "y").is_file() and (root / USE).is_file()
    start = len(server.log)
    stats, _, root = _build(tmp_path, "minimal", url, [USE], mode="minimal")
    assert stats.cache_hits == 3 and not (root / USE).exists()
    assert _blobs_read(server, start) == []
    # `all` in an output base where an earlier build left outputs on the server
    stats, _, root = _build(tmp_path, "minimal", url, [USE], mode="all")
    assert stats.executed == 0 and (root / F).is_file() and (root / TREE / "y").is_file()
    assert (root / USE).read_bytes() == b"ALPHA\ny\n"


def test_a_blob_lost_before_it_is_needed_makes_its_action_run_here(
    server: CacheServer, tmp_path: Path
) -> None:
    url = cache_url(server)
    _build(tmp_path, "team-a", url, [F, TREE, USE])
    # The lookups find f's entry; its bytes are gone when `more` needs them.
    del server.data[F_BLOB]
    stats, log, root = _build(tmp_path, "team-b", url, [MORE], more=True)
    assert sorted(stats.executed_labels) == ["//pkg:f Genrule", "//pkg:more Genrule"]
    assert stats.cache_hits == 0 and stats.invalid_cache_entries == 1
    warnings = [line for line in log.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "could not be downloaded (a lost upload?)" in warnings[0]
    assert (root / MORE).read_bytes() == b"ALPHA\nALPHA\n"
    # and the entry is whole again for the next team
    _, _, root = _build(tmp_path, "team-c", url, [F])
    assert (root / F).read_bytes() == b"ALPHA\n"


def test_a_spoiled_blob_of_an_asked_for_output_is_caught_and_its_action_runs_here(
    server: CacheServer, tmp_path: Path
) -> None:
    url = cache_url(server)
    _build(tmp_path, "team-a", url, [F, TREE, USE])
    server.data[USE_BLOB] = b"EVIL\ny\n"  # same length, other bytes
    stats, log, root = _build(tmp_path, "team-b", url, [USE])
    # `use` runs here, and first brings down what it reads
    assert stats.executed_labels == ["//pkg:use Genrule"] and stats.cache_hits == 2
    warnings = [line for line in log.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "does not match its sha256" in warnings[0], warnings
    assert (root / USE).read_bytes() == b"ALPHA\ny\n"
    assert (root / F).is_file() and (root / TREE / "y").is_file()
    assert server.data[USE_BLOB] == b"ALPHA\ny\n"  # uploaded again, whole
