"""One build command's execution half: from analysed actions to outputs on disk.

Glue between the output base (lock, stat cache, action log), the cache, the
executor and the scheduler, so the CLI and the tests drive the same code.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from strata.canonical import json_bytes
from strata.engine import leftovers
from strata.engine.action import Action
from strata.engine.analysis.graph import ActionGraph, build_graph
from strata.engine.cache.local import LocalDiskCache
from strata.engine.digests import StatCache
from strata.engine.execution.action_log import ActionLog
from strata.engine.execution.action_records import ActionRecords
from strata.engine.execution.executor import Executor
from strata.engine.execution.report import BuildStats, Reporter
from strata.engine.execution.sandbox import choose as choose_sandbox
from strata.engine.execution.sandbox import fallback_warning
from strata.engine.execution.scheduler import BuildOptions, Scheduler
from strata.engine.execution.workers import WorkerPool
from strata.engine.outputbase import OutputBase
from strata.fsutil import write_bytes_atomic

if TYPE_CHECKING:
    from strata.engine.cache import Cache
    from strata.engine.cache.http import RemoteOptions


@dataclass(frozen=True)
class ExecutionConfig:
    options: BuildOptions
    disk_cache: Path | None = None
    """Defaults to `<output_base>/cache`."""
    use_cache: bool = True
    source_path: Callable[[str], Path] | None = None
    """Maps a source execroot path to its file; defaults to `OutputBase.source_path`."""
    repo_roots: tuple[Path, ...] = ()
    """Directories of the repositories (workspace included) sources come from."""
    remote: RemoteOptions | None = None
    """`--remote_cache` and its flags: the local cache then sits in front of that server."""
    sandbox: str = "auto"
    """`--sandbox`: `auto`, `namespace` (an error where bubblewrap cannot run) or `directory`."""


def execute(
    base: OutputBase,
    actions: Sequence[Action],
    wanted: Iterable[str],
    config: ExecutionConfig,
    reporter: Reporter,
    *,
    stat_cache: StatCache | None = None,
    graph: ActionGraph | None = None,
) -> BuildStats:
    """Build the generated files `wanted` (execroot paths) under `base`'s lock.

    With `stat_cache`, the caller already holds the lock (it analysed under it,
    sharing the stat cache) and saves the stat cache itself. `graph`, if given,
    is `build_graph(actions)` made earlier (stored with the analysis).
    """
    if stat_cache is not None:
        return _execute_locked(base, actions, wanted, config, reporter, stat_cache, graph)
    with base.locked(on_wait=LOCK_WAIT_MESSAGE):
        own = StatCache(base.stat_cache_file)
        try:
            return _execute_locked(base, actions, wanted, config, reporter, own, graph)
        finally:
            _best_effort(reporter, own.save, "the next build reads the sources again")


LOCK_WAIT_MESSAGE = "strata: another command holds the output base; waiting"


def _execute_locked(
    base: OutputBase,
    actions: Sequence[Action],
    wanted: Iterable[str],
    config: ExecutionConfig,
    reporter: Reporter,
    stat_cache: StatCache,
    graph: ActionGraph | None = None,
) -> BuildStats:
    namespace, why = choose_sandbox(config.sandbox)
    if namespace is None:
        reporter.warning(fallback_warning(why))
    cleaned = leftovers.clean_up(base.sandbox_root)
    if cleaned.sandboxes:
        reporter.info(
            "strata: cleaned up after a build that did not finish (got "
            f"{cleaned.sandboxes} sandboxes and {cleaned.processes} processes left behind)"
        )
    if graph is None:
        graph = build_graph(actions)
    log = ActionLog(base.action_log_file)
    records = ActionRecords(base.action_records_file, base.execroot)
    cache: Cache | None = None
    if config.use_cache:
        cache = LocalDiskCache(config.disk_cache or base.default_disk_cache, reporter.warning)
        if config.remote is not None:
            cache = _with_remote(cache, config.remote, reporter)
    wrap = None
    if namespace is not None:
        ns = namespace
        roots = (base.workspace, *config.repo_roots)
        wrap = lambda argv: ns.worker_command(base.root, roots, argv)  # noqa: E731
    workers = WorkerPool(
        base.execroot,
        {"PATH": os.defpath},
        enabled=config.options.workers,
        wrap=wrap,
        scratch=base.sandbox_root,
    )
    executor = Executor(
        base.execroot,
        base.sandbox_root,
        config.source_path or base.source_path,
        stat_cache,
        cache,
        workers=workers,
        namespace=namespace,
        hash_threads=max(1, config.options.jobs),
    )
    try:
        return Scheduler(graph, executor, reporter, config.options, log, records).build(wanted)
    finally:
        executor.close()
        workers.close()
        if workers.failure:
            reporter.warning(
                f"strata's action worker stopped ({workers.failure}); its actions ran as "
                "processes (slower, same bytes); --noworkers skips the worker"
            )
        _best_effort(
            reporter,
            lambda: write_bytes_atomic(base.last_build_file, json_bytes(reporter.stats.to_json())),
            "the build's figures are not saved",
        )
        _report_remote(cache, reporter)
        _best_effort(reporter, log.save, "--explain cannot say what changed next time")
        _best_effort(reporter, records.save, "the next build checks every action again")
        _best_effort(
            reporter,
            base.link_convenience_symlink,
            f"find the outputs under {base.bin}",
            "cannot point strata-bin at the outputs",
        )


def _best_effort(
    reporter: Reporter, write: Callable[[], None], then: str, what: str = "cannot save"
) -> None:
    """Write state a correct build does not need; a full or read-only disk is a warning,
    and never hides the error that may be on its way out."""
    try:
        write()
    except OSError as e:
        name = e.filename2 or e.filename  # symlink() and rename() name the target first
        path = f": {name}" if name else ""
        reporter.warning(f"{what} (got {e.strerror or e}{path}); {then}")


def _with_remote(local: LocalDiskCache, remote: RemoteOptions, reporter: Reporter) -> Cache:
    from strata.engine.cache.http import HttpCache
    from strata.engine.cache.tiered import TieredCache

    return TieredCache(local, HttpCache(remote, reporter.warning), remote)


def _report_remote(cache: Cache | None, reporter: Reporter) -> None:
    from strata.engine.cache.tiered import TieredCache

    if isinstance(cache, TieredCache):
        s = cache.remote.stats
        refused = [
            f"{n} {what} refused"
            for n, what in ((s.refused_reads, "reads"), (s.refused_uploads, "uploads"))
            if n
        ]
        reporter.info(
            f"remote cache: {cache.remote_hits} hits, {s.downloaded} bytes downloaded, "
            f"{s.uploaded} bytes uploaded, {s.requests} requests"
            + "".join(f", {r}" for r in refused)
        )
        cache.remote.close()
