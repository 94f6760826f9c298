"""`strata action MNEMONIC --persistent_worker`: strata's actions as Bazel persistent workers.

Under Bazel every strata action used to start Python and import strata
(a tenth of a second and more), once per action: a 300-path closure paid it
300 times. `run_strata` marks its actions `supports-workers`, so Bazel starts
`strata action MNEMONIC --persistent_worker` once per mnemonic and sends it
one WorkRequest per action. Bazel reads the action's last argument, the
`@<target>.<MNEMONIC>.request.json` flag file, and sends its one line (the
request) as the request's only argument; the file is also among the request's
inputs, which is how the action still names it in its errors, word for word
as it does when it runs as its own process.

As the engine's worker (strata.worker), this process only loads the action
modules and forks one child per request: the child takes the request's
sandbox directory (Bazel's `--worker_sandboxing`) as its working directory,
writes its stdout and stderr to a file that becomes the response's `output`,
runs the action as `strata action` would, and exits with its status. No state
survives from one action to the next.

The protocol is protobuf (Bazel 4.2.3's default): each message is prefixed
with its length as a varint. WorkRequest: `arguments` (1), `inputs` (2:
`path` 1, `digest` 2), `request_id` (3), `cancel` (4), `verbosity` (5),
`sandbox_dir` (6); WorkResponse: `exit_code` (1), `output` (2),
`request_id` (3). Messages are read and written with the protobuf runtime
(strata.engine.cache.reapi builds the message types the same way).

Spec: https://bazel.build/remote/persistent (and worker_protocol.proto).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

# protobuf ships no type stubs and the lock file has no types-protobuf.
from google.protobuf import (  # type: ignore[import-untyped]
    descriptor_pb2,
    descriptor_pool,
    message_factory,
)

from strata.worker import CliMain, end_child, preload, run_cli

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "blaze.worker"


def _message_types() -> tuple[Any, Any]:
    """WorkRequest and WorkResponse, built from their field numbers (no generated code)."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="strata_worker_protocol.proto", package=_PACKAGE, syntax="proto3"
    )
    tables = {
        "Input": [("path", 1, _F.TYPE_STRING, ""), ("digest", 2, _F.TYPE_BYTES, "")],
        "WorkRequest": [
            ("arguments", 1, _F.TYPE_STRING, "*"),
            ("inputs", 2, _F.TYPE_MESSAGE, "*Input"),
            ("request_id", 3, _F.TYPE_INT32, ""),
            ("cancel", 4, _F.TYPE_BOOL, ""),
            ("verbosity", 5, _F.TYPE_INT32, ""),
            ("sandbox_dir", 6, _F.TYPE_STRING, ""),
        ],
        "WorkResponse": [
            ("exit_code", 1, _F.TYPE_INT32, ""),
            ("output", 2, _F.TYPE_STRING, ""),
            ("request_id", 3, _F.TYPE_INT32, ""),
            ("was_cancelled", 4, _F.TYPE_BOOL, ""),
        ],
    }
    for name, fields in tables.items():
        msg = proto.message_type.add(name=name)
        for field_name, number, kind, how in fields:
            label = _F.LABEL_REPEATED if how.startswith("*") else _F.LABEL_OPTIONAL
            field = msg.field.add(name=field_name, number=number, type=kind, label=label)
            if kind == _F.TYPE_MESSAGE:
                field.type_name = f".{_PACKAGE}.{how.lstrip('*')}"
    classes = message_factory.GetMessages([proto], pool=descriptor_pool.DescriptorPool())
    request = classes[f"{_PACKAGE}.WorkRequest"]
    response = classes[f"{_PACKAGE}.WorkResponse"]
    return request, response


WorkRequest, WorkResponse = _message_types()
_MAX_MESSAGE = 64 << 20


