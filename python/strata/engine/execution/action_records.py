"""Proving an action's outputs current without asking a cache: Bazel's action cache, on disk.

Bazel's server remembers, per action, the key it last ran with and the
metadata of the outputs it left, and skips the action while both hold.
strata starts a new process per command, so it keeps the same record in
`<output_base>/action_records`: per action (owner, mnemonic, first output),
the key of its last run or cache hit, its result (the digest of every output,
which the actions reading them need for their own keys) and the `lstat` of
every output file, and of every file, symlink and directory of its tree
outputs, as strata left them.

An action whose key and output stamps are unchanged is done: no cache is
read and no output is hashed, so a no-op build costs one key and one `lstat`
per output and action. A remote hit whose outputs were left on the server
(`put_remote`) is recorded with every output absent: it stays done while they
are, and `is_remote` tells the scheduler their bytes are still to come.
Anything else (a changed input or command, an output deleted, replaced,
touched or chmod-ed, a file added to a tree) is a miss, and the action goes
through the cache or runs, as it did before records.
Stamps are (mode, size, mtime, inode): the same trust the stat cache gives
sources. ctime is left out on purpose: the cache hard-links outputs, which
changes it.

The record is written atomically at the end of the build; the output-base
lock makes one command its only writer. A damaged or foreign file is an
empty record: every action then goes through the cache once.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

from strata.engine import unpickle
from strata.engine.action import Action
from strata.engine.cache import ActionResult
from strata.fsutil import write_bytes_atomic

_FORMAT = 2

Stamp = tuple[int, int, int, int]
"""(st_mode, st_size, st_mtime_ns, st_ino) of an output, from lstat."""

_Record = tuple[str, ActionResult, tuple[tuple[str, Stamp | None], ...], bool]
"""(action key, result, (output path, stamp or None: absent) pairs, outputs remote only)."""


def identity(action: Action) -> str:
    """How an action is known from one build to the next: owner, mnemonic, first output."""
    first = (action.outputs + action.output_dirs + ("",))[0]
    return f"{action.owner} {action.mnemonic} {first}"


def _stamp(path: str) -> Stamp | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino)


def _output_paths(execroot: str, result: ActionResult) -> list[str]:
    """Every path whose stamp stands for `result`'s outputs being what it says."""
    paths = [os.path.join(execroot, f.path) for f in result.files]
    for tree in result.trees:
        root = os.path.join(execroot, tree.path)
        for dirpath, dirnames, _files in os.walk(root):
            paths.append(dirpath)  # a new or removed entry changes its directory's mtime
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
        paths.extend(os.path.join(root, f.path) for f in tree.files)
        paths.extend(os.path.join(root, sl.path) for sl in tree.symlinks)
    return paths


class ActionRecords:
    def __init__(self, path: Path | None, execroot: Path) -> None:
        self._path = path
        self._execroot = os.fspath(execroot)
        self._records: dict[str, _Record] = {}
        self._dirty = False
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            raw = unpickle.loads(path.read_bytes())
        except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError):
            return
        except (AttributeError, ImportError, IndexError, KeyError):
            return
        if isinstance(raw, tuple) and len(raw) == 2 and raw[0] == _FORMAT:
            self._records = raw[1] if isinstance(raw[1], dict) else {}

    def current(self, action: Action, key: str) -> ActionResult | None:
        """The result `action` left if its key is `key` and its outputs are as it left them."""
        record = self._records.get(identity(action))
        if record is None or record[0] != key:
            return None
        for path, stamp in record[2]:
            if _stamp(path) != stamp:
                return None
        return record[1]

    def put(self, action: Action, key: str, result: ActionResult) -> None:
        """Note that `action` with key `key` left `result`, whose outputs are in place now."""
        stamps = []
        for path in _output_paths(self._execroot, result):
            stamp = _stamp(path)
            if stamp is None:
                self.forget(action)  # not all there: nothing to prove next time
                return
            stamps.append((path, stamp))
        self._records[identity(action)] = (key, result, tuple(stamps), False)
        self._dirty = True

    def put_remote(self, action: Action, key: str, result: ActionResult) -> None:
        """Note that `action` with key `key` left `result` on the remote cache: none of its
        outputs is here (the caller removed them)."""
        stamps = tuple((os.path.join(self._execroot, p), None) for p in result.paths())
        self._records[identity(action)] = (key, result, stamps, True)
        self._dirty = True

    def is_remote(self, action: Action) -> bool:
        """Whether `action`'s record is of outputs left on the remote cache."""
        record = self._records.get(identity(action))
        return record is not None and record[3]

    def forget(self, action: Action) -> None:
        if self._records.pop(identity(action), None) is not None:
            self._dirty = True

    def save(self) -> None:
        if self._path is not None and self._dirty:
            data = pickle.dumps((_FORMAT, self._records), protocol=5)
            write_bytes_atomic(self._path, data, durable=False)
            self._dirty = False
