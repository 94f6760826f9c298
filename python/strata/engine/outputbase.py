"""Where a workspace's build state lives, laid out like Bazel's output base.

    <output_base>/
      lock                          held for the duration of a command
      execroot/<ws>/bazel-out/...   outputs, at stable paths (like Bazel)
      external/<repo>/...           fetched repositories
      sandbox/<n>/                  one fresh execroot per running action
      cache/                        default --disk_cache (ac/, cas/)
      analysis/<key>.pickle         stored analyses (see analysis_cache.py)
      stat_cache                    source digests (see digests.py)
      action_records                key and output stamps of each action's last
                                    run (see action_records.py)
      action_log                    last key material per action, for --explain

The default output base is `~/.cache/strata/<hash of the workspace path>`, so
two checkouts never share state, and `strata-bin` at the workspace root points
into the execroot's bin directory, like `bazel-bin`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import platform
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from strata.errors import UserError

WORKSPACE_FILES = ("WORKSPACE", "WORKSPACE.bazel", "MODULE.bazel")


def host_cpu() -> str:
    """Bazel's `--cpu` for this host: `k8` on x86_64, `aarch64` on arm64, else the machine's
    own name. The one answer for the bin directory, `select()`'s flags and make variables."""
    return {"x86_64": "k8", "amd64": "k8", "aarch64": "aarch64", "arm64": "aarch64"}.get(
        platform.machine().lower(), platform.machine()
    )


def bin_dir() -> str:
    """Execroot path of generated files, as `ctx.bin_dir.path` has it."""
    return f"bazel-out/{host_cpu()}-fastbuild/bin"


def testlogs_dir() -> str:
    """Execroot path of test logs (`bazel-testlogs` points there)."""
    return f"bazel-out/{host_cpu()}-fastbuild/testlogs"


def find_workspace(start: Path) -> Path:
    """The nearest ancestor of `start` (or itself) with WORKSPACE(.bazel) or MODULE.bazel."""
    start = start.resolve()
    for d in (start, *start.parents):
        if any((d / name).is_file() for name in WORKSPACE_FILES):
            return d
    raise UserError(
        f"not inside a workspace (got {start}); "
        "run strata in a directory with a WORKSPACE file, or create one at the repository root"
    )


def default_output_base(workspace: Path, user_root: Path | None = None) -> Path:
    """`<user_root>/<hash of the workspace path>`; the user root defaults to ~/.cache/strata
    (Bazel's `--output_user_root`)."""
    h = hashlib.sha256(os.fsencode(workspace.resolve())).hexdigest()[:32]
    if user_root is not None:
        return user_root / h
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(cache_home) / "strata" / h


@dataclass(frozen=True)
class OutputBase:
    root: Path
    workspace: Path
    workspace_name: str = "__main__"

    @property
    def execroot(self) -> Path:
        return self.root / "execroot" / self.workspace_name

    @property
    def external(self) -> Path:
        return self.root / "external"

    @property
    def sandbox_root(self) -> Path:
        return self.root / "sandbox"

    @property
    def default_disk_cache(self) -> Path:
        return self.root / "cache"

    @property
    def stat_cache_file(self) -> Path:
        return self.root / "stat_cache"

    @property
    def last_build_file(self) -> Path:
        """Figures of the last build (BuildStats.to_json), for benchmarks and scripts."""
        return self.root / "last_build.json"

    @property
    def action_log_file(self) -> Path:
        return self.root / "action_log"

    @property
    def action_records_file(self) -> Path:
        return self.root / "action_records"

    @property
    def bin(self) -> Path:
        return self.execroot / bin_dir()

    @property
    def testlogs(self) -> Path:
        return self.execroot / testlogs_dir()

    def source_path(self, execroot_path: str) -> Path:
        """Where a source input lives: the workspace, or external/<repo>/ in the output base."""
        if execroot_path.startswith("external/"):
            return self.root / execroot_path
        return self.workspace / execroot_path

    @contextlib.contextmanager
    def locked(self, on_wait: str = "") -> Iterator[None]:
        """Hold the output base for one command; a second command waits for the first."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "lock", "a+b") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait:
                    os.write(2, on_wait.encode() + b"\n")
                fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def link_convenience_symlink(self, name: str = "strata-bin") -> None:
        """Point `<workspace>/strata-bin` at the bin directory, or `strata-testlogs` at the
        test logs (replacing an old link only).

        Raises OSError where the workspace is read-only: the caller warns, since
        the outputs themselves are in place."""
        link = self.workspace / name
        target = self.testlogs if name == "strata-testlogs" else self.bin
        target.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():
            if os.readlink(link) == str(target):
                return
            link.unlink()
        elif link.exists():
            return
        os.symlink(target, link)

    def clean(self, *, expunge: bool) -> None:
        """Remove outputs (keeping the disk cache) or, with expunge, the whole output base."""
        from strata.engine.leftovers import clean_up

        clean_up(self.sandbox_root)  # processes a killed build left running there
        for name in ("strata-bin", "strata-testlogs"):
            link = self.workspace / name
            if link.is_symlink():
                link.unlink()
        if expunge:
            _rmtree(self.root)
            return
        for p in (
            self.root / "execroot",
            self.sandbox_root,
            self.action_log_file,
            self.action_records_file,
        ):
            _rmtree(p)
        with contextlib.suppress(FileNotFoundError):
            self.stat_cache_file.unlink()


def _rmtree(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, onerror=_make_writable_and_retry)
    elif p.exists() or p.is_symlink():
        p.unlink()


def _make_writable_and_retry(func: object, path: str, exc: object) -> None:
    os.chmod(os.path.dirname(path), 0o755)
    if callable(func):
        func(path)
