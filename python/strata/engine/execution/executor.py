"""Running one action hermetically, and putting its outputs where Bazel would.

A `run` action gets a fresh execroot (`<output_base>/sandbox/<n>/execroot`)
holding only its declared inputs, as symlinks to the source files and to
earlier outputs (tree artifacts as directories of links), with exactly the
environment the action declares (no PATH and no HOME unless it sets them, as
in Bazel; a command named without a `/` is looked up in `os.defpath`, `/bin:/usr/bin`).
Undeclared inputs are simply absent, so a rule that forgot one fails here as
it would under Bazel's sandbox. With a namespace sandbox (sandbox.py) the
process also runs in a read-only view of the host with a private /tmp and no
network, so absolute paths cannot reach around that; an action tagged
`no-sandbox` or `local` (as Bazel's execution requirements) runs without it,
as Bazel runs it outside its sandbox. Declared outputs are
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
What becomes of the outputs (collected, stored, materialised from the cache)
is outputs.py's; a running action and its failure are running.py's.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from strata.engine import leftovers
from strata.engine.action import Action
from strata.engine.analysis.graph import ActionGraph, is_generated
from strata.engine.cache import Cache
from strata.engine.digests import StatCache
from strata.engine.execution.early_worker import EarlyWorker
from strata.engine.execution.forest import Forest
from strata.engine.execution.output_digests import OutputDigests
from strata.engine.execution.output_files import is_real_dir, make_writable, remove, tree_children
from strata.engine.execution.outputs import Outputs
from strata.engine.execution.running import (
    ActionFailed,
    Finished,
    Running,
    action_env,
    can_exec,
    could_not_start,
    is_tool,
    where_to_look,
)
from strata.engine.execution.sandbox import Namespace, StagedInput, StagingPlan
from strata.engine.execution.workers import (
    ReportedDigest,
    Worker,
    WorkerGone,
    WorkerPool,
    WorkerProcess,
    is_strata_action,
)
from strata.errors import shorten

_CHUNK = 1 << 20
_STDERR_LIMIT = 64 * 1024


_UNSANDBOXED = frozenset(("no-sandbox", "local"))
"""Tags that keep an action out of the namespace sandbox (Bazel: out of any sandbox)."""


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
        self.output_digests = OutputDigests(hash_threads, self._recall_output)
        self.outputs = Outputs(execroot, self.input_path, stat_cache, cache, self.output_digests)
        self._early: EarlyWorker | None = None

    def _recall_output(self, path: str) -> tuple[os.stat_result, str, str] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        known = self.stat_cache.recorded(path, st)
        return None if known is None else (st, *known)

    def close(self) -> None:
        self.output_digests.close()
        if self._early is not None:
            self._early.close()

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
            if tool is None or not is_tool(path, tool)
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
        if self.namespace is not None and not _UNSANDBOXED & set(action.tags):
            # bwrap would only say "execvp" in the action's output: say it as without it.
            if not can_exec(argv[0] if argv else "", root, env.get("PATH", os.defpath)):
                self._discard(sandbox)
                raise could_not_start(action, errno.ENOENT)
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
                raise could_not_start(action, e.errno or errno.ENOEXEC) from None
        leftovers.record(sandbox, proc.pid)  # for the next build, should this engine be killed
        return Running(action, proc, sandbox, root)

    def early_worker(self, graph: ActionGraph, order: Iterable[int]) -> EarlyWorker | None:
        """What starts the worker of the first strata action in `order` early (see
        early_worker.py); None when no action of the build can use one."""
        if self.workers is None:
            return None
        for i in order:
            action = graph.actions[i]
            if action.kind == "run" and self._may_use_worker(action):
                tool = action.argv[0]
                producers = {
                    graph.producer[p]
                    for p in action.inputs
                    if is_tool(p, tool) and p in graph.producer
                }
                self._early = EarlyWorker(functools.partial(self._start_worker, tool), producers)
                return self._early
        return None

    def _may_use_worker(self, action: Action) -> bool:
        return is_strata_action(action.argv) and "requires-network" not in action.tags

    def _start_worker(self, tool: str) -> None:
        """EarlyWorker's `start`, on its thread: a worker that cannot start is said again,
        and the action run as a process, when an action asks for it."""
        assert self.workers is not None
        with contextlib.suppress(Exception):
            self.workers.get(tool)

    def _worker_for(self, action: Action) -> Worker | None:
        if self.workers is None or not self._may_use_worker(action):
            return None
        return self.workers.get(action.argv[0])

    def _runs_in_place(self, action: Action) -> bool:
        """A worker action runs in the real execroot unless a tree artifact is among its inputs."""
        tool = action.argv[0]
        for path in action.inputs:
            generated = is_generated(path) and not is_tool(path, tool)
            if generated and is_real_dir(self.execroot / path):
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
            remove(final)
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
                remove(p)

    def _link_input(self, root: Path, path: str) -> StagedInput:
        """Stage one input as Bazel 4.2.3's sandbox does (see `tree_children`)."""
        real = self.input_path(path)
        dest = root / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        is_dir = real.is_dir()
        children = tree_children(real) if is_generated(path) and is_real_dir(real) else []
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
                    + where_to_look(output, sandbox or running.execroot),
                    output,
                )
            result = self.outputs.collect(running, reported)
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
            self.outputs.store(result)
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
            make_writable(sandbox)
            shutil.rmtree(sandbox, ignore_errors=True)
