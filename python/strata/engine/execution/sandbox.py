"""Which sandbox an action runs in, and the bubblewrap command line of the namespace one.

Two kinds, chosen once per build (`--sandbox=auto|namespace|directory`):

* **namespace** (Linux, bubblewrap, as Bazel's linux-sandbox): a mount
  namespace in which `/` is the host's, read-only; `/tmp` is an empty
  directory of the action's own; `/dev` is minimal and `/proc` private (its
  `sys` read-only, so root cannot set the host's sysctls; a new pid
  namespace: processes the action leaves behind die with it, and with
  strata, `--die-with-parent`); no network (a new network namespace with
  only loopback) unless the action is tagged `requires-network`. The only
  writable places are the action's sandbox directory and its `/tmp`. Since
  the host's `/tmp` is hidden, the places the staged input links point into
  (workspace, execroot, repositories, each read-only) are bound again when
  they live under it, as they do in tests. An action tagged `no-sandbox` or
  `local` runs outside it, in the directory sandbox alone (as Bazel runs such
  an action outside its sandbox): `pull_image`'s BaseBlobs fetch, which reads
  the user's registry logins and fills the shared blob store.
* **directory**: the fresh execroot of links alone. Relative paths see only
  the declared inputs, but an absolute path reaches the whole host.

As root, bwrap keeps every capability unless told otherwise; the action
gets only what chown, setpriv (CustomizationLayer) and proot (RunAsRoot)
need: no CAP_SYS_ADMIN (so no remounting the read-only view), no CAP_MKNOD
and no CAP_DAC_READ_SEARCH. bwrap also sets no_new_privs, so no exec regains the rest.

bwrap: https://github.com/containers/bubblewrap (bwrap(1)).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from strata.engine.leftovers import WORKER_TMP
from strata.errors import UserError

MODES = ("auto", "namespace", "directory")

HIDDEN = (Path("/tmp"),)
"""Host directories the namespace replaces; inputs under them are bound back."""

ROOT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
)
"""Docker's default set for root containers, less MKNOD (a disk's device node in the
action's /tmp), NET_RAW, NET_BIND_SERVICE, SETPCAP and AUDIT_WRITE, which no action
needs. Never CAP_DAC_READ_SEARCH: open_by_handle_at reaches any file of a file system
the sandbox has one writable mount of."""

PROC_READ_ONLY = ("sys", "sysrq-trigger", "fs")
"""Parts of the fresh /proc that root could write to change the host (sysctls such as
kernel.core_pattern); bwrap itself covers only irq and bus."""

_PROBE_TIMEOUT = 10.0


@dataclass(frozen=True)
class StagedInput:
    """One declared input as the executor stages it (today: links to `source`)."""

    path: str
    """Its execroot path."""
    source: Path
    """The host file or directory the staged links point at."""
    root: Path
    """The directory `source` belongs to (workspace, execroot, a repository)."""
    is_dir: bool


@dataclass(frozen=True)
class StagingPlan:
    sandbox: Path
    """The action's own directory: the only writable place (its `tmp/` becomes `/tmp`)."""
    execroot: Path
    """The working directory, holding the staged inputs."""
    inputs: tuple[StagedInput, ...]
    network: bool


