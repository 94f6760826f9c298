"""One cold build of this checkout's `//examples/...` per session, per engine.

Building the examples from nothing takes minutes under Bazel and under the
embedded engine. The tests that look at the examples' outputs (examples,
helpers, image_test) are not about a cold build, so they share these session
fixtures (registered in conftest.py): the first test to ask builds, the others
find every action done, in every pytest-xdist worker of the run (`once`). A
test about building from nothing makes its own (the remote cache tests), or
shares a second one (`strata_bases`, which test_examples_bazel compares).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from realtools import need, run

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ("--symlink_prefix=/", "--spawn_strategy=processwrapper-sandbox")
"""Bazel's flags for builds in this checkout: the same everywhere, so analysis is reused."""
OUTPUT_GROUPS = "--output_groups=+tarball,+sbom"
"""Every image's docker-archive and SBOM too (a plain build writes only the OCI layouts)."""


def bazel(user_root: Path, *args: str) -> str:
    """Bazel (batch mode) in this checkout, its output base under `user_root`."""
    return run(need("bazel"), "--batch", f"--output_user_root={user_root}", *args, cwd=ROOT).stdout


def strata_bin(base: Path) -> Path:
    """The bazel-bin directory of the embedded engine's output base `base`."""
    found = list(base.glob("execroot/*/bazel-out/k8-fastbuild/bin"))
    assert len(found) == 1, found
    return found[0]


def once(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """The directory `name` that `make` filled, once for the whole run: the pytest-xdist
    workers of one run share their base directory's parent, and the first to ask makes
    it while the others wait on a lock (a failed `make` leaves it for the next to try)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    path, done = shared / name, shared / f"{name}.done"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            path.mkdir(exist_ok=True)
            make(path)
            done.touch()
    return path


@pytest.fixture(scope="session")
def examples_bazel_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Bazel output user root every test building this checkout shares (with FLAGS);
    a test's own workspace under it gets an output base of its own."""
    return once(tmp_path_factory, "bazel-examples", lambda _p: None)


@pytest.fixture(scope="session")
def examples_bazel_bin(tmp_path_factory: pytest.TempPathFactory, examples_bazel_root: Path) -> Path:
    """bazel-bin after `bazel build OUTPUT_GROUPS //examples/...`, from nothing, once a run."""
    root = examples_bazel_root
    once(
        tmp_path_factory,
        "bazel-examples-built",
        lambda _p: bazel(root, "build", *FLAGS, OUTPUT_GROUPS, "//examples/..."),
    )
    return Path(bazel(examples_bazel_root, "info", FLAGS[0], "bazel-bin").strip())


@pytest.fixture(scope="session")
def examples_strata_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An output base of the embedded engine after `strata build OUTPUT_GROUPS
    //examples/...`, from nothing, once a run."""
    return once(tmp_path_factory, "strata-examples", _strata_build_examples)


@pytest.fixture(scope="session")
def strata_bases(
    tmp_path_factory: pytest.TempPathFactory, examples_strata_base: Path
) -> list[Path]:
    """The examples built twice by the embedded engine, each time from nothing: the
    session's shared build (above) and one of this module's own."""
    return [examples_strata_base, once(tmp_path_factory, "strata-base1", _strata_build_examples)]


def _strata_build_examples(base: Path) -> None:
    """`strata build OUTPUT_GROUPS //examples/...` of this checkout into the output base `base`."""
    run(ROOT / "tools" / "strata", "build", f"--output_base={base}", OUTPUT_GROUPS,
        "//examples/...", cwd=ROOT)  # fmt: skip
