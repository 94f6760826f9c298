"""The action records: an action whose key and outputs are unchanged is done without a cache.

Each test counts what a build asked of the disk cache and how many files it
hashed, so "cost grows with what changed" is checked, not timed.
"""

from __future__ import annotations

import io
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from enginekit import BIN, Engine, chain, chain_engine, sh
from strata.engine import digests
from strata.engine.action import Action
from strata.engine.build import ExecutionConfig, execute
from strata.engine.cache.local import LocalDiskCache
from strata.engine.execution.report import BuildStats, Reporter
from strata.engine.execution.scheduler import BuildOptions


@pytest.fixture
def eng(tmp_path: Path) -> Engine:
    return chain_engine(tmp_path)


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """How often this test's builds read the disk cache and hashed a source."""
    seen: Counter[str] = Counter()

    def counting(name: str) -> Callable[..., object]:
        real = getattr(LocalDiskCache, name)

        def counted(self: LocalDiskCache, *args: object) -> object:
            seen[name] += 1
            return real(self, *args)

        return counted

    for name in ("get_action_result", "get_blob"):
        monkeypatch.setattr(LocalDiskCache, name, counting(name))
    real_hash = digests.xxh3_and_sha256_file

    def hashed(path: str | os.PathLike[str]) -> tuple[str, str]:
        seen["hashed"] += 1
        return real_hash(path)

    monkeypatch.setattr(digests, "xxh3_and_sha256_file", hashed)
    yield seen


def write_w(content: bytes) -> Action:
    """An action writing `content` to pkg/W."""
    return Action(
        owner="//pkg:w",
        mnemonic="FileWrite",
        progress_message="",
        kind="write",
        outputs=(f"{BIN}/pkg/W",),
        content=content,
    )


def chain_and_write() -> list[Action]:
    """enginekit's chain (a.txt -> A; b.txt -> B; A + B -> C) and a written file W."""
    return [
        *chain(),
        write_w(b"written\n"),
    ]


def test_a_noop_reads_no_cache_and_hashes_nothing(eng: Engine, counts: Counter[str]) -> None:
    eng.build(chain_and_write())
    counts.clear()
    stats = eng.build(chain_and_write())
    assert (stats.executed, stats.cache_hits, stats.in_process) == (0, 3, 1)
    assert counts == Counter()


def test_a_changed_source_costs_only_what_depends_on_it(eng: Engine, counts: Counter[str]) -> None:
    eng.build(chain_and_write())
    (eng.workspace / "pkg" / "b.txt").write_text("gamma\n")
    counts.clear()
    stats = eng.build(chain_and_write())
    assert sorted(stats.executed_labels) == ["//pkg:b Genrule", "//pkg:c Genrule"]
    assert counts == Counter(get_action_result=2, hashed=1)
    assert eng.out(f"{BIN}/pkg/C").read_text() == "ALPHA\nGAMMA\n"


def test_an_emptied_cache_rebuilds_nothing_and_then_only_a_deleted_output(
    eng: Engine, tmp_path: Path
) -> None:
    eng.disk_cache = tmp_path / "disk"
    eng.build(chain_and_write())
    shutil.rmtree(tmp_path / "disk")
    assert eng.build(chain_and_write()).executed == 0
    assert eng.out(f"{BIN}/pkg/C").read_text() == "ALPHA\nBETA\n"
    eng.out(f"{BIN}/pkg/A").unlink()
    stats = eng.build(chain_and_write())
    # A ran again (its cache entry is gone); C's inputs are the same bytes, so C did not.
    assert stats.executed_labels == ["//pkg:a Genrule"]
    assert eng.out(f"{BIN}/pkg/A").read_text() == "ALPHA\n"


def test_a_new_disk_cache_rebuilds_nothing(eng: Engine, tmp_path: Path) -> None:
    eng.build(chain_and_write())
    eng.disk_cache = tmp_path / "elsewhere"
    stats = eng.build(chain_and_write())
    assert (stats.executed, stats.cache_hits) == (0, 3)


@pytest.mark.parametrize("how", ["replaced", "touched", "chmod", "replaced by a link"])
def test_a_changed_output_is_put_back_from_the_cache(
    eng: Engine, counts: Counter[str], how: str
) -> None:
    eng.build(chain_and_write())
    out = eng.out(f"{BIN}/pkg/A")
    if how == "replaced":
        out.unlink()
        out.write_text("BOGUS\n")
    elif how == "touched":
        st = out.stat()
        os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    elif how == "chmod":
        out.chmod(0o644)
    else:
        (out.parent / "elsewhere").write_text("BOGUS\n")
        out.unlink()
        out.symlink_to(out.parent / "elsewhere")
    counts.clear()
    stats = eng.build(chain_and_write())
    assert (stats.executed, stats.cache_hits) == (0, 3)
    assert counts["get_action_result"] == 1  # A's record no longer held; B and C's did
    assert not out.is_symlink() and out.read_text() == "ALPHA\n"
    assert out.stat().st_mode & 0o777 == 0o555
    counts.clear()
    assert eng.build(chain_and_write()).executed == 0 and counts == Counter()


