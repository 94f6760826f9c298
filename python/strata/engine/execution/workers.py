"""Running strata's own actions in a preloaded worker process (see strata.worker).

An action whose command line is `<the strata tool> action <Mnemonic> @req`
runs the same code whether it is started as a process or forked from a
worker that already imported it; only the start-up cost differs (a few
hundred milliseconds of imports against a fork). The worker is started from
the very launcher the command line names, in the execroot, where the engine
lays out the tool's runfiles tree as Bazel does, so the code and pinned
packages are exactly the action's.

A worker-run action is a `WorkerProcess`: it has the pid of the forked child
and a pidfd that becomes readable when the child exits (what the scheduler
waits on), and `wait()` returns its exit status as `Popen.wait()` would.
Its stdout, stderr and the digests of the outputs it wrote (strata.worker
hashes them in the child) go to three unnamed files the pool reuses from
action to action: a worker action makes no file of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from strata.errors import UserError

_MAX_MESSAGE = 1 << 20
_OUTPUT_LIMIT = 64 * 1024
PROTOCOL = 2
"""strata.worker's protocol version (passed as `--protocol`; a worker of another one refuses)."""
TOOL_SUFFIX = "/strata_tools/strata"


def is_strata_action(argv: Sequence[str]) -> bool:
    """`<...>/strata_tools/strata action <Mnemonic> @<request>`: what the rules run."""
    return (
        len(argv) == 4
        and argv[0].endswith(TOOL_SUFFIX)
        and argv[1] == "action"
        and argv[3].startswith("@")
    )


@dataclass(frozen=True)
class ReportedDigest:
    """What the child found for one output file, valid while its stat is unchanged."""

    size: int
    mtime_ns: int
    inode: int
    xxh3: str
    sha256: str

    def matches(self, st: os.stat_result) -> bool:
        return (self.size, self.mtime_ns, self.inode) == (st.st_size, st.st_mtime_ns, st.st_ino)


class Channel:
    """An action's stdout, stderr and digests report: unnamed files, emptied for each use."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._files: list[IO[bytes]] = [
            tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 - closed in close()
            for _ in range(3)
        ]

    def fds(self) -> list[int]:
        return [f.fileno() for f in self._files]

    def reset(self) -> None:
        for fd in self.fds():
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)

    def output(self) -> str:
        """stdout then stderr, each cut to its last 64 KiB."""
        parts = []
        for fd in self.fds()[:2]:
            size = os.fstat(fd).st_size
            start = max(0, size - _OUTPUT_LIMIT)
            data = os.pread(fd, size - start, start)
            if start:
                data = b"...(truncated)...\n" + data
            parts.append(data.decode(errors="replace"))
        return "".join(parts)

    def digests(self) -> dict[str, ReportedDigest]:
        """The child's report, by output path as the action named it; {} if there is none."""
        fd = self.fds()[2]
        data = os.pread(fd, os.fstat(fd).st_size, 0)
        try:
            files = json.loads(data)["files"] if data else {}
            return {p: ReportedDigest(*v) for p, v in files.items()}
        except (ValueError, KeyError, TypeError):
            return {}

    def close(self) -> None:
        for f in self._files:
            f.close()


class WorkerProcess:
    """One action running in a worker's child, with the bits of Popen the engine uses."""

    def __init__(self, worker: Worker, ident: int, pid: int, pidfd: int, channel: Channel) -> None:
        self._worker = worker
        self.ident = ident
        self.pid = pid
        self.pidfd = pidfd
        self.channel = channel
        self.returncode: int | None = None
        self.maxrss_kib = 0

    def wait(self) -> int:
        if self.returncode is None:
            self.returncode, self.maxrss_kib = self._worker.status(self.ident)
        return self.returncode

    def kill(self) -> None:
        """SIGKILL the action's process group (asked of the worker: `pid` is in its namespace)."""
        self._worker.kill(self.ident)


