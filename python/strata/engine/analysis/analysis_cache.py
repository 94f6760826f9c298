"""Reusing the last analysis of the same request when nothing it read has changed.

Loading and analysis are a function of (a) the request: target patterns, the
working package, the workspace, the build-setting flags (`--//pkg:flag=v`);
(b) the engine: strata's version and the engine's own sources (its .py files,
and the .bzl files of loading/builtins/, the rule API); (c) the host, which
`select()` and the bin directory depend on; and (d) everything read from the
file system, which `Reads` records: the contents of WORKSPACE, BUILD and .bzl
files, templates and repository markers, the existence and kind of paths asked
about, and the directory listings `glob()` and `//...` walked.

(a)-(c) name the entry, `<output_base>/analysis/<key>.pickle`; (d) is stored
in it before the result, as two pickles in one file, so a command that finds
something changed never unpickles the result. A later command with the same
key re-asks every recorded question (one `stat` per unchanged file through the
stat cache, one per unchanged directory, see reads.py) and reuses the result
only if every answer is the same; otherwise it analyses again and replaces
the entry. Only the KEEP_ENTRIES most recently used entries are kept (a new one
prunes the rest). A failed analysis is never stored, nor a `--keep_going` one that
left failing targets out.

Like Bazel, a fetched repository is not re-fetched because the files its rule
read changed, only when its marker (rule, attributes, .bzl, and the client
environment variables the rule declares with `environ = [...]`) changes; those
variables are recorded like files, so changing one re-runs analysis and the fetch.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from strata import __version__
from strata.engine import unpickle
from strata.engine.action import Action
from strata.engine.analysis.graph import ActionGraph, build_graph
from strata.engine.analysis.result import AnalysisResult
from strata.engine.digests import StatCache
from strata.engine.loading.build_settings import SettingFlag
from strata.engine.loading.reads import Observation, Reads, Recorded, changed
from strata.errors import UserError
from strata.fsutil import atomic_file

_FORMAT = 3
KEEP_ENTRIES = 8
"""Entries kept in `<output_base>/analysis/`, the most recently used (each is ~16 MB at the
size of a 50,000-file closure): enough to switch between a few requests or flag sets."""
_ENGINE_DIR = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class CachedAnalysis:
    result: AnalysisResult
    reused: bool
    """True when the stored result was still valid and no Starlark ran."""
    reason: str
    """Why analysis ran (for `--explain`); empty when reused."""


def engine_fingerprint(stat_cache: StatCache) -> str:
    """Digest of the engine's sources, so editing the engine invalidates old analyses."""
    h = hashlib.sha256(__version__.encode())
    for name in _engine_sources():
        with contextlib.suppress(OSError):
            h.update(f"{name}\0{stat_cache.digest(_ENGINE_DIR / name).sha256}\0".encode())
    return h.hexdigest()


def _engine_sources() -> list[str]:
    """The engine's .py and .bzl files, relative to its directory, its subpackages' too."""
    names = []
    for dirpath, dirnames, filenames in os.walk(_ENGINE_DIR):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        rel = os.path.relpath(dirpath, _ENGINE_DIR)
        for name in filenames:
            if name.endswith((".py", ".bzl")):
                names.append(os.path.normpath(os.path.join(rel, name)))
    return sorted(names)


def analysis_key(
    workspace_root: Path,
    patterns: list[str],
    cwd_package: str,
    stat_cache: StatCache,
    setting_flags: Sequence[SettingFlag] = (),
) -> str:
    material = {
        "format": _FORMAT,
        "engine": engine_fingerprint(stat_cache),
        "python": sys.version,
        "host": [platform.system(), platform.machine()],
        "workspace": os.fspath(workspace_root.resolve()),
        "patterns": patterns,
        "cwd_package": cwd_package,
        "setting_flags": [str(f) for f in setting_flags],
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _unpickle(f: io.BytesIO) -> object:
    try:
        return unpickle.load(f)
    except (EOFError, pickle.UnpicklingError, AttributeError, ImportError):
        return None  # damaged or written by another strata: a miss
    except (TypeError, ValueError, IndexError, KeyError):
        return None


def _store(path: Path, rec: Recorded, result: AnalysisResult | memoryview) -> None:
    """Write the entry, pickling straight into the file (a closure's result is ~16 MB)."""
    with atomic_file(path, durable=False) as f:
        pickle.dump((_FORMAT, rec), f, protocol=5)
        if isinstance(result, memoryview):
            f.write(result)  # the stored result, unchanged
        else:
            pickle.dump(result, f, protocol=5)


def _graph(actions: list[Action]) -> ActionGraph | None:
    """The action graph, made once per analysis rather than once per build."""
    try:
        return build_graph(actions)
    except UserError:
        return None  # made again by the build, which reports the error


def _describe(obs: Observation) -> str:
    what = {
        "file": "content of",
        "kind": "existence of",
        "entry": "existence of",
        "dir": "listing of directory",
        "env": "environment variable",
    }
    return f"{what.get(obs.what, obs.what)} {obs.path} changed"


def analyze_cached(
    workspace_root: Path,
    patterns: list[str],
    *,
    cwd_package: str = "",
    output_base: Path,
    stat_cache: StatCache,
    keep_going: bool = False,
    setting_flags: Sequence[SettingFlag] = (),
) -> CachedAnalysis:
    """`analysis.analyze`, reusing the stored result when nothing it read has changed.

    The caller holds the output-base lock and saves `stat_cache` afterwards.
    """
    key = analysis_key(workspace_root, patterns, cwd_package, stat_cache, setting_flags)
    path = output_base / "analysis" / f"{key}.pickle"
    reason = "no earlier analysis of this request"
    with contextlib.suppress(OSError):
        data = io.BytesIO(path.read_bytes())
        head = _unpickle(data)
        if isinstance(head, tuple) and len(head) == 2 and head[0] == _FORMAT:
            rec = head[1]
            stale = changed(rec, stat_cache) if isinstance(rec, Recorded) else None
            if stale is not None:
                reason = _describe(stale)
            elif isinstance(rec, Recorded):
                start = data.tell()
                result = _unpickle(data)
                if isinstance(result, AnalysisResult):
                    if rec.refreshed:
                        _store(path, rec, data.getbuffer()[start:])
                    else:
                        os.utime(path)  # recently used: the last to be pruned
                    return CachedAnalysis(result, True, "")
    from strata.engine.analysis.analysis import analyze

    reads = Reads(stat_cache)
    result = analyze(
        workspace_root,
        patterns,
        cwd_package=cwd_package,
        output_base=output_base,
        reads=reads,
        keep_going=keep_going,
        setting_flags=setting_flags,
    )
    if result.errors:
        return CachedAnalysis(result, False, reason)  # like a failed analysis: not stored
    for action in result.actions:
        action.definition  # noqa: B018 - digested now, stored with the result (actionkey.py)
    result = replace(result, graph=_graph(result.actions))
    _store(path, reads.recorded(), result)
    _prune(path.parent, KEEP_ENTRIES)
    return CachedAnalysis(result, False, reason)


def _prune(directory: Path, keep: int) -> None:
    """Remove all but the `keep` most recently used entries (and any left-over temporary file)."""
    entries: list[tuple[float, Path]] = []
    with contextlib.suppress(OSError), os.scandir(directory) as it:
        for e in it:
            with contextlib.suppress(OSError):
                entries.append((e.stat(follow_symlinks=False).st_mtime, Path(e.path)))
    entries.sort(reverse=True)
    for _mtime, old in entries[keep:]:
        with contextlib.suppress(OSError):
            old.unlink()
