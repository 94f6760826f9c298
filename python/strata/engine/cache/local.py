"""A cache in a local directory, laid out like Bazel's `--disk_cache`.

    ac/<hh>/<key>      action results (canonical JSON), by action key
    cas/<hh>/<sha256>  blobs, by the sha256 of their content

Every write is a temp name in the destination directory, then a rename: a
reader sees the whole old entry or the whole new one, and two builds that
store the same entry at once both succeed (the loser's rename just replaces an
identical file). There is no read-modify-write, so no lock is needed.

Outputs are read-only and replaced, never changed in place, so a blob is a
hard link to the output it was stored from, and a hit is a hard link to the
blob: the bytes of a layer exist once on disk however many outputs and
entries name them (a copy where the cache is on another filesystem). Nothing
is fsynced: blobs are verified against their name on every read, so one torn
by a crash is removed and reported as missing, and the action that needs it
re-runs; an action result torn by a crash (renamed into place before its bytes
reached the disk: empty or cut short) does not parse, which is a miss too. An
fsync per entry made each action wait for the disk to take the gigabytes of
layers written before it, on the build's critical path.

A shared `--disk_cache` is written by others, so nothing read is trusted: an
action result must parse and pass the caller's check (`result_check`), and
blobs are verified against their name on every read; a corrupt blob is
removed. Either is an `InvalidEntry`, so the action re-runs and its fresh
result replaces the bad one. So is a blob an action result names that is
gone. Entries are regular files and `ac/`, `cas/` and their `<hh>/` are real
directories, never followed links: a link or a directory where an entry
belongs, or a link where a directory belongs, is removed before it is read
or written through, so whoever writes the cache cannot make strata read,
chmod or write a file elsewhere.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from strata import written
from strata.canonical import json_bytes
from strata.engine.action import Action
from strata.engine.cache import ActionResult, InvalidEntry, ResultCheck
from strata.engine.digests import sha256_file
from strata.fsutil import replace_link, write_bytes_atomic

_CHUNK = 1 << 20


class LocalDiskCache:
    def __init__(self, root: Path, warn: Callable[[str], None] | None = None) -> None:
        self.root = root
        self.name = f"disk cache {root}"
        self.lookups_wait = False
        self._lock = threading.Lock()
        self._warn = warn
        """Where a failed write is reported (once); without it a failed write raises."""
        self.unwritable = ""
        """Why writes stopped for this build (a full or read-only disk), or ""."""

    def for_action(self, action: Action) -> LocalDiskCache:
        """Every action may use the disk cache (a `no-cache` one is never asked)."""
        return self

    @staticmethod
    def _checked(path: Path, sha256: str) -> bool:
        """Whether `path` holds the bytes of `sha256`: hashed, unless this process noted its
        digests as it wrote it (strata.written: a download from a remote cache) and the
        file is unchanged since."""
        with contextlib.suppress(OSError):
            noted = written.recall(os.lstat(path))
            if noted is not None and noted[1] == sha256:
                return True
        return sha256_file(path) == sha256

    @contextlib.contextmanager
    def _writing(self) -> Iterator[bool]:
        """Yields whether to write; a write the disk refuses stops every later one.

        A cache is an optimisation: a full disk under it costs a warning, not
        the build. Entries are renamed into place whole, so a failed one leaves
        nothing behind, and an action result is never stored after a blob of it
        could not be.
        """
        if self.unwritable:
            yield False
            return
        try:
            yield True
        except OSError as e:
            if self._warn is None:
                raise
            with self._lock:  # writes may come from several lookup threads at once
                first, self.unwritable = not self.unwritable, e.strerror or str(e)
            if first:  # (the message names no file: its name may be the source's)
                self._warn(
                    f"{self.name}: cannot store entries (got {self.unwritable}); the build "
                    "goes on without storing results there: free some space or fix its "
                    "permissions"
                )

    def _ac(self, key: str, *, reading: bool = False) -> Path:
        return self._entry("ac", key, reading)

    def _cas(self, sha256: str, *, reading: bool = False) -> Path:
        return self._entry("cas", sha256, reading)

    def _entry(self, kind: str, name: str, reading: bool) -> Path:
        """`<root>/<kind>/<hh>/<name>`; a link or file in place of either directory is
        removed (when `reading`, that is an `InvalidEntry`)."""
        for d in (self.root / kind, self.root / kind / name[:2]):
            with contextlib.suppress(FileNotFoundError):
                if not stat.S_ISDIR(os.lstat(d).st_mode):
                    _drop(d)
                    if reading:
                        raise InvalidEntry(self.name, f"{d} is not a directory")
        return self.root / kind / name[:2] / name

    def get_action_result(self, key: str, check: ResultCheck) -> ActionResult | None:
        path = self._ac(key, reading=True)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            _drop(path)
            what = "a link" if err.errno == errno.ELOOP else f"unreadable (got {err.strerror})"
            raise InvalidEntry(self.name, f"{path} is {what}, not an action result") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            _drop(path)
            raise InvalidEntry(self.name, f"{path} is not a regular file")
        with open(fd, "rb") as f:
            data = f.read()
        try:
            result = ActionResult.from_json(json.loads(data))
        except (ValueError, RecursionError) as err:
            raise InvalidEntry(
                self.name, f"entry is not an action result (got {len(data)} bytes: {err!s:.80})"
            ) from None
        why = check(result)
        if why is not None:
            raise InvalidEntry(self.name, why)
        return result

    def put_action_result(self, key: str, result: ActionResult) -> None:
        with self._writing() as ok:
            if ok:
                write_bytes_atomic(self._ac(key), json_bytes(result.to_json()), durable=False)

    def has_blob(self, sha256: str) -> bool:
        try:
            return stat.S_ISREG(os.lstat(self._cas(sha256)).st_mode)
        except OSError:
            return False

    def get_blob(self, sha256: str, dest: Path) -> bool:
        """`fetch_blob`, with a missing blob an `InvalidEntry` too: its action result named it."""
        if not self.fetch_blob(sha256, dest):
            raise InvalidEntry(self.name, f"blob {sha256} is missing")
        return True

    def fetch_blob(self, sha256: str, dest: Path) -> bool:
        """Link the verified blob to `dest`; False if it is missing (a tiered cache asks its
        server next), `InvalidEntry` if it is not a regular file or has other bytes."""
        src = self._cas(sha256, reading=True)
        try:
            if not stat.S_ISREG(os.lstat(src).st_mode):
                _drop(src)
                raise InvalidEntry(self.name, f"blob {sha256} is not a regular file")
        except (FileNotFoundError, NotADirectoryError):
            return False
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.{os.getpid()}.tmp"
        try:
            _link_or_copy(src, tmp)
            if not self._checked(tmp, sha256):
                os.unlink(tmp)
                _drop(src)
                raise InvalidEntry(self.name, f"blob {sha256} does not match its sha256")
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            replace_link(tmp, dest)  # dest may be a link of this blob already
            return True
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return False

    def blob_path(self, sha256: str) -> Path:
        """Where the blob belongs (for a tiered cache's downloads and uploads)."""
        return self._cas(sha256)

    def put_blob(self, sha256: str, src: Path) -> None:
        with self._writing() as ok:
            if ok:
                self._put_blob(sha256, src)

    def keep_local(self, key: str, result: ActionResult) -> None:
        self.put_action_result(key, result)

    def prefetch(self, sha256s: list[str]) -> None:
        """Nothing to do: every blob here is at hand."""

    def _put_blob(self, sha256: str, src: Path) -> None:
        dest = self._cas(sha256)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISREG(os.lstat(dest).st_mode):
                return
            _drop(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{sha256}.{os.getpid()}.tmp"
        try:
            _link_or_copy(src, tmp)
            replace_link(tmp, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def _link_or_copy(src: Path, dest: Path) -> None:
    """Replace `dest` by a link to `src` (a read-only copy across filesystems).

    A link is never followed: `src` swapped for one after it was checked
    gives a link at `dest`, refused here before anything is chmod-ed through it.
    """
    with contextlib.suppress(FileNotFoundError):
        os.unlink(dest)
    try:
        os.link(src, dest, follow_symlinks=False)
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
            raise
        shutil.copyfile(src, dest, follow_symlinks=False)
    st = os.lstat(dest)
    if not stat.S_ISREG(st.st_mode):
        os.unlink(dest)
        raise OSError(errno.EINVAL, "not a regular file", str(src))
    if st.st_nlink == 1:
        os.chmod(dest, 0o444)


def _drop(path: Path) -> None:
    """Remove what a cache writer left where an entry or directory belongs (links not followed)."""
    with contextlib.suppress(OSError):
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path)
        else:
            os.unlink(path)
