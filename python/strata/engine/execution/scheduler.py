"""Running the part of the action graph a build needs, in dependency order, in parallel.

One loop, no threads: a ready queue of actions whose inputs exist; each is
first tried against the cache (key → action result → outputs from CAS), then
started as a subprocess while fewer than `jobs` are running. The loop sleeps
in `select` on pidfds until some process exits, collects it, and releases its
dependents. The first failure stops the build (running actions are killed)
unless `keep_going`, which builds everything not downstream of a failure.

Before any cache is asked, the action records (action_records.py) may show
an action done: its key and its outputs are as the last build left them.

The action log (action_log.py) keeps what `--explain` compares, and the last
result of each action no cache may hold.
"""

from __future__ import annotations

import contextlib
import functools
import os
import selectors
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from strata.canonical import json_bytes
from strata.engine.action import Action
from strata.engine.analysis.graph import ActionGraph
from strata.engine.cache import ActionResult, Cache, InvalidEntry
from strata.engine.cache.result_check import validate_result
from strata.engine.digests import NotAFile, tree_digest
from strata.engine.execution.action_log import ActionLog
from strata.engine.execution.action_records import ActionRecords
from strata.engine.execution.actionkey import (
    action_key_of,
    explain_difference,
    key_material,
    reapi_action_key,
    record_key,
)
from strata.engine.execution.executor import Executor
from strata.engine.execution.report import BuildStats, Reporter
from strata.engine.execution.running import Running
from strata.engine.execution.source_digests import SourceDigests, source_digest
from strata.errors import UserError, environment_error, shorten

_BATCH = 64
"""Sources per task of the digest threads: actions with fewer are batched until they
reach it (one task per action cost more than a no-op's stats for small ones); one
with more has a task of its own, so no small action waits for a large one's hashing."""


@dataclass(frozen=True)
class BuildOptions:
    jobs: int = 4
    keep_going: bool = False
    verbose_failures: bool = False
    action_keys: str = "strata"
    """`reapi`: key actions by their REAPI Action digest, as Bazel does (see actionkey.py)."""
    workers: bool = True
    """Run `strata action` command lines in a preloaded worker (strata.engine.execution.workers)."""


class BuildFailed(UserError):
    """Raised after `--keep_going` built what it could; each failure was already reported."""


@dataclass
class _Slot:
    index: int
    running: Running
    pidfd: int
    material: bytes
    """Its key material, encoded (canonical JSON), for the action log."""
    key: str
    """The key the cache knows the action by (`--action_keys`)."""
    record_key: str
    """The key the action records know it by."""


def _machine_failure(err: OSError, action: Action) -> UserError:
    """A full disk or a too-long output path, as the failure of the action it stopped;
    any other OSError is a bug and goes on up."""
    found = environment_error(err, where=action.owner)
    if found is None:
        raise err
    return found


