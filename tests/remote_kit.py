"""A build of a list of actions through the engine, with or without a remote cache (the
remote-cache tests): its stats, its log and its output base."""

from __future__ import annotations

import io
from pathlib import Path

from strata.engine.action import Action
from strata.engine.build import ExecutionConfig, execute
from strata.engine.cache.http import RemoteOptions
from strata.engine.execution.report import BuildStats, Reporter
from strata.engine.execution.scheduler import BuildOptions
from strata.engine.outputbase import OutputBase


def build(
    ws: Path,
    out: Path,
    actions: list[Action],
    remote: RemoteOptions | None,
    *,
    keys: str = "strata",
    jobs: int = 2,
    reporter: Reporter | None = None,
) -> tuple[BuildStats, str, OutputBase]:
    """The build of every output of `actions` in the output base `out/base`, its disk cache
    `out/disk`; the log is what `reporter` (by default a new one) was given to print."""
    stream = io.StringIO()
    base = OutputBase(out / "base", ws)
    config = ExecutionConfig(
        BuildOptions(jobs=jobs, action_keys=keys), disk_cache=out / "disk", remote=remote
    )
    wanted = [o for a in actions for o in a.outputs + a.output_dirs]
    stats = execute(base, actions, wanted, config, reporter or Reporter(stream, tty=False))
    return stats, stream.getvalue(), base
