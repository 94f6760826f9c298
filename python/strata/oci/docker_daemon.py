"""Asking a Docker daemon which layers it has, and feeding `docker load`, through the CLI.

The docker program is the one the user's image_load already checked answers:
going through it keeps DOCKER_HOST, contexts and TLS settings as they are.
The daemon's layer store holds a layer under its chain ID; every image it
lists (`docker image ls -a`, intermediate ones included) holds the chain of
each prefix of its `RootFS.Layers` (diff_ids), and nothing else keeps a layer
alive, so those chains are what a load can leave out.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, cast

from strata.oci.docker_load import chain_ids
from strata.oci.tarwriter import Sink

_CONTAINERD_STORE = "io.containerd.snapshotter.v1"


class DaemonQueryError(Exception):
    """The daemon could not be asked (its one-line reason is the message)."""


def _docker(docker: str, env: Mapping[str, str] | None, *args: str) -> str:
    what = " ".join([docker, *(a for a in args[:2] if not a.startswith("-"))])
    try:
        proc = subprocess.run(
            [docker, *args], capture_output=True, text=True, env=env, check=False, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DaemonQueryError(f"{what}: {e}") from None
    if proc.returncode != 0:
        reason = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        raise DaemonQueryError(f"{what}: {reason[0]}")
    return proc.stdout


def present_chain_ids(docker: str, env: Mapping[str, str] | None = None) -> frozenset[str]:
    """Chain IDs of every layer the daemon's images hold.

    Raises DaemonQueryError when the daemon cannot be asked, or when it keeps
    images in containerd's store (Docker 24+ with the containerd image store),
    whose load wants every layer's file.
    """
    status = _docker(docker, env, "info", "--format", "{{json .DriverStatus}}")
    if _CONTAINERD_STORE in status:
        raise DaemonQueryError("the daemon keeps images in containerd, which needs every layer")
    ids = _docker(docker, env, "image", "ls", "-a", "-q", "--no-trunc").split()
    if not ids:
        return frozenset()
    present: set[str] = set()
    out = _docker(docker, env, "image", "inspect", "--format", "{{json .RootFS.Layers}}", *ids)
    for line in out.splitlines():
        try:
            layers = json.loads(line)
        except json.JSONDecodeError:
            raise DaemonQueryError(f"{docker} image inspect printed {line[:80]!r}") from None
        if isinstance(layers, list) and all(isinstance(d, str) for d in layers):
            present.update(chain_ids(layers))
    return frozenset(present)


class _Counter:
    """A sink that counts what it passes on."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.count = 0

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        self.sink.write(data)
        self.count += len(data)
        return len(data)


@dataclass(frozen=True)
class LoadResult:
    returncode: int
    stdout: str
    stderr: str
    sent: int
    """Bytes written to `docker load`'s input: what went to the daemon."""


def docker_load(
    docker: str, write: Callable[[Sink], None], env: Mapping[str, str] | None = None
) -> LoadResult:
    """Run `docker load`, feeding it what `write` writes; never raises for a failed load."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [docker, "load"], stdin=subprocess.PIPE, stdout=out, stderr=err, env=env
        )
        stdin = cast(IO[bytes], proc.stdin)  # stdin=PIPE always sets it
        counter = _Counter(stdin)
        # A broken pipe is docker load giving up early: its status and stderr say why.
        with contextlib.suppress(BrokenPipeError):
            write(counter)
        with contextlib.suppress(BrokenPipeError):
            stdin.close()
        returncode = proc.wait()
        out.seek(0)
        err.seek(0)
        return LoadResult(
            returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            counter.count,
        )
