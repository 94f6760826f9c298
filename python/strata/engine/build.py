"""One build command's execution half: from analysed actions to outputs on disk.

Glue between the output base (lock, stat cache, action log), the cache, the
executor and the scheduler, so the CLI and the tests drive the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from strata.canonical import json_bytes
from strata.engine.action import Action
from strata.engine.action_records import ActionRecords
from strata.engine.cache_local import LocalDiskCache
from strata.engine.digests import StatCache
from strata.engine.executor import DEFAULT_PATH, Executor
from strata.engine.graph import build_graph
from strata.engine.outputbase import OutputBase
from strata.engine.report import BuildStats, Reporter
from strata.engine.sandbox import choose as choose_sandbox
from strata.engine.sandbox import fallback_warning
from strata.engine.scheduler import ActionLog, BuildOptions, Scheduler
from strata.engine.workers import WorkerPool
from strata.fsutil import write_bytes_atomic

if TYPE_CHECKING:
    from strata.engine.cache import Cache
    from strata.engine.cache_http import RemoteOptions


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
) -> BuildStats:
    """Build the generated files `wanted` (execroot paths) under `base`'s lock.

    With `stat_cache`, the caller already holds the lock (it analysed under it,
    sharing the stat cache) and saves the stat cache itself.
    """
    if stat_cache is not None:
        return _execute_locked(base, actions, wanted, config, reporter, stat_cache)
    with base.locked(on_wait=LOCK_WAIT_MESSAGE):
        own = StatCache(base.stat_cache_file)
        try:
            return _execute_locked(base, actions, wanted, config, reporter, own)
        finally:
            own.save()


LOCK_WAIT_MESSAGE = "strata: another command holds the output base; waiting"


def _execute_locked(
    base: OutputBase,
    actions: Sequence[Action],
    wanted: Iterable[str],
    config: ExecutionConfig,
    reporter: Reporter,
    stat_cache: StatCache,
) -> BuildStats:
    namespace, why = choose_sandbox(config.sandbox)
    if namespace is None:
        reporter.warning(fallback_warning(why))
    graph = build_graph(actions)
    log = ActionLog(base.action_log_file)
    records = ActionRecords(base.action_records_file, base.execroot)
    cache: Cache | None = None
    if config.use_cache:
        cache = LocalDiskCache(config.disk_cache or base.default_disk_cache)
        if config.remote is not None:
            cache = _with_remote(cache, config.remote, reporter)
    wrap = None
    if namespace is not None:
        ns = namespace
        roots = (base.workspace, *config.repo_roots)
        wrap = lambda argv: ns.worker_command(base.root, roots, argv)  # noqa: E731
    workers = WorkerPool(
        base.execroot, {"PATH": DEFAULT_PATH}, enabled=config.options.workers, wrap=wrap
    )
    executor = Executor(
        base.execroot,
        base.sandbox_root,
        config.source_path or base.source_path,
        stat_cache,
        cache,
        workers=workers,
        namespace=namespace,
    )
    try:
        return Scheduler(graph, executor, reporter, config.options, log, records).build(wanted)
    finally:
        workers.close()
        if workers.failure:
            reporter.warning(
                f"strata's action worker stopped ({workers.failure}); its actions ran as "
                "processes (slower, same bytes); --noworkers skips the worker"
            )
        write_bytes_atomic(base.last_build_file, json_bytes(reporter.stats.to_json()))
        _report_remote(cache, reporter)
        log.save()
        records.save()
        base.link_convenience_symlink()


def _with_remote(local: LocalDiskCache, remote: RemoteOptions, reporter: Reporter) -> Cache:
    from strata.engine.cache_http import HttpCache
    from strata.engine.cache_tiered import TieredCache

    return TieredCache(local, HttpCache(remote, reporter.warning), remote)


def _report_remote(cache: Cache | None, reporter: Reporter) -> None:
    from strata.engine.cache_tiered import TieredCache

    if isinstance(cache, TieredCache):
        s = cache.remote.stats
        reporter.info(
            f"remote cache: {cache.remote_hits} hits, {s.downloaded} bytes downloaded, "
            f"{s.uploaded} bytes uploaded, {s.requests} requests"
        )
        cache.remote.close()
