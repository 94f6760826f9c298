"""An action's outputs in the execroot: collected from a run, written in-process, or
materialised from the cache.

Materialising a cached result and collecting a fresh one are two halves of the
same job, so both live here: every output ends read-only (output_files.py), with
its digests remembered in the stat cache so the next build need not read it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from strata.engine.action import Action
from strata.engine.cache import ActionResult, Cache, OutputFile, OutputSymlink, OutputTree
from strata.engine.digests import StatCache, sha256_bytes
from strata.engine.execution.output_digests import OutputDigests, Pending
from strata.engine.execution.output_files import (
    OUTPUT_MODE,
    check_tree_entry,
    check_tree_link,
    make_writable,
    remove,
    seal,
    seal_file,
)
from strata.engine.execution.running import Running
from strata.engine.execution.workers import ReportedDigest
from strata.errors import UserError
from strata.fsutil import kind_of, replace_link, temp_prefix


class Outputs:
    """The execroot's outputs, with the stat cache and the cache that know their digests."""

    def __init__(
        self,
        execroot: Path,
        input_path: Callable[[str], Path],
        stat_cache: StatCache,
        cache: Cache | None,
        output_digests: OutputDigests,
    ) -> None:
        self.execroot = execroot
        self.input_path = input_path
        """The real file behind an execroot path (`Executor.input_path`)."""
        self.stat_cache = stat_cache
        self.cache = cache
        self.output_digests = output_digests
        self.missing = ""
        """The blob a `materialize` that returned False lacked."""

    def collect(self, running: Running, reported: Mapping[str, ReportedDigest]) -> ActionResult:
        """Digest the outputs (moving them into the execroot, unless they were written there)."""
        action, root = running.action, running.execroot
        in_place = running.sandbox is None
        for out in action.outputs:
            p = root / out
            if not p.is_file():
                what = "missing"
                with contextlib.suppress(OSError):
                    what = kind_of(p.stat().st_mode)
                raise UserError(
                    f"{action.mnemonic} did not create declared output {out} (got {what}); "
                    "make the command write every file the rule declares",
                    where=action.owner,
                )
        pending = [
            Pending(os.fspath(root / out), seal_file(root / out), reported.get(out))
            for out in action.outputs
        ]
        files = []
        for out, item, (xxh3, sha) in zip(
            action.outputs, pending, self.output_digests.digest(pending), strict=True
        ):
            final = self.execroot / out
            if not in_place:
                final.parent.mkdir(parents=True, exist_ok=True)
                if final.is_dir() and not final.is_symlink():
                    shutil.rmtree(final)
                # the same inode: `item.stat` still describes it
                replace_link(item.path, final)
            self.stat_cache.remember(os.fspath(final), item.stat, xxh3, sha)
            files.append(OutputFile(out, sha, item.stat.st_size, True))
        trees = []
        for out in action.output_dirs:
            trees.append(self._collect_tree(root / out, out, action, reported, in_place))
        return ActionResult(tuple(files), tuple(trees))

    def _collect_tree(
        self,
        src: Path,
        out: str,
        action: Action,
        reported: Mapping[str, ReportedDigest],
        in_place: bool,
    ) -> OutputTree:
        names: list[str] = []
        pending: list[Pending] = []
        links = []
        for dirpath, dirnames, filenames in os.walk(src):
            here = Path(dirpath)
            for name in sorted(dirnames + filenames):
                p = here / name
                rel = p.relative_to(src).as_posix()
                mode = check_tree_entry(p, rel, out, action)
                if stat.S_ISLNK(mode):
                    links.append(OutputSymlink(rel, check_tree_link(p, rel, out, action)))
                elif stat.S_ISREG(mode):
                    os.chmod(p, OUTPUT_MODE)
                    names.append(rel)
                    pending.append(Pending(os.fspath(p), p.stat(), reported.get(f"{out}/{rel}")))
            dirnames[:] = sorted(d for d in dirnames if not (here / d).is_symlink())
        listing = [
            OutputFile(rel, sha, item.stat.st_size, True)
            for rel, item, (_x, sha) in zip(
                names, pending, self.output_digests.digest(pending), strict=True
            )
        ]
        seal(src)
        if not in_place:
            final = self.execroot / out
            final.parent.mkdir(parents=True, exist_ok=True)
            remove(final)
            os.replace(src, final)
        return OutputTree(
            out,
            tuple(sorted(listing, key=lambda f: f.path)),
            tuple(sorted(links, key=lambda sl: sl.path)),
        )

    def store(self, result: ActionResult) -> None:
        assert self.cache is not None
        for f in result.files:
            self.cache.put_blob(f.sha256, self.execroot / f.path)
        for t in result.trees:
            for f in t.files:
                self.cache.put_blob(f.sha256, self.execroot / t.path / f.path)

    def run_in_process(self, action: Action, digests: Mapping[str, str]) -> ActionResult:
        """`write`/`template` write their content; `symlink` links its output to its target."""
        if len(action.outputs) != 1 or action.output_dirs:
            raise UserError(
                f"{action.mnemonic} ({action.kind}) must declare exactly one output file "
                f"(got {list(action.outputs + action.output_dirs)}); declare one file",
                where=action.owner,
            )
        out = action.outputs[0]
        final = self.execroot / out
        final.parent.mkdir(parents=True, exist_ok=True)
        if action.kind == "symlink":
            target = self.input_path(action.symlink_target)
            if not target.exists():
                raise UserError(
                    f"symlink target does not exist (got {action.symlink_target}); "
                    "point the symlink at a declared file",
                    where=action.owner,
                )
            if not (final.is_symlink() and os.readlink(final) == str(target)):
                remove(final)
                os.symlink(target, final)
            sha = digests[action.symlink_target]
            return ActionResult(
                (OutputFile(out, sha, target.stat().st_size, action.is_executable),)
            )
        if action.kind not in ("write", "template"):
            raise UserError(
                f"unknown action kind (got {action.kind!r}); use run, write, symlink or template",
                where=action.owner,
            )
        sha = sha256_bytes(action.content)
        current = None
        with contextlib.suppress(OSError):
            if not final.is_symlink() and final.is_file():
                current = self.stat_cache.digest(final)
        if current is None or current.sha256 != sha or not current.executable:
            remove(final)
            fd, tmp = tempfile.mkstemp(prefix=temp_prefix(final), dir=final.parent)
            with os.fdopen(fd, "wb") as f:
                f.write(action.content)
            os.chmod(tmp, OUTPUT_MODE)  # Bazel: 0555 even when is_executable is False
            os.replace(tmp, final)
            self.stat_cache.record_output(final, sha)
        return ActionResult((OutputFile(out, sha, len(action.content), True),))

    def materialize(self, result: ActionResult) -> bool:
        """Put a cached result's outputs in the execroot; False if a blob is gone.

        `result` must have passed `result_check.validate_result` for its action
        (every cache getter applies it): its paths are used as they are. A
        corrupt blob raises `InvalidEntry` from the cache.
        """
        if self.cache is None:
            return False
        for f in result.files:
            if not self._ensure_file(self.execroot / f.path, f):
                return False
        for t in result.trees:
            root = self.execroot / t.path
            want = {f.path for f in t.files}
            if root.is_dir() and not root.is_symlink():
                make_writable(root)
                for dirpath, dirs, names in os.walk(root):
                    for name in names + [d for d in dirs if os.path.islink(Path(dirpath) / d)]:
                        p = Path(dirpath) / name
                        if p.is_symlink() or p.relative_to(root).as_posix() not in want:
                            p.unlink()
            else:
                remove(root)
                root.mkdir(parents=True)
            for f in t.files:
                (root / f.path).parent.mkdir(parents=True, exist_ok=True)
                if not self._ensure_file(root / f.path, f):
                    return False
            for sl in t.symlinks:
                (root / sl.path).parent.mkdir(parents=True, exist_ok=True)
                remove(root / sl.path)  # an empty directory left from an earlier tree
                os.symlink(sl.target, root / sl.path)
            seal(root)
        return True

    def clear(self, result: ActionResult) -> None:
        """Remove whatever an earlier build left where `result`'s outputs go (they stay on
        the remote cache for now: no stale file may stand in for them)."""
        for path in result.paths():
            remove(self.execroot / path)

    def up_to_date(self, result: ActionResult) -> None:
        """Note an up-to-date action's output files, whose digests a later action's link to
        one of them can reuse (OutputDigests.defer)."""
        if result.files:
            root = os.fspath(self.execroot)
            self.output_digests.defer(lambda: [f"{root}/{f.path}" for f in result.files])

    def in_place(self, result: ActionResult) -> bool:
        """Whether the execroot holds exactly `result`'s outputs (an up-to-date action's)."""
        try:
            for f in result.files:
                if not self._holds(self.execroot / f.path, f):
                    return False
            for t in result.trees:
                root = self.execroot / t.path
                if root.is_symlink() or not root.is_dir():
                    return False
                files, links = (
                    {f.path: f for f in t.files},
                    {sl.path: sl.target for sl in t.symlinks},
                )
                seen = 0
                for dirpath, dirs, names in os.walk(root):
                    here = Path(dirpath)
                    for name in names + [d for d in dirs if (here / d).is_symlink()]:
                        p = here / name
                        rel = p.relative_to(root).as_posix()
                        if p.is_symlink():
                            ok = links.get(rel) == os.readlink(p)
                        else:
                            ok = rel in files and self._holds(p, files[rel])
                        if not ok:
                            return False
                        seen += 1
                if seen != len(files) + len(links):
                    return False
        except OSError:
            return False
        return True

    def _holds(self, path: Path, f: OutputFile) -> bool:
        if path.is_symlink() or not path.is_file():
            return False
        have = self.stat_cache.digest(path)
        return have.sha256 == f.sha256 and have.executable == f.executable

    def _ensure_file(self, final: Path, f: OutputFile) -> bool:
        assert self.cache is not None
        with contextlib.suppress(OSError):
            if not final.is_symlink():
                have = self.stat_cache.digest(final)
                if have.sha256 == f.sha256 and have.executable:
                    self._learn(final)
                    return True
        if final.is_symlink():
            final.unlink()
        if not self.cache.get_blob(f.sha256, final):
            self.missing = f.sha256
            return False
        os.chmod(final, OUTPUT_MODE)
        self.stat_cache.record_output(final, f.sha256)
        self._learn(final)
        return True

    def _learn(self, final: Path) -> None:
        """Tell the output digester an up-to-date output's digests (an action may link it)."""
        st = os.stat(final)
        known = self.stat_cache.recorded(final, st)
        if known is not None:
            self.output_digests.learn(st, *known)
