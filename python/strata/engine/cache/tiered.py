"""The local disk cache in front of a remote HTTP cache, and the policy between them.

Reads go local first, then remote (an invalid local entry is not looked past:
the action runs and its result replaces it). A remote action result is only trusted
once it passes the caller's check (`result_check`: exactly the action's
declared outputs, every tree entry inside its tree). With
`--remote_download_outputs=all`, every blob it names is then downloaded and
verified into the local cache, and only then is the local action-cache entry
written, so the local cache never holds an entry that is invalid or whose blobs
are missing. Otherwise (toplevel, the default, or minimal) the hit is a
`RemoteResult`: nothing is downloaded and no local entry written; the blobs
come down one by one, verified, when the scheduler needs the outputs here
(`get_blob`). A blob lost or corrupt by then is `InvalidEntry` there, and the
scheduler runs the action instead. A remote entry that fails any of this
(including a blob the server lost) raises `InvalidEntry`: a miss, with one
warning a build. Writes go local, then, when uploading is on, to the
server: blobs first, the action result last, so a reader never sees a result
whose blobs are still on their way; a blob the server sent wrong bytes for
is uploaded again, so the next build finds it whole.

Policy (as in Bazel): an action whose tags include `no-remote-cache`,
`no-remote` or `no-cache` never touches the remote cache. Layer blobs are the
unit worth sharing; rules mark whole-image outputs (docker-archive, OCI
layout) and an image's grouped layers when written out (LayerGroups:
concatenations of store path layers, or compressed ones) `no-remote-cache`
because they are cheap to re-assemble from the shared layers, and storing
them would store the closure's bytes again.
`--noremote_accept_cached` skips remote reads, `--noremote_upload_local_results`
remote writes. Bazel's `--modify_execution_info=REGEX=[+-]KEY,...` turns the
policy off or on per mnemonic in both engines (`ImageAssemble=-no-remote-cache`
uploads image actions too); see `modify_execution_info`.

Results are stored under the key the scheduler gives; with `--action_keys=reapi`
that is Bazel's own (execution/actionkey.py, `reapi_action_key`), so the two
engines share entries for actions with the same command line, environment and
inputs.
"""

from __future__ import annotations

import dataclasses
import re
import stat
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strata.engine.action import Action
from strata.engine.cache import (
    ActionResult,
    Cache,
    InvalidEntry,
    OutputFile,
    OutputSymlink,
    OutputTree,
    RemoteResult,
    ResultCheck,
)
from strata.engine.cache.local import LocalDiskCache
from strata.errors import UserError

ASK_BEFORE_SENDING = 64 << 10
"""Blobs larger than this are uploaded only if a HEAD says the server lacks them; smaller
ones (a store path's info, descriptor and listing, request files) are PUT at once."""

if TYPE_CHECKING:
    from strata.engine.cache.http import HttpCache, RemoteOptions

# protobuf and urllib3 cost ~70 ms to import: only builds that use the remote
# cache or REAPI keys pay for them, so `reapi` is imported where it is used.

LOCAL_ONLY_TAGS = frozenset({"no-remote-cache", "no-remote", "no-cache"})


# -- Bazel's --modify_execution_info ----------------------------------------------

ExecutionInfoModifier = tuple[tuple["re.Pattern[str]", bool, str], ...]
"""(mnemonic pattern, add?, key) in the order given."""


def parse_execution_info_modifier(value: str) -> ExecutionInfoModifier:
    """Bazel's syntax: `regex=[+-]key,regex=[+-]key,...`; each regex must match the whole
    mnemonic, and later entries win over earlier ones for the same key."""
    out = []
    for item in value.split(","):
        pattern, eq, change = item.rpartition("=")
        if not eq or not pattern or change[:1] not in ("+", "-") or len(change) < 2:
            raise UserError(
                f"--modify_execution_info entries must be REGEX=+KEY or REGEX=-KEY (got {item!r}); "
                "write e.g. --modify_execution_info=ImageAssemble=-no-remote-cache",
                where="strata",
            )
        try:
            compiled = re.compile(pattern)
        except re.error as err:
            raise UserError(
                f"--modify_execution_info has a bad regular expression (got {pattern!r}: {err}); "
                "fix the pattern before '='",
                where="strata",
            ) from None
        out.append((compiled, change[0] == "+", change[1:]))
    return tuple(out)


def modify_execution_info(actions: list[Action], modifier: ExecutionInfoModifier) -> list[Action]:
    """The actions with their tags changed as Bazel changes execution info for the flag."""
    out = []
    for action in actions:
        tags = set(action.tags)
        for pattern, add, key in modifier:
            if pattern.fullmatch(action.mnemonic):
                (tags.add if add else tags.discard)(key)
        new = tuple(sorted(tags))
        out.append(action if new == action.tags else dataclasses.replace(action, tags=new))
    return out


