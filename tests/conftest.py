from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from realtools import DockerEngine, RunningTest, need, unavailable

# `canary` (tests/canary.py): a directory hostile input must leave untouched; the shared
# builds of //examples/... (tests/examples_build.py).
pytest_plugins = ["canary", "examples_build"]


FIRST = ("test_parity_generated.py",)
"""The longest module: run first, so that under pytest-xdist one worker starts on it at
once while the others take the rest, rather than it starting last and running alone."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name not in FIRST)  # stable: the rest keep order


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Let realtools.need see which test (and its fixtures) asks for a tool."""
    RunningTest.item = item
    try:
        return (yield)
    finally:
        RunningTest.item = None


@pytest.fixture(scope="session")
def tools_cache() -> str:
    """The machine's install of the tool's wheels, as strata_dependencies() finds it by
    default (rules/repositories.bzl). A test that moves HOME or XDG_CACHE_HOME but is not
    about a cold install passes it as STRATA_TOOLS_CACHE: the wheels are installed once
    per machine, not once per test."""
    if "STRATA_TOOLS_CACHE" in os.environ:
        return os.environ["STRATA_TOOLS_CACHE"]
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg.startswith("/") else Path.home() / ".cache"
    return str(base / "strata" / "tools")


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """One real Docker engine for the whole session (started on first use)."""
    if os.geteuid() != 0:
        unavailable("a private dockerd needs root")
    root = Path(tempfile.mkdtemp(prefix="strata-docker-", dir="/tmp"))
    engine = DockerEngine(root)
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()
        # dockerd mounts its data root on itself; a daemon that did not unmount it
        # would keep rmtree from removing the directory, so detach it first.
        if os.path.ismount(root / "data"):
            subprocess.run(["umount", "-R", "-l", str(root / "data")], check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def podman_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment for a private podman: vfs storage and runc (crun fails on this
    kind of machine's hybrid cgroups) under a temporary directory."""
    if os.geteuid() != 0:
        unavailable("podman with runc and vfs storage here needs root")
    need("podman")
    need("runc")
    root = tmp_path_factory.mktemp("podman")
    (root / "containers.conf").write_text(
        '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
        'netns = "none"\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
    )
    (root / "storage.conf").write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{root}/graph"\nrunroot = "{root}/run"\n'
    )
    return {
        **os.environ,
        "CONTAINERS_CONF": str(root / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(root / "storage.conf"),
    }