def test_an_output_edited_in_place_reruns_its_action_alone(eng: Engine) -> None:
    eng.build(chain_and_write())
    out = eng.out(f"{BIN}/pkg/A")
    out.chmod(0o755)
    out.write_text("BOGUS\n")  # also the cache's copy: blobs are hard links to outputs
    stats = eng.build(chain_and_write())
    assert stats.executed_labels == ["//pkg:a Genrule"]
    assert out.read_text() == "ALPHA\n"


def tree_actions() -> list[Action]:
    tree = f"{BIN}/pkg/tree"
    return [
        sh("//pkg:t", f"mkdir {tree}/sub; echo x > {tree}/sub/x", [], [], output_dirs=(tree,)),
        sh("//pkg:u", f"ls -R {tree} > {BIN}/pkg/ls", [tree], [f"{BIN}/pkg/ls"]),
    ]


def test_a_file_added_to_a_tree_output_is_removed(eng: Engine, counts: Counter[str]) -> None:
    eng.build(tree_actions())
    sub = eng.out(f"{BIN}/pkg/tree/sub")
    sub.chmod(0o755)
    (sub / "stray").write_text("not an output\n")
    counts.clear()
    stats = eng.build(tree_actions())
    assert (stats.executed, stats.cache_hits) == (0, 2)
    assert counts["get_action_result"] == 1
    assert sorted(p.name for p in sub.iterdir()) == ["x"]


def test_a_no_cache_action_is_not_recorded_but_kept_by_the_action_log(eng: Engine) -> None:
    """No record and no cache entry for it; Bazel's action cache still keeps it up to date."""
    volatile = sh("//pkg:v", f"date +%N > {BIN}/pkg/v", [], [f"{BIN}/pkg/v"], tags=("no-cache",))
    eng.build([volatile])
    stats = eng.build([volatile])
    assert (stats.executed_labels, stats.up_to_date) == ([], 1)
    eng.out(f"{BIN}/pkg/v").unlink()
    assert eng.build([volatile]).executed_labels == ["//pkg:v Genrule"]


def test_damaged_records_send_every_action_through_the_cache(
    eng: Engine, counts: Counter[str]
) -> None:
    eng.build(chain_and_write())
    (eng.output_base / "action_records").write_bytes(b"\x80\x05garbage")
    counts.clear()
    stats = eng.build(chain_and_write())
    assert (stats.executed, stats.cache_hits) == (0, 3)
    assert counts["get_action_result"] == 3
    counts.clear()
    assert eng.build(chain_and_write()).executed == 0 and counts == Counter()


def build_with(eng: Engine, options: BuildOptions) -> BuildStats:
    config = ExecutionConfig(options, sandbox="directory")
    return execute(eng.base, chain_and_write(), [f"{BIN}/pkg/C"], config, Reporter(io.StringIO()))


def test_changed_execution_flags_rebuild_nothing(eng: Engine, counts: Counter[str]) -> None:
    eng.build(chain_and_write())
    counts.clear()
    reapi = BuildOptions(jobs=1, action_keys="reapi")
    for options in (reapi, BuildOptions(jobs=3, workers=False, keep_going=True)):
        stats = build_with(eng, options)
        assert (stats.executed, stats.cache_hits) == (0, 3)
    assert counts == Counter()
    # ... and a change is still seen under them
    (eng.workspace / "pkg" / "a.txt").write_text("delta\n")
    stats = build_with(eng, reapi)
    assert sorted(stats.executed_labels) == ["//pkg:a Genrule", "//pkg:c Genrule"]


def test_a_link_to_an_undeclared_target_follows_its_target(eng: Engine) -> None:
    def actions(text: bytes) -> list[Action]:
        return [
            write_w(text),
            # the target is not an input: only the link's own record could not see it change
            Action(
                owner="//pkg:l",
                mnemonic="Symlink",
                progress_message="",
                kind="symlink",
                outputs=(f"{BIN}/pkg/L",),
                symlink_target=f"{BIN}/pkg/W",
            ),
            sh("//pkg:c", f"cat {BIN}/pkg/L > {BIN}/pkg/C", [f"{BIN}/pkg/L"], [f"{BIN}/pkg/C"]),
        ]

    eng.build(actions(b"one\n"))
    assert eng.build(actions(b"two\n")).executed_labels == ["//pkg:c Genrule"]
    assert eng.out(f"{BIN}/pkg/C").read_text() == "two\n"
