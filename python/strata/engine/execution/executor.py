"""Running one action hermetically, and putting its outputs where Bazel would.

A `run` action gets a fresh execroot (`<output_base>/sandbox/<n>/execroot`)
holding only its declared inputs, as symlinks to the source files and to
earlier outputs (tree artifacts as directories of links), with exactly the
environment the action declares (no PATH and no HOME unless it sets them, as
in Bazel; a command named without a `/` is looked up in `os.defpath`, `/bin:/usr/bin`).
Undeclared inputs are simply absent, so a rule that forgot one fails here as
it would under Bazel's sandbox. With a namespace sandbox (sandbox.py) the
process also runs in a read-only view of the host with a private /tmp and no
network, so absolute paths cannot reach around that. Declared outputs are
moved to stable paths under `<output_base>/execroot/<ws>/bazel-out/`;
everything else the process wrote dies with the sandbox.

strata's own actions that run in the preloaded worker (strata.engine.execution.workers)
run in place instead, as Bazel runs a non-sandboxed persistent worker: in the
real execroot (whose symlink forest, strata.engine.execution.forest, resolves source
paths), with no per-action staging or teardown. Their stale outputs are
removed first, their fresh ones get the same modes, and a failed one leaves
no output. An action with a tree artifact input is still staged: Bazel's
sandbox shows a tree as its files only (no empty directories, directories of
the sandbox's making), and the bytes must not depend on where it ran.

`write`, `template` and `symlink` actions need no process and run in-process.
Cache lookups and stores also live here, because materialising a cached
result and collecting a fresh one are two halves of the same job.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from strata.engine import leftovers
from strata.engine.action import Action
from strata.engine.analysis.graph import is_generated
from strata.engine.cache import ActionResult, Cache, OutputFile, OutputSymlink, OutputTree
from strata.engine.cache.result_check import link_leaves_tree
from strata.engine.digests import StatCache, sha256_bytes
from strata.engine.execution.forest import Forest
from strata.engine.execution.output_digests import OutputDigests, Pending
from strata.engine.execution.sandbox import Namespace, StagedInput, StagingPlan
from strata.engine.execution.workers import (
    ReportedDigest,
    Worker,
    WorkerGone,
    WorkerPool,
    WorkerProcess,
    is_strata_action,
)
from strata.errors import UserError, shorten
from strata.fsutil import kind_of, temp_prefix

_CHUNK = 1 << 20
_STDERR_LIMIT = 64 * 1024


class ActionFailed(UserError):
    """An action exited non-zero; the message carries its command and stderr."""

    def __init__(self, action: Action, message: str, stderr: str) -> None:
        self.action = action
        self.stderr = stderr
        tail = f"\n{stderr.rstrip()}" if stderr.strip() else ""
        super().__init__(message + tail, where=action.owner)


@dataclass(frozen=True)
class Running:
    action: Action
    process: subprocess.Popen[bytes] | WorkerProcess
    sandbox: Path | None
    """The action's own directory; None when it runs in place, in the real execroot."""
    execroot: Path
    """Its working directory, where it writes its outputs."""

    def pidfd(self) -> int:
        """A pidfd that becomes readable when the action's process exits (the caller closes it)."""
        if isinstance(self.process, WorkerProcess):
            return self.process.pidfd
        return os.pidfd_open(self.process.pid)

    def kill(self) -> None:
        if isinstance(self.process, WorkerProcess):
            self.process.kill()
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


@dataclass(frozen=True)
class Finished:
    result: ActionResult
    output: str
    """What the process printed (stdout then stderr), for the reporter."""
    in_worker: bool = False
    maxrss_kib: int = 0
    """Peak RSS of the action's process, where known (worker-run actions)."""


def action_env(action: Action) -> dict[str, str]:
    """Exactly what the action declares: as under Bazel, no PATH unless it sets one
    (a shell then uses its own default, and a bare command is looked up in `os.defpath`)."""
    return dict(action.env)


# Bazel makes every output read-only and executable (files and tree directories
# alike, whatever the action wrote); actions that read modes see the same thing
# under both engines only if we do the same.
OUTPUT_MODE = 0o555


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        _make_writable(p)
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def _make_writable(root: Path) -> None:
    """Outputs are read-only; their directories must be writable again to change them."""
    for dirpath, dirnames, _files in os.walk(root):
        os.chmod(dirpath, 0o755)
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]


