"""One build command's execution half: from analysed actions to outputs on disk.

Glue between the output base (lock, stat cache, action log), the cache, the
executor and the scheduler, so the CLI and the tests drive the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from strata.engine.action import Action
from strata.engine.cache_local import LocalDiskCache
from strata.engine.digests import StatCache
from strata.engine.executor import Executor
from strata.engine.graph import build_graph
from strata.engine.outputbase import OutputBase
from strata.engine.report import BuildStats, Reporter
from strata.engine.scheduler import ActionLog, BuildOptions, Scheduler


@dataclass(frozen=True)
class ExecutionConfig:
    options: BuildOptions
    disk_cache: Path | None = None
    """Defaults to `<output_base>/cache`."""
    use_cache: bool = True
    source_path: Callable[[str], Path] | None = None
    """Maps a source execroot path to its file; defaults to `OutputBase.source_path`."""


def execute(
    base: OutputBase,
    actions: Sequence[Action],
    wanted: Iterable[str],
    config: ExecutionConfig,
    reporter: Reporter,
) -> BuildStats:
    """Build the generated files `wanted` (execroot paths) under `base`'s lock."""
    graph = build_graph(actions)
    with base.locked(on_wait="strata: another command holds the output base; waiting"):
        stat_cache = StatCache(base.stat_cache_file)
        log = ActionLog(base.action_log_file)
        cache = None
        if config.use_cache:
            cache = LocalDiskCache(config.disk_cache or base.default_disk_cache)
        executor = Executor(
            base.execroot,
            base.sandbox_root,
            config.source_path or base.source_path,
            stat_cache,
            cache,
        )
        try:
            return Scheduler(graph, executor, reporter, config.options, log).build(wanted)
        finally:
            stat_cache.save()
            log.save()
            base.link_convenience_symlink()
