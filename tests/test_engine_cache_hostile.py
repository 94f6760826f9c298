"""A cache that lies: poisoned entries in a shared disk cache and on a real nginx cache.

Other machines and people write a shared `--disk_cache` or a remote cache,
so every entry is untrusted. Each poisoned action result here (paths outside
the output tree, tree entries leaving their tree, a file below a tree
symlink, missing, extra or duplicate outputs, a file where a tree belongs and
the reverse, short or garbage bytes, wrong types) and each bad blob must be a
miss: the build succeeds with the right bytes, a canary directory outside the
build stays as it was, exactly one warning names the cache and the label,
and the local cache does not keep the bad entry, so a later build from the
local cache alone is a clean hit.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cache_poisons import (
    FILE,
    FILE_POISONS,
    TREE,
    TREE_POISONS,
    USE,
    Ctx,
    Poison,
    reapi_result,
)
from enginekit import sh
from nginx_server import NginxCache
from realtools import need
from strata.canonical import json_bytes
from strata.engine.build import ExecutionConfig, execute
from strata.engine.cache import ActionResult
from strata.engine.cache.http import RemoteOptions
from strata.engine.execution.report import BuildStats, Reporter
from strata.engine.execution.scheduler import BuildOptions
from strata.engine.outputbase import OutputBase

ACTIONS = [
    sh("//pkg:f", f"cp pkg/a.txt {FILE}", ["pkg/a.txt"], [FILE]),
    sh(
        "//pkg:tree",
        f"mkdir -p {TREE}/sub && tr a-z A-Z < pkg/a.txt > {TREE}/sub/x && echo y > {TREE}/y "
        f"&& ln -s sub/x {TREE}/link",
        ["pkg/a.txt"],
        [],
        output_dirs=(TREE,),
    ),
    sh("//pkg:use", f"cat {FILE} {TREE}/sub/x {TREE}/link > {USE}", [FILE, TREE], [USE]),
]


# -- a workspace, its builds and what they leave ------------------------------------


@dataclass
class Setup:
    tmp: Path
    ws: Path
    canary: Path
    remote: RemoteOptions | None

    def build(self, name: str, disk: str, *, remote: bool = True) -> tuple[BuildStats, str]:
        """A build in a fresh output base `name` with the disk cache `disk`."""
        stream = io.StringIO()
        config = ExecutionConfig(
            BuildOptions(jobs=2),
            disk_cache=self.tmp / disk,
            remote=self.remote if remote else None,
        )
        wanted = [o for a in ACTIONS for o in a.outputs + a.output_dirs]
        stats = execute(self.base(name), ACTIONS, wanted, config, Reporter(stream, tty=False))
        return stats, stream.getvalue()

    def base(self, name: str) -> OutputBase:
        return OutputBase(self.tmp / name, self.ws)

    def outputs(self, name: str) -> dict[str, bytes | str]:
        """Every output file's bytes and every tree symlink's target."""
        root = self.base(name).execroot
        out: dict[str, bytes | str] = {p: (root / p).read_bytes() for p in (FILE, USE)}
        for p in sorted((root / TREE).rglob("*")):
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = os.readlink(p)
            elif p.is_file():
                out[rel] = p.read_bytes()
        return out


def _snapshot(root: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file() else "/"
    return out


def _setup(tmp: Path, remote: RemoteOptions | None) -> Setup:
    ws = tmp / "ws"
    (ws / "pkg").mkdir(parents=True)
    (ws / "WORKSPACE").write_text("")
    (ws / "pkg" / "a.txt").write_text("alpha\n")
    canary = tmp / "canary"
    canary.mkdir()
    (canary / "keep").write_text("keep me\n")
    return Setup(tmp, ws, canary, remote)


def _ac_entries(disk: Path) -> dict[str, Path]:
    """The disk cache's action-result files, by the first output they list."""
    out = {}
    for p in (disk / "ac").glob("*/*"):
        raw = json.loads(p.read_bytes())
        first = (raw["files"] + raw["trees"])[0]["path"]
        out[first] = p
    return out


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxCache]:
    server = NginxCache(tmp_path_factory.mktemp("nginx"))
    server.start(need("nginx"))
    yield server
    server.stop()


def _poisoned_label(target: str) -> str:
    return "//pkg:f" if target == FILE else "//pkg:tree"


def _check_poison_is_a_miss(
    s: Setup, target: str, log: str, stats: BuildStats, good: dict[str, bytes | str]
) -> None:
    assert stats.executed_labels == [f"{_poisoned_label(target)} Genrule"], log
    assert stats.cache_hits == 2
    assert log.count("warning:") == 1, log
    assert f"ignored an invalid action result for {_poisoned_label(target)} (" in log
    assert "1 invalid cache entries ignored" in log
    assert _snapshot(s.canary) == {"keep": b"keep me\n"}
    assert s.outputs("ob-b") == good


POISONS = {FILE: FILE_POISONS, TREE: TREE_POISONS}
CASES = [(target, name) for target, poisons in POISONS.items() for name in poisons]
TORN: dict[str, Poison] = {
    # what a crash can leave of a disk cache entry, written without fsync: renamed into
    # place, its bytes not on disk (a remote cache's server answers whole bodies or none)
    "empty file (torn by a crash)": lambda r, c: b"",
    "cut short (torn by a crash)": lambda r, c: json_bytes(r.to_json())[:40],
}
DISK_CASES = [*CASES, *((FILE, name) for name in TORN)]


def _poison(target: str, name: str, good: bytes, ctx: Ctx) -> ActionResult | bytes:
    return {**POISONS[target], **TORN}[name](ActionResult.from_json(json.loads(good)), ctx)