# -- strata's ActionResult <-> REAPI ActionResult --------------------------------


def to_reapi(result: ActionResult) -> tuple[Any, dict[str, bytes]]:
    """The REAPI message for a result, and the Tree blobs (by sha256) it refers to."""
    from strata.engine.cache import reapi

    msg = reapi.ActionResult()
    for f in result.files:
        msg.output_files.add(
            path=f.path,
            digest=reapi.Digest(hash=f.sha256, size_bytes=f.size),
            is_executable=f.executable,
        )
    trees: dict[str, bytes] = {}
    for t in result.trees:
        tree = reapi.tree_of(
            ((f.path, f.sha256, f.size, f.executable) for f in t.files),
            ((sl.path, sl.target) for sl in t.symlinks),
        )
        data = reapi.encode(tree)
        digest = reapi.digest_of(data)
        trees[digest.hash] = data
        msg.output_directories.add(path=t.path, tree_digest=digest)
    # Bazel records empty stdout/stderr too; strata does not keep action output.
    return msg, trees


_SHA256 = re.compile(r"[0-9a-f]{64}\Z")


def from_reapi(msg: Any, fetch_tree: Callable[[str], bytes | None]) -> ActionResult:
    """Our record of a REAPI result; ValueError saying why if we can't use it (failed,
    top-level symlinks, missing or bad tree). Symlinks inside output directories are kept."""
    from strata.engine.cache import reapi

    if msg.exit_code != 0:
        raise ValueError(f"it is the result of a failed run (got exit code {msg.exit_code})")
    links = len(msg.output_symlinks) + len(msg.output_file_symlinks)
    if links + len(msg.output_directory_symlinks):
        raise ValueError("it has output symlinks, which strata does not restore")
    files = tuple(
        OutputFile(f.path, f.digest.hash, f.digest.size_bytes, f.is_executable)
        for f in sorted(msg.output_files, key=lambda f: f.path)
    )
    trees = []
    for d in sorted(msg.output_directories, key=lambda d: d.path):
        sha = d.tree_digest.hash
        if not _SHA256.match(sha):
            raise ValueError(f"output directory {d.path!r:.120} has an invalid tree digest")
        data = fetch_tree(sha)
        if data is None:
            raise ValueError(f"tree blob {sha} could not be downloaded (a lost upload?)")
        try:
            listing, links_in_tree = reapi.tree_files(reapi.Tree.FromString(data))
        except ValueError as err:
            raise ValueError(f"tree blob {sha} is unusable ({err})") from None
        except Exception:  # noqa: BLE001 - a malformed tree is a miss, whatever protobuf raises
            raise ValueError(f"tree blob {sha} is not a valid Tree message") from None
        trees.append(
            OutputTree(
                d.path,
                tuple(OutputFile(*e) for e in listing),
                tuple(OutputSymlink(p, target) for p, target in links_in_tree),
            )
        )
    return ActionResult(files, tuple(trees))


# -- the tiered cache ------------------------------------------------------------


