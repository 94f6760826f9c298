"""Reusing the last analysis of the same request when nothing it read has changed.

Loading and analysis are a function of (a) the request: target patterns, the
working package, the workspace, the build-setting flags (`--//pkg:flag=v`);
(b) the engine: strata's version and the engine's own sources (builtins.bzl is
the rule API); (c) the host, which `select()` and the bin directory depend on;
and (d) everything read from the file system, which `Reads` records: the
contents of WORKSPACE, BUILD and .bzl files, templates and repository markers,
the existence and kind of paths asked about, and the directory listings
`glob()` and `//...` walked.

(a)-(c) name the entry, `<output_base>/analysis/<key>.pickle`; (d) is stored
in it next to the result. A later command with the same key re-asks every
recorded question (one `stat` per unchanged file, through the stat cache) and
reuses the result only if every answer is the same; otherwise it analyses
again and replaces the entry. A failed analysis is never stored, nor a
`--keep_going` one that left failing targets out.

Like Bazel, a fetched repository is not re-fetched because the files its rule
read changed, only when its marker (rule, attributes, .bzl, and the client
environment variables the rule declares with `environ = [...]`) changes; those
variables are recorded like files, so changing one re-runs analysis and the fetch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from strata import __version__
from strata.engine.build_settings import SettingFlag
from strata.engine.digests import StatCache
from strata.engine.reads import Observation, Reads, changed
from strata.engine.result import AnalysisResult
from strata.fsutil import write_bytes_atomic

_FORMAT = 1
_ENGINE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class CachedAnalysis:
    result: AnalysisResult
    reused: bool
    """True when the stored result was still valid and no Starlark ran."""
    reason: str
    """Why analysis ran (for `--explain`); empty when reused."""


@dataclass(frozen=True)
class _Entry:
    format: int
    observations: list[Observation]
    result: AnalysisResult


def engine_fingerprint(stat_cache: StatCache) -> str:
    """Digest of the engine's sources, so editing the engine invalidates old analyses."""
    h = hashlib.sha256(__version__.encode())
    with os.scandir(_ENGINE_DIR) as it:
        names = sorted(e.name for e in it if e.name.endswith((".py", ".bzl")))
    for name in names:
        with contextlib.suppress(OSError):
            h.update(f"{name}\0{stat_cache.digest(_ENGINE_DIR / name).sha256}\0".encode())
    return h.hexdigest()


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


def _load(path: Path) -> _Entry | None:
    try:
        entry = pickle.loads(path.read_bytes())
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError):
        return None  # missing, damaged or written by another strata: a miss
    except (TypeError, ValueError, IndexError, KeyError):
        return None
    return entry if isinstance(entry, _Entry) and entry.format == _FORMAT else None


def _describe(obs: Observation) -> str:
    what = {
        "file": "content of",
        "kind": "existence of",
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
    entry = _load(path)
    if entry is None:
        reason = "no earlier analysis of this request"
    else:
        stale = changed(entry.observations, stat_cache)
        if stale is None:
            return CachedAnalysis(entry.result, True, "")
        reason = _describe(stale)
    from strata.engine.analysis import analyze

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
    data = pickle.dumps(_Entry(_FORMAT, reads.observations, result), protocol=5)
    write_bytes_atomic(path, data)
    return CachedAnalysis(result, False, reason)
