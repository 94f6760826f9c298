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

Protocol, over a SOCK_SEQPACKET socket on fd 0 (one JSON message a packet):

    engine → worker   {"id": N, "argv": [...], "cwd": D, "env": {...},
                       "stdout": F, "stderr": F}
    engine → worker   {"kill": N}: SIGKILL the child's process group (its pid
                      is the worker's to use: the worker may run in a pid namespace)
    worker → engine   {"id": N, "pid": P} with a pidfd of the child attached
                      (readable once the child exits)
                      {"id": N, "status": S, "maxrss": KiB} once it is reaped
                      (S < 0: killed by signal -S)

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
import sys
import traceback
from typing import Any

from strata.actions import ACTIONS

_MAX_MESSAGE = 1 << 20


def _preload() -> None:
    """Import what an action needs, so each child starts with it loaded."""
    import strata.cli  # noqa: F401

    for target in ACTIONS.values():
        importlib.import_module(target.split(":")[0])


def _child(req: dict[str, Any], control: int) -> None:
    """In the forked child: become the action's process, run it, never return."""
    code = 2
    try:
        os.setsid()
        os.close(control)
        os.chdir(req["cwd"])
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        for fd, target in ((null, 0), (out, 1), (err, 2)):
            os.dup2(fd, target)
            os.close(fd)
        os.closerange(3, 1 << 16)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(req["env"])
        argv = list(req["argv"])
        sys.argv = argv
        from strata.cli import main

        code = main(argv[1:])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 2
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os._exit(code)


def _send(sock: socket.socket, msg: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(msg).encode()
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.send(data)


def serve(sock: socket.socket) -> int:
    """Fork a child per request until the engine closes `sock`."""
    _preload()
    children: dict[int, tuple[int, int]] = {}  # pidfd -> (id, pid)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    try:
        while True:
            for key, _ in sel.select():
                if key.fileobj is sock:
                    data = sock.recv(_MAX_MESSAGE)
                    if not data:
                        return 0
                    req = json.loads(data)
                    if "kill" in req:
                        for ident, pid in children.values():
                            if ident == req["kill"]:
                                with contextlib.suppress(ProcessLookupError, PermissionError):
                                    os.killpg(pid, signal.SIGKILL)
                        continue
                    sys.stdout.flush()
                    sys.stderr.flush()
                    pid = os.fork()
                    if pid == 0:
                        _child(req, sock.fileno())
                    pidfd = os.pidfd_open(pid)
                    children[pidfd] = (req["id"], pid)
                    sel.register(pidfd, selectors.EVENT_READ)
                    _send(sock, {"id": req["id"], "pid": pid}, [pidfd])
                else:
                    pidfd = int(key.fd)
                    ident, pid = children.pop(pidfd)
                    sel.unregister(pidfd)
                    os.close(pidfd)
                    _pid, status, usage = os.wait4(pid, 0)
                    code = os.waitstatus_to_exitcode(status)
                    _send(sock, {"id": ident, "maxrss": usage.ru_maxrss, "status": code})
    finally:
        for _ident, pid in children.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def main() -> int:
    sock = socket.socket(fileno=os.dup(0))
    os.close(0)
    os.open(os.devnull, os.O_RDONLY)
    return serve(sock)
