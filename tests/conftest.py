from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from realtools import DockerEngine, unavailable

# The `canary` fixture (tests/canary.py): a directory hostile input must leave untouched.
pytest_plugins = ["canary"]


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
