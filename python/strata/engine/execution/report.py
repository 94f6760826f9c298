"""The one reporter: everything a build tells the user goes through here.

Engine modules never print; they call a `Reporter`. On a terminal it keeps a
single status line (`[done/total] running: Mnemonic //label, ...`) rewritten
in place; elsewhere (CI logs, pipes) it stays quiet except for what matters:
action output, warnings, `--explain` lines, failures and the final summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TextIO

from strata.engine.action import Action
from strata.engine.execution.trace_profile import TraceProfile

_EXPLAIN_REASONS = 5
"""Reasons shown per action: editing a tool's sources changes hundreds of inputs at once."""


@dataclass
class BuildStats:
    total: int = 0
    executed: int = 0
    cache_hits: int = 0
    up_to_date: int = 0
    """Actions no cache may hold (`no-cache`) whose last outputs are still in place."""
    in_process: int = 0
    failed: int = 0
    invalid_cache_entries: int = 0
    """Cache entries ignored because they were unusable (see `Reporter.cache_entry_ignored`)."""
    executed_labels: list[str] = field(default_factory=list)
    in_worker: int = 0
    """Executed actions that ran in a preloaded strata worker (strata.engine.execution.workers)."""
    max_action_rss_kib: int = 0
    max_action_rss_owner: str = ""
    """The action with the largest peak RSS among those whose RSS is known (worker-run)."""

    def note_process(self, owner: str, in_worker: bool, maxrss_kib: int) -> None:
        self.in_worker += in_worker
        if maxrss_kib > self.max_action_rss_kib:
            self.max_action_rss_kib = maxrss_kib
            self.max_action_rss_owner = owner

    def to_json(self) -> dict[str, int | str]:
        """What `<output_base>/last_build.json` records (tools/bench reads it)."""
        return {
            "total": self.total,
            "executed": self.executed,
            "cache_hits": self.cache_hits,
            "up_to_date": self.up_to_date,
            "in_process": self.in_process,
            "in_worker": self.in_worker,
            "failed": self.failed,
            "max_action_rss_kib": self.max_action_rss_kib,
            "max_action_rss_owner": self.max_action_rss_owner,
        }

    def summary(self) -> str:
        text = f"{self.total} actions: {self.executed} executed, {self.cache_hits} cache hits"
        if self.up_to_date:
            text += f", {self.up_to_date} up to date"
        if self.in_process:
            text += f", {self.in_process} in-process"
        if self.failed:
            text += f", {self.failed} failed"
        if self.invalid_cache_entries:
            text += f", {self.invalid_cache_entries} invalid cache entries ignored"
        return text


class Reporter:
    def __init__(
        self,
        stream: TextIO,
        *,
        tty: bool | None = None,
        explain: bool = False,
        profile: TraceProfile | None = None,
    ) -> None:
        self.stream = stream
        self.profile = profile
        """`--profile`: where started actions' spans are kept."""
        self.tty = stream.isatty() if tty is None else tty
        self.explain_enabled = explain
        self.stats = BuildStats()
        self.failed: set[str] = set()
        """The first output of every action that failed (`--keep_going` builds on)."""
        self._done = 0
        self._running: dict[int, Action] = {}
        self._status_shown = False
        self._warned_caches: set[str] = set()

    # -- status line -----------------------------------------------------------

    def _clear(self) -> None:
        if self._status_shown:
            self.stream.write("\r\x1b[K")
            self._status_shown = False

    def _status(self) -> None:
        if not self.tty:
            return
        running = ", ".join(f"{a.mnemonic} {a.owner}" for a in list(self._running.values())[:3])
        more = len(self._running) - 3
        if more > 0:
            running += f" (+{more})"
        if not running:
            self._clear()
            return
        line = f"[{self._done}/{self.stats.total}] {running}"
        self.stream.write("\r\x1b[K" + line[:200])
        self.stream.flush()
        self._status_shown = True

    def _line(self, text: str) -> None:
        self._clear()
        self.stream.write(text.rstrip("\n") + "\n")
        self.stream.flush()
        self._status()

    # -- events ----------------------------------------------------------------

    def build_started(self, total: int) -> None:
        self.stats.total = total
        self._status()

    def action_looked_up(self, action_id: int, action: Action) -> None:
        """The caches are asked for the action's result (it may run next)."""
        if self.profile is not None:
            self.profile.action_started(action_id, f"{action.mnemonic} {action.owner}")

    def action_started(self, action_id: int, action: Action) -> None:
        self._running[action_id] = action
        if self.profile is not None:
            self.profile.action_started(action_id, f"{action.mnemonic} {action.owner}")
        self._status()

    def action_finished(self, action_id: int, action: Action, how: str, output: str = "") -> None:
        """`how` is `executed`, `cache_hit`, `up_to_date`, `in_process` or `failed`."""
        self._running.pop(action_id, None)
        if self.profile is not None:
            self.profile.action_finished(action_id, how)
        self._done += 1
        if how == "executed":
            self.stats.executed += 1
            self.stats.executed_labels.append(f"{action.owner} {action.mnemonic}")
        elif how == "cache_hit":
            self.stats.cache_hits += 1
        elif how == "up_to_date":
            self.stats.up_to_date += 1
        elif how == "in_process":
            self.stats.in_process += 1
        elif how == "failed":
            self.stats.failed += 1
            self.failed.add(action_identity(action))
        if output.strip():
            self._line(f"INFO: From {action.progress_message or action.mnemonic}:\n{output}")
        else:
            self._status()

    def explain(self, action: Action, reasons: list[str]) -> None:
        if self.explain_enabled:
            first = (action.outputs + action.output_dirs + ("",))[0]
            shown = reasons[:_EXPLAIN_REASONS]
            more = len(reasons) - len(shown)
            why = "; ".join(shown) + (f"; and {more} more" if more else "")
            self._line(f"explain: {action.owner} {action.mnemonic} {first}: {why}")

    def action_rerun(self, action_id: int, action: Action, output: str = "") -> None:
        """An action reported a cache hit has run after all (the hit's blobs were gone when
        its outputs were needed): count it as executed."""
        self.stats.cache_hits -= 1
        self._done -= 1
        self.action_finished(action_id, action, "executed", output)

    def cache_entry_ignored(self, action: Action, cache: str, why: str) -> None:
        """One warning per cache a build; later ones are only counted in the summary."""
        self.stats.invalid_cache_entries += 1
        if cache in self._warned_caches:
            return
        self._warned_caches.add(cache)
        self.warning(
            f"{cache}: ignored an invalid action result for {action.owner} ({why}); "
            "it will be rebuilt (further invalid entries are counted in the summary); "
            "if this repeats, clear the cache and check who else writes to it"
        )

    def error(self, text: str) -> None:
        self._line(f"error: {text}")

    def warning(self, text: str) -> None:
        self._line(f"warning: {text}")

    def info(self, text: str) -> None:
        self._line(text)

    def build_finished(self) -> None:
        self._running.clear()
        self._line(self.stats.summary())


def action_identity(action: Action) -> str:
    """An action named by its first output (`Reporter.failed`)."""
    return str((action.outputs + action.output_dirs + ("",))[0])
