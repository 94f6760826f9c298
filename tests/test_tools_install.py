"""The strata tool's wheels are installed once per machine and hard-linked into each repository."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "rules" / "private" / "tools_install.py"


def load_installer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tools_install", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def ti(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The installer with pip replaced by a stand-in that counts its runs."""
    module = load_installer()
    module.runs = []

    def fake_pip(lock: Path, site: Path) -> None:
        module.runs.append(site)
        (site / "pkg").mkdir(parents=True)
        (site / "pkg" / "__init__.py").write_text(f"LOCK = {lock.read_text()!r}\n")
        (site / "pkg" / "data.bin").write_bytes(bytes(range(256)) * 10)
        os.symlink("pkg", site / "alias")

    monkeypatch.setattr(module, "pip_install", fake_pip)
    yield module


def lock(tmp_path: Path, text: str = "wheel==1 --hash=sha256:00\n") -> Path:
    p = tmp_path / "requirements.lock"
    p.write_text(text)
    return p


def test_second_repository_gets_hard_links_without_running_pip(
    ti: ModuleType, tmp_path: Path
) -> None:
    cache, lk = tmp_path / "cache", lock(tmp_path)
    assert ti.install(lk, tmp_path / "a" / "site", cache) == "installed"
    assert ti.install(lk, tmp_path / "b" / "site", cache) == "hit"
    assert len(ti.runs) == 1
    a, b = tmp_path / "a" / "site", tmp_path / "b" / "site"
    assert (a / "pkg" / "data.bin").stat().st_ino == (b / "pkg" / "data.bin").stat().st_ino
    assert os.readlink(b / "alias") == "pkg"
    assert (b / "pkg" / "__init__.py").read_text() == (a / "pkg" / "__init__.py").read_text()


def test_another_lock_file_is_another_install(ti: ModuleType, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ti.install(lock(tmp_path), tmp_path / "a" / "site", cache)
    ti.install(lock(tmp_path, "wheel==2 --hash=sha256:11\n"), tmp_path / "b" / "site", cache)
    assert len(ti.runs) == 2
    assert "wheel==2" in (tmp_path / "b" / "site" / "pkg" / "__init__.py").read_text()
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 2


def test_an_edited_install_is_found_and_installed_again(ti: ModuleType, tmp_path: Path) -> None:
    cache, lk = tmp_path / "cache", lock(tmp_path)
    ti.install(lk, tmp_path / "a" / "site", cache)
    # A hard link is the same file: editing one repository's copy edits the shared install.
    with open(tmp_path / "a" / "site" / "pkg" / "data.bin", "r+b") as f:
        f.write(b"X")
    assert ti.install(lk, tmp_path / "b" / "site", cache) == "reinstalled"
    assert len(ti.runs) == 2
    assert (tmp_path / "b" / "site" / "pkg" / "data.bin").read_bytes()[:1] == b"\0"
    assert ti.install(lk, tmp_path / "c" / "site", cache) == "hit"


def test_half_made_entries_are_never_used(ti: ModuleType, tmp_path: Path) -> None:
    cache, lk = tmp_path / "cache", lock(tmp_path)
    key = ti.cache_key(lk.read_bytes())
    (cache / key / "site").mkdir(parents=True)  # a crash before the manifest: no entry
    assert ti.install(lk, tmp_path / "a" / "site", cache) == "reinstalled"
    assert (tmp_path / "a" / "site" / "pkg" / "__init__.py").is_file()
    assert sorted(p.name for p in cache.iterdir()) == [key]  # nothing left aside


def test_pip_failure_is_one_line_and_leaves_no_entry(tmp_path: Path) -> None:
    """The real installer, with pip pointed at an index that does not exist."""
    cache, lk = tmp_path / "cache", lock(tmp_path, "nosuchwheel==1.0 --hash=sha256:" + "0" * 64)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "2",
    }
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--lock", str(lk), "--dest", str(tmp_path / "site")]
        + ["--cache", str(cache)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 1
    first = proc.stderr.splitlines()[0]
    assert first.startswith(f"pip install --require-hashes -r {lk} failed (got exit ")
    assert first.endswith("fix the package index configuration (pip config list) or the lock file")
    assert "Traceback" not in proc.stderr
    assert [p.name for p in cache.iterdir()] == []
    assert not (tmp_path / "site").exists()


def test_unwritable_cache_installs_without_sharing(ti: ModuleType, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert ti.install(lock(tmp_path), tmp_path / "a" / "site", blocker / "cache") == "installed"
    assert (tmp_path / "a" / "site" / "pkg" / "__init__.py").is_file()


WORKSPACE = """workspace(name = "toolshare")

local_repository(name = "strata", path = "{root}")

load("@strata//rules:repositories.bzl", "strata_dependencies")

strata_dependencies()
"""

BUILD = """load("@strata//rules:defs.bzl", "store_path")

store_path(name = "one-1.0", srcs = {"one.txt": "share/one.txt"})
"""


@pytest.mark.slow
def test_a_new_workspace_reuses_the_machine_install(tmp_path: Path, tools_cache: str) -> None:
    """The second workspace's tool set-up runs no pip: its index is unreachable, and it builds.

    Both use the machine's install (the session's `tools_cache`): the first workspace
    installs it if no test has yet; installing from nothing is the `ti` tests' subject."""
    cache = Path(tools_cache)
    base_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path / "home"),
        "STRATA_TOOLS_CACHE": tools_cache,
        "PYTHONPATH": str(ROOT / "python"),
    }
    outputs = []
    for n, extra in enumerate(
        ({}, {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/simple"})
    ):
        ws = tmp_path / f"ws{n}"
        ws.mkdir()
        (ws / "WORKSPACE").write_text(WORKSPACE.format(root=ROOT))
        (ws / "BUILD").write_text(BUILD)
        (ws / "one.txt").write_text("one file\n")
        proc = subprocess.run(
            [sys.executable, "-m", "strata", "build", f"--output_base={tmp_path / f'ob{n}'}"]
            + ["//:one-1.0"],
            cwd=ws,
            env={**os.environ, **base_env, **extra},
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs.append((ws / "strata-bin" / "one-1.0.layer.tar").read_bytes())
    assert outputs[0] == outputs[1]
    site0 = tmp_path / "ob0" / "external" / "strata_tools" / "site"
    site1 = tmp_path / "ob1" / "external" / "strata_tools" / "site"
    some = next(p for p in site0.rglob("*.py"))
    rel = some.relative_to(site0)
    assert some.stat().st_ino == (site1 / rel).stat().st_ino
    # ... and that file is the cache entry's own.
    entries = [e for e in cache.iterdir() if (e / "site" / rel).is_file()]
    assert some.stat().st_ino in {(e / "site" / rel).stat().st_ino for e in entries}