class Scheduler:
    def __init__(
        self,
        graph: ActionGraph,
        executor: Executor,
        reporter: Reporter,
        options: BuildOptions,
        action_log: ActionLog,
        records: ActionRecords | None = None,
    ) -> None:
        self.graph = graph
        self.executor = executor
        self.reporter = reporter
        self.options = options
        self.log = action_log
        self.records = records if records is not None else ActionRecords(None, executor.execroot)
        self.digests: dict[str, str] = {}
        """Digest of every input path seen so far (sha256, or tree digest)."""
        self._sources: SourceDigests | None = None

    def build(self, wanted: Iterable[str]) -> BuildStats:
        """Produce the generated files in `wanted` (execroot paths); raises on failure."""
        order = self.graph.closure(wanted)
        waiting = {i: set(self.graph.deps(i)) for i in order}
        dependents: dict[int, list[int]] = {i: [] for i in order}
        for i in order:
            for d in waiting[i]:
                dependents[d].append(i)
        ready = deque(i for i in order if not waiting[i])
        slots: dict[int, _Slot] = {}
        failures: list[UserError] = []
        self.reporter.build_started(len(order))
        early = self.executor.early_worker(self.graph, order)
        self._sources = self._digest_sources_ahead(
            [*ready, *order], early.source_changed if early is not None else None
        )

        def done(i: int, result: ActionResult) -> None:
            if early is not None:
                early.finished(i)
            for f in result.files:
                self.digests[f.path] = f.sha256
            for t in result.trees:
                self.digests[t.path] = tree_digest(
                    sorted(
                        [(f.path, f.sha256, f.size, f.executable) for f in t.files]
                        + [(sl.path, "symlink:" + sl.target, 0, False) for sl in t.symlinks]
                    )
                )
            for j in dependents[i]:
                waiting[j].discard(i)
                if not waiting[j]:
                    ready.append(j)

        def failed(i: int, err: UserError) -> None:
            self.reporter.action_finished(i, self.graph.actions[i], "failed")
            failures.append(err)
            if self.options.keep_going:
                self.reporter.error(str(err))

        try:
            while ready or slots:
                while ready and len(slots) < max(1, self.options.jobs):
                    if failures and not self.options.keep_going:
                        break
                    i = ready.popleft()
                    try:
                        outcome = self._begin(i)
                    except UserError as err:
                        failed(i, err)
                        continue
                    except OSError as err:
                        failed(i, _machine_failure(err, self.graph.actions[i]))
                        continue
                    if isinstance(outcome, _Slot):
                        slots[outcome.pidfd] = outcome
                    else:
                        done(i, outcome)
                if failures and not self.options.keep_going:
                    break
                if slots:
                    slot = slots.pop(self._wait_any(slots))
                    try:
                        result = self._end(slot)
                    except UserError as err:
                        failed(slot.index, err)
                        continue
                    except OSError as err:
                        failed(slot.index, _machine_failure(err, slot.running.action))
                        continue
                    done(slot.index, result)
        finally:
            self._kill(self.executor, slots)
            self._sources.close()
            self._sources = None
            self.reporter.build_finished()
        if failures and not self.options.keep_going:
            raise failures[0]
        if failures:
            raise BuildFailed(
                f"build did not complete (got {len(failures)} failed actions); "
                "fix the errors reported above",
                where="strata build",
            )
        return self.reporter.stats

    # -- one action ------------------------------------------------------------

    def _digest_sources_ahead(
        self, order: Iterable[int], on_change: Callable[[], object] | None
    ) -> SourceDigests:
        """Hand every action's sources to the digest threads, in the order we will need them."""
        sources = SourceDigests(
            self.executor.stat_cache,
            self.executor.source_path,
            max(2, self.options.jobs),
            on_change,
        )
        seen = set(self.digests)
        visited: set[int] = set()
        batch: list[int] = []
        paths: list[str] = []
        for i in order:
            if i in visited:
                continue
            visited.add(i)
            todo = [p for p in self.graph.sources_of(i) if p not in seen]
            if not todo:
                continue
            seen.update(todo)
            if len(todo) >= _BATCH:  # a large action gets a task of its own
                if paths:
                    sources.submit(batch, paths)
                    batch, paths = [], []
                sources.submit([i], todo)
                continue
            batch.append(i)
            paths.extend(todo)
            if len(paths) >= _BATCH:
                sources.submit(batch, paths)
                batch, paths = [], []
        if paths:
            sources.submit(batch, paths)
        return sources

    def _input_digests(self, i: int, action: Action) -> dict[str, str]:
        """The digest of every input of `action` (and of every input seen so far)."""
        digests = self.digests
        # a source is digested once a build (as Bazel does); outputs as produced
        ahead = self._sources.take(i) if self._sources is not None else {}
        for path, digest in ahead.items():
            if digest is not None:
                digests[path] = digest
        for path in self.graph.sources_of(i):
            if path in digests:
                continue
            # not digested ahead, or missing then: digest now, or say why not
            real = self.executor.source_path(path)
            try:
                digests[path] = source_digest(real, self.executor.stat_cache)
            except NotAFile as e:
                inside = os.path.relpath(e.path, real) if e.path != os.fspath(real) else ""
                got = f"{path}/{inside}" if inside else path
                raise UserError(
                    f"{action.mnemonic} has a source that is {e.kind}, not a regular file "
                    f"(got {shorten(got)}); only regular files, directories and symlinks "
                    "to them are read: replace it with a file or remove it from the inputs",
                    where=action.owner,
                ) from None
            except (FileNotFoundError, NotADirectoryError):
                raise UserError(
                    f"{action.mnemonic} needs a source file that does not exist "
                    f"(got {shorten(path)}); create it or remove it from the rule's inputs",
                    where=action.owner,
                ) from None
            except OSError as e:
                raise UserError(
                    f"{action.mnemonic} cannot read a source file (got {shorten(path)}: "
                    f"{e.strerror or e}); make it a readable file with a shorter path",
                    where=action.owner,
                ) from None
        return digests

    def _cache_for(self, action: Action) -> Cache | None:
        """The cache `action` may use, as the cache itself says (its tags may narrow it)."""
        cache = self.executor.cache
        return None if cache is None else cache.for_action(action)

    def _begin(self, i: int) -> ActionResult | _Slot:
        action = self.graph.actions[i]
        digests = self._input_digests(i, action)
        rkey = record_key(action, digests)
        cache = self._cache_for(action)
        cacheable = cache is not None and "no-cache" not in action.tags
        # (a symlink's key covers its target's bytes only when the target is an input)
        recordable = cacheable and (
            action.kind != "symlink" or action.symlink_target in action.inputs
        )
        if recordable:
            recorded = self.records.current(action, rkey)
            if recorded is not None:  # done: key and outputs as the last build left them
                self.executor.outputs.up_to_date(recorded)
                how = "cache_hit" if action.kind == "run" else "in_process"
                self.reporter.action_finished(i, action, how)
                return recorded
        if action.kind != "run":
            if action.kind == "symlink":
                target = action.symlink_target
                if target not in self.digests:
                    real = self.executor.input_path(target)
                    with contextlib.suppress(OSError):
                        self.digests[target] = self.executor.stat_cache.digest(real).sha256
            result = self.executor.outputs.run_in_process(action, self.digests)
            if recordable:
                self.records.put(action, rkey, result)
            self.reporter.action_finished(i, action, "in_process")
            return result
        # the material is made only for actions that run, and encoded once: for the key and
        # for the action log (a closure's largest actions have tens of thousands of inputs)
        material = key_material(action, digests)
        encoded = json_bytes(material)
        if self.options.action_keys == "reapi":
            key = reapi_action_key(action, self.executor.input_path, self.executor.stat_cache)
        else:
            key = action_key_of(encoded)
        cached: ActionResult | None = None
        try:
            if cache is not None and cacheable:
                self.reporter.action_looked_up(i, action)
                # The one place a cached result is accepted: every backend applies this check
                # before it returns a result or copies it into the local cache.
                cached = cache.get_action_result(key, functools.partial(validate_result, action))
            if cached is not None and self.executor.outputs.materialize(cached):
                self.records.put(action, rkey, cached)
                self.reporter.action_finished(i, action, "cache_hit")
                self.log.put(action, encoded)
                return cached
            if not cacheable:
                kept = self.log.uncached_result(action, key)
                if kept is not None and self.executor.outputs.in_place(kept):
                    self.executor.outputs.up_to_date(kept)
                    self.reporter.action_finished(i, action, "up_to_date")
                    return kept
            explaining = self.reporter.explain_enabled
            reasons = self._reasons(action, material, cached, cacheable) if explaining else []
        except InvalidEntry as bad:
            self.reporter.cache_entry_ignored(action, bad.cache, bad.why)
            reasons = [f"the {bad.cache} entry is invalid ({bad.why})"]
        self.reporter.explain(action, reasons)
        self.records.forget(action)  # its outputs are about to be replaced
        running = self.executor.start(action)
        self.reporter.action_started(i, action)
        return _Slot(i, running, running.pidfd(), encoded, key, rkey)

    def _reasons(
        self, action: Action, material: dict[str, Any], cached: ActionResult | None, cacheable: bool
    ) -> list[str]:
        if not cacheable:
            previous = self.log.get(action)
            changed = explain_difference(previous, material) if previous else []
            return [
                "caching is off for this action (no-cache tag or no cache)",
                *(changed or ["no earlier run with its outputs in place"]),
            ]
        if cached is not None:
            return ["cache entry found but an output blob is missing"]
        previous = self.log.get(action)
        if previous is None:
            return ["no cache entry and no earlier run recorded"]
        reasons = explain_difference(previous, material)
        return reasons or ["no cache entry for an unchanged action (cache cleared?)"]

    def _end(self, slot: _Slot) -> ActionResult:
        action = slot.running.action
        try:
            finished = self.executor.finish(slot.running, verbose=self.options.verbose_failures)
        finally:
            os.close(slot.pidfd)
        cache = self._cache_for(action)
        if cache is not None and "no-cache" not in action.tags:
            cache.put_action_result(slot.key, finished.result)
            self.records.put(action, slot.record_key, finished.result)
        else:
            self.log.put_uncached_result(action, slot.key, finished.result)
        self.log.put(action, slot.material)
        self.reporter.stats.note_process(action.owner, finished.in_worker, finished.maxrss_kib)
        self.reporter.action_finished(slot.index, action, "executed", finished.output)
        return finished.result

    @staticmethod
    def _wait_any(slots: dict[int, _Slot]) -> int:
        """Block until one running action exits; returns its pidfd."""
        with selectors.DefaultSelector() as sel:
            for fd in slots:
                sel.register(fd, selectors.EVENT_READ)
            events = sel.select()
        return events[0][0].fd

    @staticmethod
    def _kill(executor: Executor, slots: dict[int, _Slot]) -> None:
        for slot in slots.values():
            executor.abandon(slot.running)
            os.close(slot.pidfd)
        slots.clear()