class Namespace:
    """bubblewrap, found and probed for this build."""

    def __init__(self, bwrap: str) -> None:
        self.bwrap = bwrap
        self._reached: dict[Path, tuple[Path, ...]] = {}
        self._launchers: dict[Path, set[Path]] = {}
        """What each input source needs bound, once a build: the same tools feed every action."""

    def command(self, plan: StagingPlan, argv: Sequence[str]) -> list[str]:
        tmp = plan.sandbox / "tmp"
        tmp.mkdir(exist_ok=True)
        os.chmod(tmp, 0o1777)
        args = [self.bwrap, *system_view(), "--bind", str(tmp), "/tmp"]
        for path in self._read_only(plan, argv[0] if argv else ""):
            args += ["--ro-bind", str(path), str(path)]
        args += ["--bind", str(plan.sandbox), str(plan.sandbox), "--chdir", str(plan.execroot)]
        args += namespace_flags(network=plan.network)
        return [*args, "--", *argv]

    def worker_command(
        self, output_base: Path, repo_roots: Sequence[Path], argv: Sequence[str]
    ) -> list[str]:
        """The namespace strata's action worker (strata.engine.execution.workers) runs in.

        The same read-only view, private `/tmp` (a directory of the output base)
        and no network as an action's, but one for the whole build: it can
        write in the output base, where every action's sandbox lies (and where
        an output linking an input's bytes needs both on one mount). The
        repositories sources come from (the workspace, local repositories, those
        in the output base), and the directories the files of the worker's own
        tool live in, are bound back read-only when they are under the hidden
        `/tmp`.
        """
        base = Path(os.path.realpath(output_base))
        tmp = base / "sandbox" / WORKER_TMP
        tmp.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, 0o1777)
        roots = {Path(os.path.realpath(r)) for r in repo_roots}
        with contextlib.suppress(OSError), os.scandir(base / "external") as it:
            roots.update(Path(os.path.realpath(e.path)) for e in it)
        roots.update(_runfiles_dirs(Path(str(argv[0]) + ".runfiles")))
        roots.update(_named_by_launcher(Path(argv[0])))
        hidden = sorted(r for r in roots if _hidden(r) and not r.is_relative_to(base))
        args = [self.bwrap, *system_view(), "--bind", str(tmp), "/tmp"]
        kept: list[Path] = []
        for path in hidden:  # parents first
            if path.is_dir() and not any(path.is_relative_to(k) for k in kept):
                kept.append(path)
                args += ["--ro-bind", str(path), str(path)]
        args += ["--bind", str(base), str(base), "--chdir", str(base)]
        args += namespace_flags(network=False)
        return [*args, "--", *argv]

    def test_command(
        self,
        tmp: Path,
        readable: Sequence[Path],
        writable: Sequence[Path],
        cwd: Path,
        argv: Sequence[str],
        *,
        network: bool,
    ) -> list[str]:
        """A test's command line (execution.test_runner): the same view as an action's.

        The host read-only, `tmp` as its `/tmp`, the directories of `readable` that
        are under the hidden `/tmp` bound back read-only (the workspace, the output
        base, repositories: where its runfiles links point), and `writable` (its
        TEST_TMPDIR and its test log directory) read-write.
        """
        tmp.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, 0o1777)
        args = [self.bwrap, *system_view(), "--bind", str(tmp), "/tmp"]
        kept: list[Path] = []
        for path in sorted({Path(os.path.realpath(p)) for p in readable}):  # parents first
            if _hidden(path) and path.is_dir() and not any(path.is_relative_to(k) for k in kept):
                kept.append(path)
                args += ["--ro-bind", str(path), str(path)]
        for path in writable:
            args += ["--bind", str(path), str(path)]
        args += ["--chdir", str(cwd), *namespace_flags(network=network)]
        return [*args, "--", *argv]

    def _read_only(self, plan: StagingPlan, tool: str = "") -> list[Path]:
        """Hidden host paths the staged links reach: their roots, or the files themselves.

        Also those the tool's launcher script names (its interpreter, say), when
        the tool is a staged input.
        """
        want: set[Path] = set()
        if tool and "/" in tool and not tool.startswith("/"):
            real = Path(os.path.realpath(plan.execroot / tool))
            named = self._launchers.get(real)
            if named is None:
                named = self._launchers[real] = _named_by_launcher(real)
            want.update(named)
        for staged in plan.inputs:
            reached = self._reached.get(staged.source)
            if reached is None:
                reached = self._reached[staged.source] = _reached(staged)
            want.update(reached)
        out: list[Path] = []
        for path in sorted(want):  # parents first
            if not any(path.is_relative_to(p) for p in out):
                out.append(path)
        return out


def _reached(staged: StagedInput) -> tuple[Path, ...]:
    out = []
    if _hidden(staged.source):
        out.append(staged.root)
    real = Path(os.path.realpath(staged.source))
    if real != staged.source and _hidden(real):
        out.append(real)
    return tuple(out)


