"""The action log: what each action's last run was keyed on, for `--explain`.

It keeps the key material of the last run of every action
(by owner, mnemonic and first output) so `--explain` can say what changed.
It is read only when some action has to run or to come from the cache, and
holds each entry as compressed canonical JSON: a closure's 1,200 actions
name 235,000 inputs, whose paths and digests repeat from action to action.
For an action no cache may hold (tagged `no-cache`, e.g. an image whose
`created` is "now"), it also keeps the key and result of the last run: while
the key is the same and those outputs are still in place, the action is up
to date and does not run again, as with Bazel's action cache. `strata clean`
deletes the log, so the next build runs it afresh, as after `bazel clean`.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import zlib
from pathlib import Path
from typing import Any

from strata.canonical import json_bytes
from strata.engine.action import Action
from strata.engine.cache import ActionResult
from strata.engine.execution.action_records import identity
from strata.engine.execution.actionkey import explain_difference
from strata.fsutil import write_bytes_atomic


class ActionLog:
    """Last key material per action identity, persisted in the output base for `--explain`;
    and the last result of each action that no cache may hold."""

    _FORMAT = 2

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._entries: dict[str, bytes] | None = None
        """identity -> zlib of the material's canonical JSON; read on first use."""
        self._uncached: dict[str, tuple[str, bytes]] = {}
        """identity -> (key, zlib of the result's JSON) of a `no-cache` action's last run."""
        self._dirty = False

    @staticmethod
    def identity(action: Action) -> str:
        return identity(action)

    def _loaded(self) -> dict[str, bytes]:
        if self._entries is None:
            self._entries = {}
            if self._path is not None:
                with contextlib.suppress(OSError, EOFError, pickle.UnpicklingError, ValueError):
                    raw = pickle.loads(self._path.read_bytes())
                    if isinstance(raw, tuple) and len(raw) == 3 and raw[0] == self._FORMAT:
                        self._entries = raw[1] if isinstance(raw[1], dict) else {}
                        self._uncached = {
                            **(raw[2] if isinstance(raw[2], dict) else {}),
                            **self._uncached,
                        }
        return self._entries

    def get(self, action: Action) -> dict[str, Any] | None:
        packed = self._loaded().get(identity(action))
        if packed is None:
            return None
        try:
            material = json.loads(zlib.decompress(packed))
        except (zlib.error, ValueError):
            return None
        return material if isinstance(material, dict) else None

    def put(self, action: Action, encoded: bytes) -> None:
        """Keep the key material (its canonical JSON, as `action_key_of` hashed it)."""
        packed = zlib.compress(encoded, 1)
        entries = self._loaded()
        ident = identity(action)
        if entries.get(ident) != packed:
            entries[ident] = packed
            self._dirty = True

    def uncached_result(self, action: Action, key: str) -> ActionResult | None:
        """The result of the last run of a `no-cache` action, if it had the key `key`."""
        self._loaded()
        entry = self._uncached.get(identity(action))
        if not isinstance(entry, tuple) or len(entry) != 2 or entry[0] != key:
            return None
        try:
            return ActionResult.from_json(json.loads(zlib.decompress(entry[1])))
        except (zlib.error, ValueError, TypeError):
            return None

    def put_uncached_result(self, action: Action, key: str, result: ActionResult) -> None:
        self._loaded()
        self._uncached[identity(action)] = (key, zlib.compress(json_bytes(result.to_json())))
        self._dirty = True

    def save(self) -> None:
        if self._path is not None and self._dirty and self._entries is not None:
            data = pickle.dumps((self._FORMAT, self._entries, self._uncached), protocol=5)
            write_bytes_atomic(self._path, data, durable=False)
            self._dirty = False


def miss_reasons(
    log: ActionLog,
    action: Action,
    material: dict[str, Any],
    cached: ActionResult | None,
    cacheable: bool,
) -> list[str]:
    """Why `action` (key material `material`) runs: what `--explain` prints."""
    if not cacheable:
        previous = log.get(action)
        changed = explain_difference(previous, material) if previous else []
        return [
            "caching is off for this action (no-cache tag or no cache)",
            *(changed or ["no earlier run with its outputs in place"]),
        ]
    if cached is not None:
        return ["cache entry found but an output blob is missing"]
    previous = log.get(action)
    if previous is None:
        return ["no cache entry and no earlier run recorded"]
    reasons = explain_difference(previous, material)
    return reasons or ["no cache entry for an unchanged action (cache cleared?)"]
