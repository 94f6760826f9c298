"""Actions a remote hit made done while their outputs stay on the server.

With `--remote_download_outputs` toplevel (the default) or minimal, a remote
cache's hit is a `RemoteResult`: the action is done, and the digests of its
outputs key the actions after it, but nothing is downloaded. `LeftRemote`
keeps such actions (and those the action records show left so by an earlier
build) and brings their outputs down when something here needs the files: an
action about to run here that reads them (through in-process actions, which
link and lay out runfiles, too), and, at the end of the build, the outputs it
was asked for. The blobs come down several at a time (`Cache.prefetch`) and
each is checked against its sha256 as it is linked into place; the result is
then kept in the local cache, whose entries must have their blobs. A blob lost
or spoiled by then costs the cache's one warning and the action runs here, on
the spot (its own remote inputs first), and replaces the entry; a result that
differs from the entry's digests fails the build, since its dependents were
keyed with them. A REAPI key over inputs still remote is computed from their
recorded digests (`known`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from strata.engine.action import Action
from strata.engine.analysis.graph import ActionGraph
from strata.engine.cache import ActionResult, InvalidEntry
from strata.engine.execution.action_records import ActionRecords
from strata.engine.execution.actionkey import result_entries
from strata.engine.execution.executor import Executor
from strata.engine.execution.report import Reporter
from strata.engine.execution.running import Finished, Running
from strata.engine.execution.slots import Keyed
from strata.errors import UserError

Entries = dict[str, list[tuple[str, str, int, bool]]]


class LeftRemote:
    def __init__(
        self,
        graph: ActionGraph,
        executor: Executor,
        records: ActionRecords,
        reporter: Reporter,
        keyed: Callable[[int, str], Keyed],
        finish: Callable[[Keyed, Running], Finished],
    ) -> None:
        self.graph = graph
        self.executor = executor
        self.records = records
        self.reporter = reporter
        self._keyed = keyed
        """The key of action `i` with record key `rkey`, as the scheduler makes it."""
        self._finish = finish
        """The scheduler's end of a started action: outputs checked, stored, recorded."""
        self._left: dict[int, tuple[str, ActionResult]] = {}
        """Action index → (record key, result) of the actions whose outputs are remote."""

    def leave(self, i: int, rkey: str, result: ActionResult) -> None:
        self._left[i] = (rkey, result)

    def known(self, action: Action) -> Entries:
        """The REAPI input entries of `action`'s inputs still on the remote cache; an input
        they cannot stand for (a tree with symlinks) is brought down instead."""
        known = {}
        for path in action.inputs:
            j = self.graph.producer.get(path)
            if j is None or j not in self._left:
                continue
            entries = result_entries(path, self._left[j][1])
            if entries is None:
                self.bring_down([j])
            else:
                known[path] = entries
        return known

    def bring_down(self, indices: Iterable[int]) -> None:
        """Put in place the outputs left on the server of the actions `indices` and,
        through in-process actions (links, runfiles), of those they read."""
        if not self._left:
            return
        stack, seen, due = list(indices), set(), []
        while stack:
            d = stack.pop()
            if d in seen:
                continue
            seen.add(d)
            if d in self._left:
                due.append(d)
            elif self.graph.actions[d].kind != "run":
                stack.extend(self.graph.deps(d))
        if self.executor.cache is not None:  # the downloads overlap; each is checked as used
            blobs = {sha for d in due for sha in self._left[d][1].blob_digests()}
            self.executor.cache.prefetch(sorted(blobs))
        for d in due:
            left = self._left.pop(d, None)  # (one that ran meanwhile brought it down)
            if left is not None:
                self._materialize(d, *left)

    def _materialize(self, i: int, rkey: str, result: ActionResult) -> None:
        action = self.graph.actions[i]
        cache = self.executor.cache
        assert cache is not None  # (a remote hit came from it)
        try:
            if self.executor.outputs.materialize(result):
                self.records.put(action, rkey, result)
                cache.for_action(action).keep_local(self._keyed(i, rkey).key, result)
                return
            name = cache.name
            why = f"blob {self.executor.outputs.missing} could not be downloaded (a lost upload?)"
        except InvalidEntry as bad:
            name, why = bad.cache, bad.why
        self.reporter.cache_entry_ignored(action, name, why)
        # Run it now, here: its dependents wait for these files (it was reported a hit).
        self.bring_down(self.graph.deps(i))
        keyed = self._keyed(i, rkey)
        self.records.forget(action)
        running = self.executor.start(action)
        self.reporter.action_started(i, action)
        finished = self._finish(keyed, running)
        self.reporter.action_rerun(i, action, finished.output)
        if finished.result != result:
            raise UserError(
                f"{action.mnemonic} wrote other bytes here than the remote cache's entry "
                "for it (its blobs were lost, so it ran again, and it is not reproducible); "
                "build again: the entry is replaced now",
                where=action.owner,
            )