def _seal(root: Path) -> None:
    for dirpath, _dirs, _files in os.walk(root, topdown=False):
        os.chmod(dirpath, OUTPUT_MODE)


def _seal_file(path: Path) -> os.stat_result:
    """Make a fresh output file a read-only regular file (a copy of what a symlink output
    points to); its stat."""
    if path.is_symlink():
        real = path.resolve()
        path.unlink()
        shutil.copyfile(real, path)
        shutil.copymode(real, path)
    os.chmod(path, OUTPUT_MODE)
    return os.stat(path)


def _check_tree_entry(path: Path, rel: str, tree: str, action: Action) -> int:
    """The lstat mode of a tree artifact entry, if it is one a tree may hold.

    A FIFO would hang whoever reads it (the engine hashing the tree first), a
    device or socket has no bytes to cache; and the cache protocol names
    files in UTF-8. Each is the action's mistake, refused with its name.
    """
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(
            f"{action.mnemonic} wrote a file name that is not UTF-8 in tree artifact {tree} "
            f"(got {shorten(repr(os.fsencode(rel)))}); name the files of outputs in UTF-8",
            where=action.owner,
        ) from None
    mode = os.lstat(path).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
        raise UserError(
            f"{action.mnemonic} wrote {kind_of(mode)} in tree artifact {tree} (got "
            f"{shorten(rel)}); a tree artifact holds only regular files, directories and "
            "symlinks: remove it, or write a file instead",
            where=action.owner,
        )
    return mode


def _check_tree_link(link: Path, rel: str, tree: str, action: Action) -> str:
    """Bazel's rule for symlinks in a tree artifact: they must resolve, relative ones inside it."""
    target = os.readlink(link)
    if link_leaves_tree(rel, target):
        raise UserError(
            f"{action.mnemonic} wrote a symlink in tree artifact {tree} that points outside "
            f"it (got {rel} -> {target}); point it inside the directory or copy the file",
            where=action.owner,
        )
    if not link.exists():
        raise UserError(
            f"{action.mnemonic} wrote a dangling symlink in tree artifact {tree} "
            f"(got {rel} -> {target}); Bazel refuses these too: make the target exist "
            "or write a file instead",
            where=action.owner,
        )
    return target


def _can_exec(tool: str, execroot: Path, path: str) -> bool:
    if "/" in tool:
        return os.access(execroot / tool, os.X_OK) and (execroot / tool).is_file()
    return bool(tool) and shutil.which(tool, path=path) is not None


def _could_not_start(action: Action, code: int) -> ActionFailed:
    command = shlex.join(action.argv)
    fix = "declare the tool as an input and check its path and executable bit"
    if code == errno.E2BIG:
        size = len(command) + sum(len(k) + len(v) + 2 for k, v in action.env)
        fix = (
            f"the kernel takes at most 128 KiB an argument and about 2 MiB in all (this one "
            f"is {size} bytes): pass long lists in a file, e.g. args.use_param_file()"
        )
    return ActionFailed(
        action,
        f"{action.mnemonic} could not start (got {os.strerror(code)}: {shorten(command)}); {fix}",
        "",
    )


def _is_tool(path: str, tool: str) -> bool:
    """The worker's launcher or one of its runfiles: the worker already runs them."""
    return path == tool or path.startswith(tool + ".runfiles/")


def _where_to_look(output: str, sandbox: Path) -> str:
    """The end of a failed action's error: its output follows, or why there is none."""
    if output.strip():
        return "see the action's output below"
    with contextlib.suppress(OSError):
        st = os.statvfs(sandbox)
        if st.f_bavail * st.f_frsize < (1 << 20):
            return (
                "it printed nothing, and the output base's file system is full: free some "
                "space and build again"
            )
    return "it printed nothing: run it by hand, or with --verbose_failures to keep its sandbox"