class Worker:
    """One `strata worker` process and its control socket."""

    def __init__(
        self,
        launcher: Path,
        execroot: Path,
        env: Mapping[str, str],
        wrap: Callable[[list[str]], list[str]] | None = None,
    ) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [str(launcher), "worker", f"--protocol={PROTOCOL}"]
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        """The worker's own stderr: what it said if it dies."""
        try:
            self.process = subprocess.Popen(
                wrap(argv) if wrap is not None else argv,
                cwd=execroot,
                env=dict(env),
                stdin=theirs.fileno(),
                stdout=subprocess.DEVNULL,
                stderr=self.log,
                close_fds=True,
                start_new_session=True,
            )
        except OSError as e:
            ours.close()
            raise UserError(
                f"cannot start the strata action worker (got {e.strerror}: {launcher}); "
                "check the tool's launcher",
                where="strata build",
            ) from None
        finally:
            theirs.close()
        self.sock = ours
        self.used = False
        """Whether an action was sent: one started early and never used is killed at close."""
        self._next = 0
        self._statuses: dict[int, tuple[int, int]] = {}
        self._started: dict[int, tuple[int, int]] = {}

    def spawn(
        self,
        argv: Sequence[str],
        cwd: Path,
        env: Mapping[str, str],
        channel: Channel,
        outputs: Sequence[str] = (),
        output_dirs: Sequence[str] = (),
    ) -> WorkerProcess:
        """Start one action in `cwd`; the child hashes its outputs if it succeeds."""
        self.used = True
        self._next += 1
        ident = self._next
        req = {
            "argv": list(argv),
            "cwd": str(cwd),
            "env": dict(env),
            "id": ident,
            "output_dirs": list(output_dirs),
            "outputs": list(outputs),
        }
        channel.reset()
        try:
            socket.send_fds(self.sock, [json.dumps(req).encode()], channel.fds())
            while ident not in self._started:
                self._receive()
        except OSError as e:
            raise WorkerGone(str(e)) from None
        pid, pidfd = self._started.pop(ident)
        return WorkerProcess(self, ident, pid, pidfd, channel)

    def kill(self, ident: int) -> None:
        with contextlib.suppress(OSError):
            self.sock.send(json.dumps({"kill": ident}).encode())

    def status(self, ident: int) -> tuple[int, int]:
        while ident not in self._statuses:
            self._receive()
        return self._statuses.pop(ident)

    def _receive(self) -> None:
        data, fds, _flags, _addr = socket.recv_fds(self.sock, _MAX_MESSAGE, 1)
        if not data:
            raise WorkerGone("the worker exited")
        msg: dict[str, Any] = json.loads(data)
        if "pid" in msg:
            self._started[msg["id"]] = (msg["pid"], fds[0])
        else:
            self._statuses[msg["id"]] = (msg["status"], msg.get("maxrss", 0))

    def last_words(self) -> str:
        """The last line the worker wrote to stderr, or its exit status."""
        self.log.seek(0)
        lines = self.log.read().decode(errors="replace").strip().splitlines()
        if lines:
            return lines[-1][-300:]
        code = self.process.poll()
        return f"exit status {code}" if code is not None else "no answer"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        if not self.used:  # still importing, most likely: nothing to wait for
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()


class WorkerGone(OSError):
    """The worker died or its socket broke; the engine falls back to a process."""


class WorkerPool:
    """One worker per tool launcher, started on first use, closed at the end of a build."""

    def __init__(
        self,
        execroot: Path,
        env: Mapping[str, str],
        *,
        enabled: bool = True,
        wrap: Callable[[list[str]], list[str]] | None = None,
        scratch: Path | None = None,
    ) -> None:
        self.execroot = execroot
        self.scratch = scratch or execroot.parent
        """Where the channels' unnamed files live (the output base's file system)."""
        self._channels: list[Channel] = []
        self.env = dict(env)
        self.enabled = enabled
        self.wrap = wrap
        """Puts the worker's command in a sandbox (the namespace one), if any."""
        self._workers: dict[str, Worker | None] = {}
        self._lock = threading.Lock()
        """`get` may be called from the thread that starts a worker early (early_worker.py);
        `close` waits for a start under way. The thread that calls `get` must outlive the
        worker it starts: bubblewrap's `--die-with-parent` follows that thread."""
        self._closed = False
        self.failure = ""
        """Why a worker stopped working this build (the build warns once), or ""."""

    def get(self, tool: str) -> Worker | None:
        """The worker for the launcher at execroot path `tool`; None if it can't run one."""
        if not self.enabled:
            return None
        with self._lock:
            return self._get(tool)

    def _get(self, tool: str) -> Worker | None:
        if self._closed:
            return None
        if tool not in self._workers:
            launcher = self.execroot / tool
            runfiles = Path(str(launcher) + ".runfiles")
            worker = None
            if launcher.is_file() and runfiles.is_dir():
                try:
                    worker = Worker(launcher, self.execroot, self.env, self.wrap)
                except UserError as e:
                    self.failure = self.failure or str(e)
            self._workers[tool] = worker
        return self._workers[tool]

    def channel(self) -> Channel:
        """A free channel for one action; give it back with `release`."""
        return self._channels.pop() if self._channels else Channel(self.scratch)

    def release(self, channel: Channel) -> None:
        self._channels.append(channel)

    def forget(self, tool: str) -> None:
        """Stop using the worker for `tool` (it died): its actions run as processes."""
        worker = self._workers.get(tool)
        if worker is not None:
            self.failure = self.failure or worker.last_words()
            worker.close()
        self._workers[tool] = None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = list(self._workers.values())
            self._workers.clear()
        for worker in workers:
            if worker is not None:
                worker.close()
        for channel in self._channels:
            channel.close()
        self._channels.clear()
