"""`strata worker`: run many `strata action ...` command lines from one loaded process.

Starting Python and importing strata costs a few hundred milliseconds, longer
than many actions take; a 300-path closure paid it 300 times. The embedded
engine therefore starts this process once per build (from the same tool
launcher the actions name, so it is exactly the action's code and packages)
and hands it each strata action. It imports every action module, then forks
one child per request: the child enters the action's own directory sandbox
(`cwd`), takes the action's exact environment and output files, runs the
command line as `python -m strata` would, and exits with its status. The
process itself never runs an action, so no state leaks from one to the next.
This is the role Bazel's persistent workers play; like an unsandboxed Bazel
worker, the child is not put in a namespace of its own (the engine may run
this whole process in one).

After a successful run the child also hashes the outputs the action wrote
(xxh3 and sha256 in one read, as the engine's stat cache keeps them) and
hands the digests back, so the engine's own thread never reads an output's
bytes; a file with other hard links (an output sharing an input's bytes) is
left out: the engine knows those by inode.

Protocol 2, over a SOCK_SEQPACKET socket on fd 0 (one JSON message a packet;
`strata worker --protocol=2`, so an engine and a worker of different
versions never talk past each other: the worker refuses, the engine runs
processes):

    engine → worker   {"id": N, "argv": [...], "cwd": D, "env": {...},
                       "outputs": [...], "output_dirs": [...]}
                      with three file descriptors attached: stdout, stderr
                      and a file for the digests report (see `report_digests`)
    engine → worker   {"kill": N}: SIGKILL the child's process group (its pid
                      is the worker's to use: the worker may run in a pid namespace)
    worker → engine   {"id": N, "pid": P} with a pidfd of the child attached
                      (readable once the child exits)
                      {"id": N, "status": S, "maxrss": KiB} once it is reaped
                      (S < 0: killed by signal -S); what is left of its
                      process group is killed then

The worker exits when the engine closes its end, killing children left.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import selectors
import signal
import socket
import stat
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from strata import written
from strata.actions import ACTIONS
from strata.engine.digests import xxh3_and_sha256_file

_MAX_MESSAGE = 1 << 20
PROTOCOL = 2
_REPORT_FD = 3
"""Where the child keeps the digests report open while the action runs (close-on-exec)."""


CliMain = Callable[[list[str]], int]
"""strata.cli.main, handed down by the command line that started the worker (so that
this module, below the command line, does not import it)."""


def preload() -> None:
    """Import what an action needs, so each child starts with it loaded (the command line
    is: it called us)."""
    for target in ACTIONS.values():
        importlib.import_module(target.split(":")[0])


def run_cli(program: str, args: list[str], cli: CliMain) -> int:
    """`strata ARGS` in this forked child, as `python -m strata` runs it: its exit status
    (a traceback and 2 for an exception the command line did not turn into one)."""
    sys.argv = [program, *args]
    try:
        return cli(args)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
        return 2


def end_child(code: int) -> NoReturn:
    """Leave a forked child with `code`, its stdout and stderr flushed first."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _child(req: dict[str, Any], control: int, fds: list[int], cli: CliMain) -> None:
    """In the forked child: become the action's process, run it, never return."""
    code = 2
    try:
        os.setsid()
        os.close(control)
        os.chdir(req["cwd"])
        out, err, report = fds
        null = os.open(os.devnull, os.O_RDONLY)
        for fd, target in ((null, 0), (out, 1), (err, 2)):
            os.dup2(fd, target)
        os.dup2(report, _REPORT_FD, inheritable=False)
        os.closerange(_REPORT_FD + 1, 1 << 16)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(req["env"])
        argv = list(req["argv"])
        code = run_cli(argv[0], argv[1:], cli)
    except BaseException:
        traceback.print_exc()
        code = 2
    finally:
        if code == 0:
            with contextlib.suppress(Exception):
                report_digests(req.get("outputs", []), req.get("output_dirs", []), _REPORT_FD)
        end_child(code)


def report_digests(outputs: list[str], output_dirs: list[str], fd: int) -> None:
    """Write `{"files": {path: [size, mtime_ns, inode, xxh3, sha256]}}` for the outputs.

    Paths are as the action named them (relative to its working directory);
    tree artifacts are walked (links not followed). Only regular files with
    one link are reported, with the digests the action noted while writing
    them (strata.written) or else read now: anything else (a symlink, a file sharing an input's
    bytes, one that vanished) is left to the engine, which checks every
    reported file's size, mtime and inode before it believes the digests.
    """
    files: dict[str, list[int | str]] = {}
    for path in [*outputs, *_tree_files(output_dirs)]:
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                continue
            xxh3, sha256 = written.recall(st) or xxh3_and_sha256_file(path)
        except OSError:
            continue
        files[path] = [st.st_size, st.st_mtime_ns, st.st_ino, xxh3, sha256]
    data = json.dumps({"files": files}, sort_keys=True).encode()
    while data:
        data = data[os.write(fd, data) :]


def _tree_files(output_dirs: list[str]) -> Iterator[str]:
    for tree in output_dirs:
        for dirpath, _dirs, names in os.walk(tree):
            yield from (os.path.join(dirpath, name) for name in names)


def _send(sock: socket.socket, msg: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(msg).encode()
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.send(data)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def serve(sock: socket.socket, cli: CliMain) -> int:
    """Fork a child per request until the engine closes `sock`."""
    preload()
    children: dict[int, tuple[int, int]] = {}  # pidfd -> (id, pid)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    try:
        while True:
            for key, _ in sel.select():
                if key.fileobj is sock:
                    data, fds, _flags, _addr = socket.recv_fds(sock, _MAX_MESSAGE, 3)
                    if not data:
                        return 0
                    req = json.loads(data)
                    if "kill" in req:
                        for ident, pid in children.values():
                            if ident == req["kill"]:
                                _kill_group(pid)
                        continue
                    sys.stdout.flush()
                    sys.stderr.flush()
                    pid = os.fork()
                    if pid == 0:
                        _child(req, sock.fileno(), fds, cli)
                    for fd in fds:
                        os.close(fd)
                    pidfd = os.pidfd_open(pid)
                    children[pidfd] = (req["id"], pid)
                    sel.register(pidfd, selectors.EVENT_READ)
                    _send(sock, {"id": req["id"], "pid": pid}, [pidfd])
                else:
                    pidfd = int(key.fd)
                    ident, pid = children.pop(pidfd)
                    sel.unregister(pidfd)
                    os.close(pidfd)
                    # What the action left running dies with it (its output files are
                    # reused). Killed before the reap, while the zombie keeps its pid taken.
                    _kill_group(pid)
                    _pid, status, usage = os.wait4(pid, 0)
                    code = os.waitstatus_to_exitcode(status)
                    _send(sock, {"id": ident, "maxrss": usage.ru_maxrss, "status": code})
    finally:
        for _ident, pid in children.values():
            _kill_group(pid)


def main(protocol: int, cli: CliMain) -> int:
    if protocol != PROTOCOL:
        print(
            f"error: strata worker: the engine speaks worker protocol {protocol}, this "
            f"strata speaks {PROTOCOL}; use the same strata version for the engine and "
            "the @strata repository",
            file=sys.stderr,
        )
        return 2
    sock = socket.socket(fileno=os.dup(0))
    os.close(0)
    os.open(os.devnull, os.O_RDONLY)
    return serve(sock, cli)