def _is_real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _tree_children(tree: Path) -> list[str]:
    """A tree artifact's children as Bazel 4.2.3 stages them for a consumer.

    Checked against real Bazel (processwrapper-sandbox; tests/fixtures/engine/
    conformance //lib:staged*): each file and each symlink (to a file, to a
    directory, relative, absolute, a chain of links) is one child, staged as a
    link to that entry's own path in the execroot, in directories made for it;
    a link is never followed, so a link to a directory reaches the action as a
    link. Directories are not children: an empty one is not staged, and a tree
    with no children at all is staged as one link to the whole directory (so
    its empty directories are then visible). A source directory is not a tree
    artifact: it is one link too.
    """
    children: list[str] = []
    for dirpath, dirnames, filenames in os.walk(tree):
        here = Path(dirpath)
        rel = here.relative_to(tree)
        links = [d for d in dirnames if (here / d).is_symlink()]
        children.extend((rel / name).as_posix() for name in filenames + links)
        dirnames[:] = [d for d in dirnames if d not in links]
    return children


class Executor:
    def __init__(
        self,
        execroot: Path,
        sandbox_root: Path,
        source_path: Callable[[str], Path],
        stat_cache: StatCache,
        cache: Cache | None,
        *,
        keep_sandbox: bool = False,
        workers: WorkerPool | None = None,
        namespace: Namespace | None = None,
        hash_threads: int = 1,
    ) -> None:
        self.workers = workers
        self.execroot = execroot
        self.sandbox_root = sandbox_root
        self.source_path = source_path
        self.stat_cache = stat_cache
        self.cache = cache
        self.keep_sandbox = keep_sandbox
        self.namespace = namespace
        """The build's namespace sandbox; None runs actions in the directory sandbox alone."""
        self.forest = Forest(execroot, source_path)
        self.output_digests = OutputDigests(hash_threads)

    def close(self) -> None:
        self.output_digests.close()

    def input_path(self, path: str) -> Path:
        """The real file behind an execroot path: an earlier output or a source file."""
        return self.execroot / path if is_generated(path) else self.source_path(path)

    # -- running ---------------------------------------------------------------

    def start(self, action: Action) -> Running:
        worker = self._worker_for(action)
        if worker is not None and self._runs_in_place(action):
            return self._start_in_place(action, worker)
        self.sandbox_root.mkdir(parents=True, exist_ok=True)
        sandbox = Path(tempfile.mkdtemp(prefix="a", dir=self.sandbox_root))
        try:
            return self._start_in(sandbox, action, worker)
        except BaseException:
            self._discard(sandbox)  # staging failed (a path too long, a full disk)
            raise

    def _start_in(self, sandbox: Path, action: Action, worker: Worker | None) -> Running:
        root = sandbox / "execroot"
        root.mkdir()
        tool = action.argv[0] if worker is not None else None
        staged = tuple(
            self._link_input(root, path)
            for path in action.inputs
            # a worker already runs this tool: its launcher and runfiles need no staging
            if tool is None or not _is_tool(path, tool)
        )
        for out in action.outputs:
            (root / out).parent.mkdir(parents=True, exist_ok=True)
        for out in action.output_dirs:
            (root / out).mkdir(parents=True, exist_ok=True)
        env = action_env(action)
        if worker is not None:
            try:
                return self._spawn(action, worker, sandbox, root)
            except WorkerGone:
                self._discard(sandbox)
                return self.start(action)  # staged in full, as a process
        argv = list(action.argv)
        if self.namespace is not None:
            # bwrap would only say "execvp" in the action's output: say it as without it.
            if not _can_exec(argv[0] if argv else "", root, env.get("PATH", os.defpath)):
                self._discard(sandbox)
                raise _could_not_start(action, errno.ENOENT)
            network = "requires-network" in action.tags
            plan = StagingPlan(sandbox, root, staged, network)
            argv = self.namespace.command(plan, argv)
        with open(sandbox / "stdout", "wb") as out_f, open(sandbox / "stderr", "wb") as err_f:
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=root,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out_f,
                    stderr=err_f,
                    close_fds=True,
                    start_new_session=True,
                )
            except OSError as e:
                self._discard(sandbox)
                raise _could_not_start(action, e.errno or errno.ENOEXEC) from None
        leftovers.record(sandbox, proc.pid)  # for the next build, should this engine be killed
        return Running(action, proc, sandbox, root)

    def _worker_for(self, action: Action) -> Worker | None:
        if (
            self.workers is None
            or not is_strata_action(action.argv)
            or "requires-network" in action.tags
        ):
            return None
        return self.workers.get(action.argv[0])

    def _runs_in_place(self, action: Action) -> bool:
        """A worker action runs in the real execroot unless a tree artifact is among its inputs."""
        tool = action.argv[0]
        for path in action.inputs:
            generated = is_generated(path) and not _is_tool(path, tool)
            if generated and _is_real_dir(self.execroot / path):
                return False
        return self.forest.plant(action.inputs)

    def _start_in_place(self, action: Action, worker: Worker) -> Running:
        """Clear the outputs' places in the real execroot and hand the action to the worker."""
        self._remove_outputs(action)
        for out in action.outputs:
            (self.execroot / out).parent.mkdir(parents=True, exist_ok=True)
        for out in action.output_dirs:
            (self.execroot / out).mkdir(parents=True)
        try:
            return self._spawn(action, worker, None, self.execroot)
        except WorkerGone:
            self._remove_outputs(action)
            return self.start(action)  # the worker is forgotten: staged, as a process

    def _spawn(self, action: Action, worker: Worker, sandbox: Path | None, root: Path) -> Running:
        """Start `action` in `worker`; on WorkerGone the worker is forgotten."""
        assert self.workers is not None
        channel = self.workers.channel()
        try:
            process = worker.spawn(
                action.argv, root, action_env(action), channel, action.outputs, action.output_dirs
            )
        except WorkerGone:
            self.workers.release(channel)
            self.workers.forget(action.argv[0])
            raise
        return Running(action, process, sandbox, root)

    def _remove_outputs(self, action: Action) -> None:
        """Delete an in-place action's outputs and what an interrupted atomic write left."""
        parents: dict[Path, set[str]] = {}
        for out in action.outputs + action.output_dirs:
            final = self.execroot / out
            _remove(final)
            self.stat_cache.forget(final)
            parents.setdefault(final.parent, set()).add(f".{final.name}.")
        for parent, prefixes in parents.items():
            stale: list[Path] = []
            with contextlib.suppress(OSError), os.scandir(parent) as it:
                stale = [
                    Path(e.path)
                    for e in it
                    if e.name.endswith(".tmp") and e.name.startswith(tuple(prefixes))
                ]
            for p in stale:
                _remove(p)

    def _link_input(self, root: Path, path: str) -> StagedInput:
        """Stage one input as Bazel 4.2.3's sandbox does (see `_tree_children`)."""
        real = self.input_path(path)
        dest = root / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        is_dir = real.is_dir()
        children = _tree_children(real) if is_generated(path) and _is_real_dir(real) else []
        if children:
            dest.mkdir(parents=True, exist_ok=True)
            for rel in children:
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                os.symlink(real / rel, dest / rel)
        elif not os.path.lexists(dest):
            os.symlink(real, dest)
        return StagedInput(path, real, self._input_root(path, real), is_dir)

    def _input_root(self, path: str, real: Path) -> Path:
        """The execroot for outputs; for a source, its repository's directory."""
        if is_generated(path):
            return self.execroot
        rel = path
        if path.startswith("external/"):
            parts = path.split("/", 2)
            rel = parts[2] if len(parts) == 3 else ""
        text = str(real)
        if rel and text.endswith("/" + rel):
            return Path(text[: -len(rel) - 1])
        return real

    def finish(self, running: Running, *, verbose: bool = False) -> Finished:
        """Check exit status and outputs; move outputs into place and store them in the cache."""
        action, sandbox, proc = running.action, running.sandbox, running.process
        try:
            code = proc.wait()
        except WorkerGone:
            code = self._lost(running)
        reported: dict[str, ReportedDigest] = {}
        if isinstance(proc, WorkerProcess):
            output = proc.channel.output()
            if code == 0:
                reported = proc.channel.digests()
            assert self.workers is not None
            self.workers.release(proc.channel)
        else:
            assert sandbox is not None
            output = self._read_output(sandbox)
        try:
            if code != 0:
                detail = (
                    f" in {running.execroot} with env {dict(action_env(action))}" if verbose else ""
                )
                status = f"signal {-code}" if code < 0 else f"exit status {code}"
                raise ActionFailed(
                    action,
                    f"{action.mnemonic} failed with {status} "
                    f"(got command: {shorten(shlex.join(action.argv))}{detail}); "
                    + _where_to_look(output, sandbox or running.execroot),
                    output,
                )
            result = self._collect(running, reported)
        except BaseException:
            if sandbox is None:
                self._remove_outputs(action)
            raise
        finally:
            if sandbox is not None:
                if verbose and code != 0:
                    leftovers.mark_kept(sandbox)  # kept on purpose: not a dead engine's
                else:
                    self._discard(sandbox)
        if self.cache is not None and "no-cache" not in action.tags:
            self._store(result)
        if isinstance(proc, WorkerProcess):
            return Finished(result, output, True, proc.maxrss_kib)
        return Finished(result, output)

    def _lost(self, running: Running) -> int:
        """The worker died under a running action: it failed as if killed (the build warns
        why, once); later actions run as processes."""
        assert self.workers is not None
        self.workers.forget(running.action.argv[0])
        return -signal.SIGKILL

    def abandon(self, running: Running) -> None:
        """Kill a running action (the build stops) and leave nothing of it behind."""
        running.kill()
        proc = running.process
        with contextlib.suppress(WorkerGone):
            proc.wait()
        if isinstance(proc, WorkerProcess):
            assert self.workers is not None
            self.workers.release(proc.channel)
        if running.sandbox is None:
            self._remove_outputs(running.action)
        else:
            shutil.rmtree(running.sandbox, ignore_errors=True)

    def _read_output(self, sandbox: Path) -> str:
        parts = []
        for name in ("stdout", "stderr"):
            data = (sandbox / name).read_bytes()
            if len(data) > _STDERR_LIMIT:
                data = b"...(truncated)...\n" + data[-_STDERR_LIMIT:]
            parts.append(data.decode(errors="replace"))
        return "".join(parts)

    def _discard(self, sandbox: Path) -> None:
        if self.keep_sandbox:
            return
        try:
            shutil.rmtree(sandbox)
        except OSError:
            # The action may have left read-only directories (in its /tmp, say).
            _make_writable(sandbox)
            shutil.rmtree(sandbox, ignore_errors=True)

    def _collect(self, running: Running, reported: Mapping[str, ReportedDigest]) -> ActionResult:
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
            Pending(os.fspath(root / out), _seal_file(root / out), reported.get(out))
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
                os.replace(item.path, final)  # the same inode: `item.stat` still describes it
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
                mode = _check_tree_entry(p, rel, out, action)
                if stat.S_ISLNK(mode):
                    links.append(OutputSymlink(rel, _check_tree_link(p, rel, out, action)))
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
        _seal(src)
        if not in_place:
            final = self.execroot / out
            final.parent.mkdir(parents=True, exist_ok=True)
            _remove(final)
            os.replace(src, final)
        return OutputTree(
            out,
            tuple(sorted(listing, key=lambda f: f.path)),
            tuple(sorted(links, key=lambda sl: sl.path)),
        )

    def _store(self, result: ActionResult) -> None:
        assert self.cache is not None
        for f in result.files:
            self.cache.put_blob(f.sha256, self.execroot / f.path)
        for t in result.trees:
            for f in t.files:
                self.cache.put_blob(f.sha256, self.execroot / t.path / f.path)

    # -- in-process actions ----------------------------------------------------

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
                _remove(final)
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
            _remove(final)
            fd, tmp = tempfile.mkstemp(prefix=temp_prefix(final), dir=final.parent)
            with os.fdopen(fd, "wb") as f:
                f.write(action.content)
            os.chmod(tmp, OUTPUT_MODE)  # Bazel: 0555 even when is_executable is False
            os.replace(tmp, final)
            self.stat_cache.record_output(final, sha)
        return ActionResult((OutputFile(out, sha, len(action.content), True),))

    # -- cache hits ------------------------------------------------------------

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
                _make_writable(root)
                for dirpath, dirs, names in os.walk(root):
                    for name in names + [d for d in dirs if os.path.islink(Path(dirpath) / d)]:
                        p = Path(dirpath) / name
                        if p.is_symlink() or p.relative_to(root).as_posix() not in want:
                            p.unlink()
            else:
                _remove(root)
                root.mkdir(parents=True)
            for f in t.files:
                (root / f.path).parent.mkdir(parents=True, exist_ok=True)
                if not self._ensure_file(root / f.path, f):
                    return False
            for sl in t.symlinks:
                (root / sl.path).parent.mkdir(parents=True, exist_ok=True)
                _remove(root / sl.path)  # an empty directory left from an earlier tree
                os.symlink(sl.target, root / sl.path)
            _seal(root)
        return True

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
