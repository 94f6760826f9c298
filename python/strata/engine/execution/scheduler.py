"""Running the part of the action graph a build needs, in dependency order, in parallel.

One loop: a ready queue of actions whose inputs exist; each is first tried
against the cache (key → action result → outputs from CAS), then started as
a subprocess while fewer than `jobs` are running or being looked up. A
lookup that may wait on a network (a remote cache: `Cache.lookups_wait`)
runs on a thread of its own and holds a job slot meanwhile, so downloads of
several actions' outputs overlap each other, the source digests and the
actions that run. The loop sleeps in `select` on pidfds and on the lookups'
pipes until some process exits or some lookup ends, and handles it on the
loop's own thread: only lookups run elsewhere. Then it releases the action's
dependents. The first failure stops the build (running actions are killed)
unless `keep_going`, which builds everything not downstream of a failure.

Before any cache is asked, the action records (action_records.py) may show
an action done: its key and its outputs are as the last build left them.

A remote hit may leave its outputs on the server (`RemoteResult`): the
action is done, and `LeftRemote` (left_remote.py) brings its files down when
something here needs them.

The action log (action_log.py) keeps what `--explain` compares, and the last
result of each action no cache may hold.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from strata.canonical import json_bytes
from strata.engine.action import Action
from strata.engine.analysis.graph import ActionGraph
from strata.engine.cache import ActionResult, Cache, InvalidEntry, RemoteResult
from strata.engine.cache.result_check import validate_result
from strata.engine.digests import tree_digest
from strata.engine.execution.action_log import ActionLog, miss_reasons
from strata.engine.execution.action_records import ActionRecords
from strata.engine.execution.actionkey import (
    action_key_of,
    key_material,
    reapi_action_key,
    record_key,
)
from strata.engine.execution.executor import Executor
from strata.engine.execution.left_remote import LeftRemote
from strata.engine.execution.report import BuildStats, Reporter
from strata.engine.execution.running import Finished, Running
from strata.engine.execution.slots import Keyed, Lookup, Lookups, Process, Slot, wait_any
from strata.engine.execution.source_digests import (
    SourceDigests,
    action_source_digest,
    digest_ahead,
)
from strata.errors import UserError, environment_error


@dataclass(frozen=True)
class BuildOptions:
    jobs: int = 4
    keep_going: bool = False
    verbose_failures: bool = False
    action_keys: str = "strata"
    """`reapi`: key actions by their REAPI Action digest, as Bazel does (see actionkey.py)."""
    workers: bool = True
    """Run `strata action` command lines in a preloaded worker (strata.engine.execution.workers)."""
    download_outputs: str = "toplevel"
    """`--remote_download_outputs`: "minimal" leaves asked-for outputs remote too; "all"
    also brings down those an earlier build left there (see left_remote.py)."""


class BuildFailed(UserError):
    """Raised after `--keep_going` built what it could; each failure was already reported."""


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
        self._lookups = Lookups(max(1, options.jobs))
        """One build per scheduler: `build` closes it."""
        self._remote = LeftRemote(
            graph,
            executor,
            self.records,
            reporter,
            lambda i, rkey: self._keyed(i, graph.actions[i], self.digests, rkey, True),
            self._finished,
        )
        """Actions done whose outputs are still on the remote cache only."""

    def build(self, wanted: Iterable[str]) -> BuildStats:
        """Produce the generated files in `wanted` (execroot paths); raises on failure."""
        wanted = list(wanted)
        order = self.graph.closure(wanted)
        waiting = {i: set(self.graph.deps(i)) for i in order}
        dependents: dict[int, list[int]] = {i: [] for i in order}
        for i in order:
            for d in waiting[i]:
                dependents[d].append(i)
        ready = deque(i for i in order if not waiting[i])
        slots: dict[int, Slot] = {}
        failures: list[UserError] = []
        left = set(order)
        self.reporter.build_started(len(order))
        early = self.executor.early_worker(self.graph, order)
        self._sources = digest_ahead(
            self.graph.sources_of,
            [*ready, *order],
            set(self.digests),
            SourceDigests(
                self.executor.stat_cache,
                self.executor.source_path,
                max(2, self.options.jobs),
                early.source_changed if early is not None else None,
            ),
        )

        def done(i: int, result: ActionResult) -> None:
            left.discard(i)
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

        def settle(i: int, step: Callable[[], ActionResult | Slot]) -> None:
            """Take action `i` one step on: done, failed, or holding a job slot."""
            try:
                outcome = step()
            except UserError as err:
                failed(i, err)
            except OSError as err:
                failed(i, _machine_failure(err, self.graph.actions[i]))
            else:
                if isinstance(outcome, (Process, Lookup)):
                    slots[outcome.fd] = outcome
                else:
                    done(i, outcome)

        try:
            while ready or slots:
                while ready and len(slots) < max(1, self.options.jobs):
                    if failures and not self.options.keep_going:
                        break
                    i = ready.popleft()
                    settle(i, functools.partial(self._begin, i))
                if failures and not self.options.keep_going:
                    break
                if slots:
                    slot = slots[wait_any(slots)]
                    if isinstance(slot, Process):
                        del slots[slot.fd]
                        settle(slot.index, functools.partial(self._end, slot))
                        continue
                    for due in self._lookups.ended(slot):
                        # each fd closed just before its action may start and get it back
                        # as its pidfd: the later ones' fds are still open, so still theirs
                        os.close(slots.pop(due.fd).fd)
                        settle(due.index, functools.partial(self._looked_up, due))
            if not failures and self.options.download_outputs != "minimal":
                producer = self.graph.producer
                self._remote.bring_down({producer[p] for p in wanted if p in producer})
        finally:
            self._kill(self.executor, slots)
            self._lookups.close()
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
        if left:  # a slot lost: a bug, never an up-to-date build
            raise RuntimeError(f"{len(left)} actions were neither run nor found done")
        return self.reporter.stats

    # -- one action ------------------------------------------------------------

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
            digests[path] = action_source_digest(
                action, path, self.executor.source_path(path), self.executor.stat_cache
            )
        return digests

    def _cache_for(self, action: Action) -> Cache | None:
        """The cache `action` may use, as the cache itself says (its tags may narrow it)."""
        cache = self.executor.cache
        return None if cache is None else cache.for_action(action)

    def _begin(self, i: int) -> ActionResult | Slot:
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
                if self.records.is_remote(action):  # left on the server by an earlier build
                    self._remote.leave(i, rkey, recorded)
                    if self.options.download_outputs == "all":
                        self._remote.bring_down([i])
                else:
                    self.executor.outputs.up_to_date(recorded)
                how = "cache_hit" if action.kind == "run" else "in_process"
                self.reporter.action_finished(i, action, how)
                return recorded
        if action.kind != "run":
            self._remote.bring_down(self.graph.deps(i))
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
        keyed = self._keyed(i, action, digests, rkey, cacheable)
        if cache is None or not cacheable:
            return self._after_lookup(keyed, None)
        self.reporter.action_looked_up(i, action)
        # The one place a cached result is accepted: every backend applies this check
        # before it returns a result or copies it into the local cache.
        check = functools.partial(validate_result, action)
        if cache.lookups_wait:
            return self._lookups.ask(keyed, cache, check)
        try:
            cached = cache.get_action_result(keyed.key, check)
        except InvalidEntry as bad:
            return self._after_lookup(keyed, bad)
        return self._after_lookup(keyed, cached)

    def _keyed(
        self, i: int, action: Action, digests: dict[str, str], rkey: str, cacheable: bool
    ) -> Keyed:
        # the material is made only for actions that run, and encoded once: for the key and
        # for the action log (a closure's largest actions have tens of thousands of inputs)
        material = key_material(action, digests)
        encoded = json_bytes(material)
        if self.options.action_keys == "reapi":
            key = reapi_action_key(
                action,
                self.executor.input_path,
                self.executor.stat_cache,
                self._remote.known(action),
            )
        else:
            key = action_key_of(encoded)
        return Keyed(i, material, encoded, key, rkey, cacheable)

    def _looked_up(self, lookup: Lookup) -> ActionResult | Process:
        """A lookup thread has ended: use what it found, or start the action."""
        try:
            cached = lookup.future.result()
        except InvalidEntry as bad:
            return self._after_lookup(lookup.keyed, bad)
        return self._after_lookup(lookup.keyed, cached)

    def _after_lookup(
        self, keyed: Keyed, found: ActionResult | RemoteResult | InvalidEntry | None
    ) -> ActionResult | Process:
        """What the cache gave (a result, nothing or an invalid entry): its outputs put in
        place (or left on the server), or the action started."""
        i = keyed.index
        action = self.graph.actions[i]
        try:
            if isinstance(found, InvalidEntry):
                raise found
            if isinstance(found, RemoteResult):
                self.executor.outputs.clear(found.result)  # no earlier build's files remain
                self.records.put_remote(action, keyed.record_key, found.result)
                self._remote.leave(i, keyed.record_key, found.result)
                self.reporter.action_finished(i, action, "cache_hit")
                self.log.put(action, keyed.encoded)
                return found.result
            if found is not None and self.executor.outputs.materialize(found):
                self.records.put(action, keyed.record_key, found)
                self.reporter.action_finished(i, action, "cache_hit")
                self.log.put(action, keyed.encoded)
                return found
            if not keyed.cacheable:
                kept = self.log.uncached_result(action, keyed.key)
                if kept is not None and self.executor.outputs.in_place(kept):
                    self.executor.outputs.up_to_date(kept)
                    self.reporter.action_finished(i, action, "up_to_date")
                    return kept
            explaining = self.reporter.explain_enabled
            reasons = (
                miss_reasons(self.log, action, keyed.material, found, keyed.cacheable)
                if explaining
                else []
            )
        except InvalidEntry as bad:
            self.reporter.cache_entry_ignored(action, bad.cache, bad.why)
            reasons = [f"the {bad.cache} entry is invalid ({bad.why})"]
        self.reporter.explain(action, reasons)
        self.records.forget(action)  # its outputs are about to be replaced
        self._remote.bring_down(self.graph.deps(i))
        running = self.executor.start(action)
        self.reporter.action_started(i, action)
        return Process(keyed, running, running.pidfd())

    def _end(self, slot: Process) -> ActionResult:
        try:
            finished = self._finished(slot.keyed, slot.running)
        finally:
            os.close(slot.fd)
        self.reporter.action_finished(slot.index, slot.running.action, "executed", finished.output)
        return finished.result

    def _finished(self, keyed: Keyed, running: Running) -> Finished:
        """A started action's end: its outputs checked, stored, recorded and logged."""
        action = running.action
        finished = self.executor.finish(running, verbose=self.options.verbose_failures)
        cache = self._cache_for(action)
        if cache is not None and "no-cache" not in action.tags:
            cache.put_action_result(keyed.key, finished.result)
            self.records.put(action, keyed.record_key, finished.result)
        else:
            self.log.put_uncached_result(action, keyed.key, finished.result)
        self.log.put(action, keyed.encoded)
        self.reporter.stats.note_process(action.owner, finished.in_worker, finished.maxrss_kib)
        return finished

    @staticmethod
    def _kill(executor: Executor, slots: dict[int, Slot]) -> None:
        """Stop the running actions; lookups under way are left to `Lookups.close`."""
        for fd, slot in slots.items():
            if isinstance(slot, Process):
                executor.abandon(slot.running)
            os.close(fd)
        slots.clear()