@pytest.mark.parametrize(("target", "name"), DISK_CASES, ids=[n for _t, n in DISK_CASES])
def test_poisoned_disk_cache_entry_is_a_miss(tmp_path: Path, target: str, name: str) -> None:
    s = _setup(tmp_path, None)
    s.build("ob-a", "disk")
    good = s.outputs("ob-a")
    entry = _ac_entries(tmp_path / "disk")[target]
    good_entry = entry.read_bytes()
    poison = _poison(
        target, name, good_entry, Ctx(s.canary, s.base("ob-b").execroot, tmp_path / "disk")
    )
    poison = poison if isinstance(poison, bytes) else json_bytes(poison.to_json())
    entry.write_bytes(poison)

    stats, log = s.build("ob-b", "disk")
    _check_poison_is_a_miss(s, target, log, stats, good)
    assert f"warning: disk cache {tmp_path / 'disk'}: ignored" in log
    assert entry.read_bytes() == good_entry  # the fresh result replaced the bad one
    stats, log = s.build("ob-c", "disk")
    assert (stats.executed, stats.cache_hits) == (0, 3) and "warning" not in log


@pytest.mark.realtool
@pytest.mark.parametrize(("target", "name"), CASES, ids=[n for _t, n in CASES])
def test_poisoned_remote_cache_entry_is_a_miss(
    nginx: NginxCache, tmp_path: Path, target: str, name: str
) -> None:
    url = f"{nginx.url}/{tmp_path.name}"
    s = _setup(tmp_path, RemoteOptions(url=url))
    s.build("ob-a", "disk-a")
    good = s.outputs("ob-a")
    local_a = _ac_entries(tmp_path / "disk-a")[target]
    good_entry = local_a.read_bytes()
    remote = nginx.cache_dir / tmp_path.name
    ac = remote / "ac" / local_a.name
    good_ac = ac.read_bytes()
    poison = _poison(
        target, name, good_entry, Ctx(s.canary, s.base("ob-b").execroot, tmp_path / "disk-b")
    )
    if isinstance(poison, bytes):
        ac.write_bytes(poison)
    else:
        body, trees = reapi_result(poison)
        ac.write_bytes(body)
        for sha, data in trees.items():
            (remote / "cas" / sha).write_bytes(data)

    stats, log = s.build("ob-b", "disk-b")
    _check_poison_is_a_miss(s, target, log, stats, good)
    assert f"warning: remote cache {url}: ignored" in log
    local_b = tmp_path / "disk-b" / local_a.relative_to(tmp_path / "disk-a")
    assert local_b.read_bytes() == good_entry  # never the remote one: that was not stored
    assert ac.read_bytes() == good_ac  # the fresh result replaced it on the server too
    stats, log = s.build("ob-c", "disk-b", remote=False)
    assert (stats.executed, stats.cache_hits) == (0, 3) and "warning" not in log


# -- more than one bad entry, bad blobs -----------------------------------------------


def test_many_invalid_entries_give_one_warning_and_a_count(tmp_path: Path) -> None:
    s = _setup(tmp_path, None)
    s.build("ob-a", "disk")
    good = s.outputs("ob-a")
    for entry in _ac_entries(tmp_path / "disk").values():
        entry.write_bytes(b"{}")
    stats, log = s.build("ob-b", "disk")
    assert stats.executed == 3 and s.outputs("ob-b") == good
    assert log.count("warning:") == 1
    assert "3 invalid cache entries ignored" in log.splitlines()[-1]


def _blob(disk: Path, data: bytes) -> Path:
    sha = hashlib.sha256(data).hexdigest()
    return disk / "cas" / sha[:2] / sha


def test_flipped_local_blob_warns_once_and_is_replaced(tmp_path: Path) -> None:
    s = _setup(tmp_path, None)
    s.build("ob-a", "disk")
    good = s.outputs("ob-a")
    blob = _blob(tmp_path / "disk", b"alpha\n")
    blob.chmod(0o644)
    blob.write_bytes(b"alphA\n")
    stats, log = s.build("ob-b", "disk")
    _check_poison_is_a_miss(s, FILE, log, stats, good)
    assert "(blob " in log and "does not match its sha256)" in log
    assert blob.read_bytes() == b"alpha\n"
    stats, log = s.build("ob-c", "disk")
    assert (stats.executed, stats.cache_hits) == (0, 3) and "warning" not in log


@pytest.mark.realtool
@pytest.mark.parametrize("how", ["flipped", "lost"])
def test_bad_or_lost_remote_blob_warns_once_and_is_uploaded_again(
    nginx: NginxCache, tmp_path: Path, how: str
) -> None:
    url = f"{nginx.url}/{tmp_path.name}"
    s = _setup(tmp_path, RemoteOptions(url=url))
    s.build("ob-a", "disk-a")
    good = s.outputs("ob-a")
    sha = hashlib.sha256(b"alpha\n").hexdigest()
    blob = nginx.cache_dir / tmp_path.name / "cas" / sha
    if how == "flipped":
        blob.write_bytes(b"alphA\n")
    else:
        blob.unlink()
    stats, log = s.build("ob-b", "disk-b")
    _check_poison_is_a_miss(s, FILE, log, stats, good)
    why = "does not match its sha256" if how == "flipped" else "could not be downloaded"
    assert f"warning: remote cache {url}: ignored an invalid action result for //pkg:f (" in log
    assert f"(blob {sha} {why}" in log
    assert blob.read_bytes() == b"alpha\n"  # the fresh run put it back
    assert not [p for p in (tmp_path / "disk-b").rglob("*") if p.name.endswith(".tmp")]
    stats, log = s.build("ob-c", "disk-c")
    assert (stats.executed, stats.cache_hits) == (0, 3) and "warning" not in log