class TieredCache:
    def __init__(self, local: LocalDiskCache, remote: HttpCache, options: RemoteOptions) -> None:
        self.local = local
        self.remote = remote
        self.name = remote.name
        self.options = options
        self.remote_hits = 0
        self._hits_lock = threading.Lock()
        """Lookups run on the scheduler's threads (`lookups_wait`), several at a time."""
        self._upload_checked = False
        """Whether this build read one of its uploads back (see `_check_upload`)."""

    @property
    def lookups_wait(self) -> bool:
        """A lookup may download from the server (unless it is off for this build)."""
        return self.options.accept_cached and not self.remote.disabled

    def for_action(self, action: Action) -> Cache:
        """The cache this action may use: the local one alone if its tags say so."""
        return self.local if LOCAL_ONLY_TAGS.intersection(action.tags) else self

    def _local_blob(self, sha256: str) -> Path:
        """Where the local cache keeps a blob (Bazel's disk-cache layout, see local.py)."""
        return self.local.blob_path(sha256)

    def _map(self, fn: Callable[[str], bool], names: list[str]) -> list[bool]:
        """`fn` of every name, in parallel; an exception in any call is raised here."""
        if len(names) <= 1:
            return [fn(n) for n in names]
        workers = min(len(names), max(1, self.options.max_connections))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(fn, names))

    # -- action results --------------------------------------------------------

    def get_action_result(self, key: str, check: ResultCheck) -> ActionResult | RemoteResult | None:
        try:
            return self._get_action_result(key, check)
        except InvalidEntry as bad:
            if bad.cache == self.remote.name:
                self._upload_checked = True  # the build warns about this server already
            raise

    def _get_action_result(
        self, key: str, check: ResultCheck
    ) -> ActionResult | RemoteResult | None:
        hit = self.local.get_action_result(key, check)
        if hit is not None or not self.options.accept_cached or self.remote.disabled:
            return hit
        msg = self.remote.get_action_result(key)
        if msg is None:
            return None
        try:
            result = from_reapi(msg, self.remote.get_bytes)
        except ValueError as err:
            if self.remote.disabled:  # the server went away; that was warned about
                return None
            raise InvalidEntry(self.remote.name, str(err)) from None
        why = check(result)
        if why is not None:
            raise InvalidEntry(self.remote.name, why)
        if self.options.download_outputs != "all":
            self._count_hit()
            return RemoteResult(result)
        names = result.blob_digests()
        fetched = self._map(self._fetch, names)
        if not all(fetched):
            if self.remote.disabled:
                return None
            lost = names[fetched.index(False)]
            raise InvalidEntry(
                self.remote.name, f"blob {lost} could not be downloaded (a lost upload?)"
            )
        self.local.put_action_result(key, result)
        self._count_hit()
        return result

    def _count_hit(self) -> None:
        with self._hits_lock:
            self.remote.stats.ac_hits += 1
            self.remote_hits += 1

    def _fetch(self, sha256: str) -> bool:
        """Make sure the local cache holds a verified copy of a remote blob."""
        if self.local.has_blob(sha256):
            return True
        dest = self._local_blob(sha256)
        return self.remote.get_blob(sha256, dest, read_only=True)

    def put_action_result(self, key: str, result: ActionResult) -> None:
        self.local.put_action_result(key, result)
        if not self.options.upload_local_results or self.remote.disabled or self.remote.uploads_off:
            return
        msg, trees = to_reapi(result)
        if not all(self._map(self._upload, result.blob_digests())):
            return
        for sha, data in sorted(trees.items()):
            if not self.remote.put_bytes("cas", sha, data):
                return
        if self.remote.put_action_result(key, msg) and not self._upload_checked:
            self._upload_checked = True
            self._check_upload(key, msg)

    def _check_upload(self, key: str, msg: Any) -> None:
        """Read the build's first upload back: a server that answers PUT with success and
        keeps nothing (a full disk behind a proxy, a read-only store) or keeps other bytes
        would otherwise make every build quietly rebuild. One request a build."""
        try:
            back = self.remote.get_action_result(key)
        except InvalidEntry:
            back = "garbage"
        if back == msg or self.remote.disabled:
            return
        self.remote.upload_lost(
            f"ac/{key}", "does not have it" if back is None else "sends other bytes back"
        )

    def _upload(self, sha256: str) -> bool:
        src = self._local_blob(sha256)
        try:
            st = src.stat()
        except OSError:
            st = None
        is_file = st is not None and stat.S_ISREG(st.st_mode)
        small = is_file and st is not None and st.st_size <= ASK_BEFORE_SENDING
        # a small blob is sent without asking: the HEAD would cost a request as the PUT does
        if not small and sha256 not in self.remote.corrupt_blobs and self.remote.has_blob(sha256):
            return True
        return is_file and self.remote.put_blob(sha256, src)

    # -- blobs -----------------------------------------------------------------

    def has_blob(self, sha256: str) -> bool:
        return self.local.has_blob(sha256) or (
            self.options.accept_cached and self.remote.has_blob(sha256)
        )

    def get_blob(self, sha256: str, dest: Path) -> bool:
        if self.local.fetch_blob(sha256, dest):
            return True
        if not self.options.accept_cached or self.remote.disabled:
            return False
        return self._fetch(sha256) and self.local.fetch_blob(sha256, dest)

    def put_blob(self, sha256: str, src: Path) -> None:
        """Local only: uploads happen with the action result, after the policy check."""
        self.local.put_blob(sha256, src)

    def keep_local(self, key: str, result: ActionResult) -> None:
        self.local.put_action_result(key, result)

    def prefetch(self, sha256s: list[str]) -> None:
        """Download the blobs not in the local cache, `max_connections` at a time."""
        if not self.options.accept_cached or self.remote.disabled:
            return

        def fetch(sha256: str) -> bool:
            try:
                return self._fetch(sha256)
            except InvalidEntry:
                return False  # get_blob fetches it again and reports it

        self._map(fetch, sha256s)