def _runfiles_dirs(runfiles: Path) -> set[Path]:
    """The real directories the files of a runfiles tree are in.

    A runfiles file is a link to a file that is not itself a link: its real
    directory is that of the link's target, resolved once a directory (a tool's
    722 files lie in 49). `realpath` of each file stat'ed every component of
    every path, half a second on the critical path of a build's first action.
    A link to a link is resolved to its end.
    """
    real_dir = functools.cache(lambda d: Path(os.path.realpath(d)))
    out: set[Path] = set()
    for dirpath, _dirs, files in os.walk(runfiles):
        for f in files:
            path = os.path.join(dirpath, f)
            try:
                target = os.path.join(dirpath, os.readlink(path))
            except OSError:  # not a link: the file itself is in the tree
                out.add(real_dir(dirpath))
                continue
            if os.path.islink(target):
                out.add(Path(os.path.realpath(path)).parent)
            else:
                out.add(real_dir(os.path.dirname(target)))
    return out


def _named_by_launcher(launcher: Path) -> set[Path]:
    """The hidden top directories the absolute paths in a launcher script live in.

    The tool's launcher (written by strata_dependencies, or a test's) names its
    interpreter and source directories by absolute path; when those are below
    the hidden `/tmp` (a checkout or virtual environment there), the worker
    needs their top directory bound back to start at all.
    """
    try:
        with open(launcher, "rb") as f:
            text = f.read(1 << 16).decode(errors="replace")
    except OSError:
        return set()
    out = set()
    for token in re.findall(r"/[^\s\"'$:;]+", text):
        path = Path(token)
        for hidden in HIDDEN:
            if path.is_relative_to(hidden) and path != hidden:
                top = hidden / path.relative_to(hidden).parts[0]
                if top.is_dir():
                    out.add(top)
    return out


def _hidden(path: Path) -> bool:
    return any(path.is_relative_to(h) for h in HIDDEN)


def system_view() -> list[str]:
    """The host read-only, a minimal /dev, a /proc of the new pid namespace."""
    args = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for name in PROC_READ_ONLY:
        args += ["--ro-bind-try", f"/proc/{name}", f"/proc/{name}"]
    return args


def namespace_flags(*, network: bool) -> list[str]:
    flags = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent"]
    if not network:
        flags.append("--unshare-net")
    if os.geteuid() == 0:
        flags += ["--cap-drop", "ALL"]
        for cap in ROOT_CAPABILITIES:
            flags += ["--cap-add", cap]
    return flags


def find_bwrap() -> str | None:
    """`$STRATA_BWRAP` (an override, e.g. for tests) or `bwrap` on strata's own PATH."""
    override = os.environ.get("STRATA_BWRAP")
    if override:
        return override if os.access(override, os.X_OK) else None
    return shutil.which("bwrap")


def probe(bwrap: str | None) -> str:
    """Why namespaces are unavailable, or "" when a throwaway sandbox runs `true`."""
    if bwrap is None:
        override = os.environ.get("STRATA_BWRAP")
        return f"{override} is not executable" if override else "bwrap is not on PATH"
    argv = [bwrap, *system_view(), "--tmpfs", "/tmp", *namespace_flags(network=False)]
    argv += ["--", "true"]
    try:
        res = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_PROBE_TIMEOUT,
            env={"PATH": os.defpath},
            cwd="/",
        )
    except subprocess.TimeoutExpired:
        return f"{bwrap} did not finish a test run in {_PROBE_TIMEOUT:.0f}s"
    except OSError as e:
        return f"{bwrap} cannot run: {e.strerror}"
    if res.returncode != 0:
        lines = res.stderr.decode(errors="replace").strip().splitlines()
        detail = lines[-1] if lines else f"exit status {res.returncode}"
        return f"{bwrap} fails a test run: {detail}"
    return ""


def choose(mode: str) -> tuple[Namespace | None, str]:
    """The build's sandbox: a `Namespace`, or None and why (the caller warns once)."""
    if mode not in MODES:
        raise UserError(
            f"--sandbox must be one of {', '.join(MODES)} (got {mode!r}); "
            "write e.g. --sandbox=auto",
            where="strata",
        )
    if mode == "directory":
        return None, "--sandbox=directory"
    bwrap = find_bwrap()
    why = probe(bwrap)
    if not why and bwrap is not None:
        return Namespace(bwrap), ""
    if mode == "namespace":
        raise UserError(
            f"--sandbox=namespace needs a working bubblewrap (got {why}); "
            "install the Debian package bubblewrap, allow user namespaces, or pass "
            "--sandbox=auto",
            where="strata",
        )
    return None, why


def fallback_warning(why: str) -> str:
    return (
        f"no namespace sandbox ({why}); actions can read and write outside their "
        "sandbox by absolute path; install bubblewrap"
    )