def _read_varint(stream: BinaryIO) -> int | None:
    """A base-128 varint from `stream`; None at a clean end of input."""
    value = shift = 0
    while True:
        byte = stream.read(1)
        if not byte:
            if shift:
                raise EOFError("the input ends inside a message length")
            return None
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ValueError("a message length is not a varint")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def read_requests(stream: BinaryIO) -> Iterator[object]:
    """Length-delimited WorkRequests until the input ends."""
    while (size := _read_varint(stream)) is not None:
        if size > _MAX_MESSAGE:
            raise ValueError(f"a work request of {size} bytes is larger than any strata sends")
        data = stream.read(size)
        if len(data) != size:
            raise EOFError("the input ends inside a work request")
        request = WorkRequest()
        request.ParseFromString(data)
        yield request


def write_response(stream: BinaryIO, exit_code: int, output: str, request_id: int) -> None:
    data = WorkResponse(exit_code=exit_code, output=output, request_id=request_id)
    body = data.SerializeToString()
    stream.write(_varint(len(body)) + body)
    stream.flush()


@dataclass(frozen=True)
class _Job:
    argv: list[str]
    """`strata` arguments: `action MNEMONIC @<request file>`."""
    cwd: str


def _request_file(request: object, text: str, cwd: str) -> str | None:
    """The input whose one line is `text`: the flag file Bazel read the request from."""
    line = text.encode("utf-8") + b"\n"
    for item in getattr(request, "inputs", ()):
        path = str(item.path)
        if not path.endswith(".json"):
            continue
        with contextlib.suppress(OSError), open(os.path.join(cwd, path), "rb") as f:
            if f.read(len(line) + 1) == line:
                return path
    return None


def _run_child(job: _Job, output_fd: int, cli: CliMain) -> None:
    """In the forked child: run the action with its output going to `output_fd`; never return."""
    code = 2
    try:
        os.chdir(job.cwd)
        null = os.open(os.devnull, os.O_RDONLY)
        for fd, target in ((null, 0), (output_fd, 1), (output_fd, 2)):
            os.dup2(fd, target)
        code = run_cli("strata", job.argv, cli)
    except BaseException:
        traceback.print_exc()
        code = 2
    finally:
        end_child(code)


def _run(job: _Job, cli: CliMain) -> tuple[int, str]:
    """Run one action in a child process: its exit code and what it printed."""
    with tempfile.TemporaryFile() as out:
        pid = os.fork()
        if pid == 0:
            _run_child(job, out.fileno(), cli)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    if code < 0:
        text += f"error: the action was killed by signal {-code}\n"
        code = 1
    return code, text


def serve(mnemonic: str, stdin: BinaryIO, stdout: BinaryIO, cli: CliMain) -> int:
    """Answer WorkRequests for `mnemonic` actions until Bazel closes the input."""
    preload()
    for request in read_requests(stdin):
        request_id = int(getattr(request, "request_id", 0))
        if getattr(request, "cancel", False):
            continue  # not announced (no supports-worker-cancellation): nothing to cancel
        cwd = str(getattr(request, "sandbox_dir", "")) or os.getcwd()
        args = [str(a) for a in getattr(request, "arguments", ())]
        if len(args) != 1:
            write_response(
                stdout,
                2,
                f"error: {mnemonic} worker: a work request holds the one line of an action's "
                f"request file (got {len(args)} arguments); run the action without a worker\n",
                request_id,
            )
            continue
        path = _request_file(request, args[0], cwd)
        with contextlib.ExitStack() as stack:
            if path is None:
                # No input holds it (not Bazel's way, but cheap to allow): a file of our own.
                tmp = stack.enter_context(
                    tempfile.NamedTemporaryFile("w", suffix=".request.json", encoding="utf-8")
                )
                tmp.write(args[0] + "\n")
                tmp.flush()
                path = tmp.name
            code, output = _run(_Job(["action", mnemonic, "@" + path], cwd), cli)
        write_response(stdout, code, output, request_id)
    return 0
