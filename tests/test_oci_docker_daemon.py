"""strata.oci.docker_daemon against a stand-in docker program (a shell script).

The real engine is tests/test_image_load_docker.py; here the answers that a
real 20.10 daemon never gives (the containerd store, a refused listing, a load
that stops reading) are checked.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from strata.oci.docker_daemon import DaemonQueryError, docker_load, present_chain_ids
from strata.oci.docker_load import chain_ids
from strata.oci.tarwriter import Sink

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64


def _docker(tmp_path: Path, body: str) -> str:
    prog = tmp_path / "docker"
    prog.write_text("#!/bin/sh\n" + body)
    prog.chmod(0o755)
    return str(prog)


LISTING = f"""case "$1 $2" in
  "info --format") echo '[["Backing Filesystem","extfs"]]' ;;
  "image ls") echo sha256:1; echo sha256:2 ;;
  "image inspect") echo '["{A}","{B}"]'; echo '["{A}","{C}"]' ;;
  *) exit 3 ;;
esac
"""


def test_every_prefix_of_every_image_is_present(tmp_path: Path) -> None:
    got = present_chain_ids(_docker(tmp_path, LISTING))
    assert got == set(chain_ids([A, B]) + chain_ids([A, C]))
    assert len(got) == 3


def test_no_images_is_no_layers(tmp_path: Path) -> None:
    body = LISTING.replace("echo sha256:1; echo sha256:2", "true")
    assert present_chain_ids(_docker(tmp_path, body)) == frozenset()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            'echo \'[["driver-type","io.containerd.snapshotter.v1"]]\'',
            "the daemon keeps images in containerd, which needs every layer",
        ),
        (
            "echo 'Cannot connect to the Docker daemon' >&2; exit 1",
            "{docker} info: Cannot connect to the Docker daemon",
        ),
        (
            LISTING.replace("echo sha256:1; echo sha256:2", "echo denied >&2; exit 1"),
            "{docker} image ls: denied",
        ),
        (
            LISTING.replace(f'["{A}","{C}"]', "nonsense"),
            "{docker} image inspect printed 'nonsense'",
        ),
    ],
)
def test_a_daemon_that_cannot_be_asked_says_why(tmp_path: Path, body: str, reason: str) -> None:
    docker = _docker(tmp_path, body)
    with pytest.raises(DaemonQueryError) as e:
        present_chain_ids(docker)
    assert str(e.value) == reason.format(docker=docker)


def test_the_load_counts_what_it_sends(tmp_path: Path) -> None:
    got = tmp_path / "got"
    docker = _docker(tmp_path, f'cat > {got}; echo "Loaded image: x:1"\n')
    data = bytes(range(256)) * 4096

    def write(sink: Sink) -> None:
        for i in range(0, len(data), 4096):
            sink.write(data[i : i + 4096])

    result = docker_load(docker, write)
    assert (result.returncode, result.stdout, result.sent) == (0, "Loaded image: x:1\n", len(data))
    assert hashlib.sha256(got.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_a_load_that_stops_reading_is_its_exit_status_not_a_crash(tmp_path: Path) -> None:
    docker = _docker(
        tmp_path, "head -c 10 >/dev/null; echo 'open x.tar: no such file' >&2; exit 1\n"
    )
    chunk = b"\0" * 65536

    def write(sink: Sink) -> None:
        for _ in range(400):  # far more than a pipe holds
            sink.write(chunk)

    result = docker_load(docker, write)
    assert result.returncode == 1
    assert result.stderr == "open x.tar: no such file\n"
    assert result.sent < 400 * len(chunk)
