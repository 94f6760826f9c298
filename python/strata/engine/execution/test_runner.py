"""Running one test as Bazel 4.2.3 runs it (`bazel test`), and remembering a pass.

A test runs after its executable and runfiles are built, from its runfiles
tree (`<exe>.runfiles/<workspace>`), with the environment of Bazel's test
encyclopedia (https://bazel.build/reference/test-encyclopedia) as Bazel
4.2.3 sets it (checked against `bazel test` with a test that prints it):
`TEST_SRCDIR` and `RUNFILES_DIR` (the runfiles tree), `TEST_WORKSPACE`,
`TEST_TARGET`, `TEST_BINARY`, `TEST_SIZE`, `TEST_TIMEOUT`, `TEST_TMPDIR`
(a fresh private directory), `XML_OUTPUT_FILE`, `TEST_UNDECLARED_OUTPUTS_DIR`
and the other `TEST_*` files, `TESTBRIDGE_TEST_ONLY` (`--test_filter`),
`TZ=UTC`, `PATH` with `.` first, no `HOME`; then the rule's `env` and
`--test_env`. Nothing else of the client environment reaches it.

Its output goes to `test.log` under the test log directory
(`bazel-out/<cpu>-fastbuild/testlogs/<package>/<name>/`, `strata-testlogs/`),
after Bazel's three header lines; `test.xml` is the test's own
`XML_OUTPUT_FILE`, or else one written the way Bazel's `generate-xml.sh`
writes it. With the namespace sandbox a test sees what an action sees
(read-only host, private `/tmp`, no network unless tagged
`requires-network`) and can write only its `TEST_TMPDIR` and test log
directory; tagged `local` or `no-sandbox` it runs outside.

A test that passed is not run again while nothing it depends on changed, as
in Bazel: `test.cache_status` keeps a key over the test's label, command
line, environment, timeout and the digest of every file in its runfiles
tree, and the next run with the same key reuses the status (`(cached)
PASSED`). `--cache_test_results=no` runs every test, `yes` reuses failures
too; a test tagged `external` always runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from strata import __version__
from strata.canonical import json_bytes
from strata.engine.action import DEFAULT_PATH
from strata.engine.analysis.result import TestSpec
from strata.engine.analysis.runfiles import root_relative, runfiles_paths
from strata.engine.analysis.test_rules import TIMEOUTS
from strata.engine.digests import StatCache, tree_digest, tree_listing
from strata.engine.execution.sandbox import Namespace
from strata.engine.execution.test_logs import (
    FAILED,
    PASSED,
    TIMEOUT,
    generated_xml,
    log_body,
    log_header,
)
from strata.engine.loading.labels import Label
from strata.engine.outputbase import OutputBase
from strata.fsutil import write_bytes_atomic

_FORMAT = 1
_KILL_GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL for a test that timed out."""


@dataclass(frozen=True)
class TestFlags:
    """The `strata test` flags that change how a test runs (Bazel's names and meanings)."""

    test_filter: str | None = None
    test_env: tuple[str, ...] = ()
    """`NAME=value`, or `NAME` to pass the client's value."""
    test_args: tuple[str, ...] = ()
    test_timeout: tuple[int, ...] = ()
    """One number for every test, or four: short, moderate, long, eternal."""
    cache_test_results: str = "auto"


@dataclass(frozen=True)
class TestTarget:
    label: str
    executable: str
    """Execroot path."""
    spec: TestSpec
    tree: Path
    """Its laid-out runfiles tree."""
    entries: Mapping[str, Path]
    """{runfiles path: real file} of that tree (what the cache key digests)."""


@dataclass(frozen=True)
class TestResult:
    label: str
    status: str
    seconds: float = 0.0
    cached: bool = False
    log: Path | None = None
    output: str = ""
    """What the test printed (the log after its header), for --test_output."""

    @property
    def executed(self) -> bool:
        return self.status in (PASSED, FAILED, TIMEOUT) and not self.cached


class TestRunner:
    """Runs the tests of one `strata test` command under the output base's lock."""

    def __init__(
        self,
        base: OutputBase,
        stat_cache: StatCache,
        flags: TestFlags,
        namespace: Namespace | None,
        readable: Sequence[Path],
    ) -> None:
        self.base = base
        self.stat_cache = stat_cache
        self.flags = flags
        self.namespace = namespace
        self.readable = (base.workspace, base.root, *readable)

    # -- where a test's files go -----------------------------------------------

    def log_dir(self, label: str) -> Path:
        lab = Label.parse(label)
        rel = f"{lab.package}/{lab.name}" if lab.package else lab.name
        return self.base.testlogs / (f"external/{lab.repo}/{rel}" if lab.repo else rel)

    def _tmpdir(self, label: str) -> Path:
        return self.base.execroot / "_tmp" / hashlib.sha256(label.encode()).hexdigest()[:32]

    def timeout(self, spec: TestSpec) -> int:
        given = self.flags.test_timeout
        if len(given) == 1:
            return given[0]
        if len(given) == 4:
            return given[list(TIMEOUTS).index(spec.timeout)]
        return TIMEOUTS[spec.timeout]

    # -- what a run is made of -------------------------------------------------

    def environment(self, t: TestTarget) -> dict[str, str]:
        ws = self.base.workspace_name
        logs = self.log_dir(t.label)
        binary = root_relative(t.executable)
        if binary.startswith("external/"):
            binary = "../" + binary[len("external/") :]
        tmpdir = str(self._tmpdir(t.label))
        env = {
            "PATH": f".:{DEFAULT_PATH}",
            "TZ": "UTC",
            "USER": _user(),
            "RUN_UNDER_RUNFILES": "1",
            "TEST_SRCDIR": str(t.tree),
            "RUNFILES_DIR": str(t.tree),
            "JAVA_RUNFILES": str(t.tree),
            "PYTHON_RUNFILES": str(t.tree),
            "TEST_WORKSPACE": ws,
            "TEST_TARGET": t.label,
            "TEST_BINARY": binary if "/" in binary else f"./{binary}",
            "TEST_SIZE": t.spec.size,
            "TEST_TIMEOUT": str(self.timeout(t.spec)),
            "TEST_TMPDIR": tmpdir,
            "GTEST_TMP_DIR": tmpdir,
            "XML_OUTPUT_FILE": str(logs / "test.xml"),
            "TEST_UNDECLARED_OUTPUTS_DIR": str(logs / "test.outputs"),
            "TEST_UNDECLARED_OUTPUTS_ANNOTATIONS_DIR": str(logs / "test.outputs_manifest"),
            "TEST_PREMATURE_EXIT_FILE": str(logs / "test.exited_prematurely"),
            "TEST_INFRASTRUCTURE_FAILURE_FILE": str(logs / "test.infrastructure_failure"),
            "TEST_WARNINGS_OUTPUT_FILE": str(logs / "test.warnings"),
            "TEST_UNUSED_RUNFILES_LOG_FILE": str(logs / "test.unused_runfiles_log"),
        }
        if self.flags.test_filter is not None:
            env["TESTBRIDGE_TEST_ONLY"] = self.flags.test_filter
        env.update(dict(t.spec.env))
        for item in self.flags.test_env:
            name, eq, value = item.partition("=")
            if eq:
                env[name] = value
            elif name in os.environ:
                env[name] = os.environ[name]
        return env

    def argv(self, t: TestTarget) -> list[str]:
        rel = runfiles_paths(t.executable, self.base.workspace_name)[0]
        return [str(t.tree / rel), *t.spec.args, *self.flags.test_args]

    def key(self, t: TestTarget, env: Mapping[str, str], argv: Sequence[str]) -> str:
        files: dict[str, str] = {}
        for rel, real in sorted(t.entries.items()):
            try:
                if real.is_dir():
                    files[rel] = tree_digest(tree_listing(real, self.stat_cache))
                else:
                    files[rel] = self.stat_cache.digest(real).sha256
            except OSError:
                files[rel] = "missing"
        material = {
            "format": _FORMAT,
            "strata": __version__,
            "label": t.label,
            "argv": list(argv),
            "env": dict(sorted(env.items())),
            "timeout": self.timeout(t.spec),
            "files": files,
        }
        return hashlib.sha256(json_bytes(material)).hexdigest()

    # -- cache ----------------------------------------------------------------

    def cached(self, t: TestTarget, key: str) -> TestResult | None:
        """The stored result of an identical run, when the cache may answer for this test."""
        mode = self.flags.cache_test_results
        if mode == "no" or "external" in t.spec.tags:
            return None
        logs = self.log_dir(t.label)
        try:
            record = json.loads((logs / "test.cache_status").read_bytes())
            log = logs / "test.log"
            text = log.read_bytes()
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("format") != _FORMAT:
            return None
        status = record.get("status")
        if record.get("key") != key or status not in (PASSED, FAILED, TIMEOUT):
            return None
        if status != PASSED and mode != "yes":
            return None
        seconds = record.get("seconds")
        return TestResult(
            t.label,
            status,
            float(seconds) if isinstance(seconds, int | float) else 0.0,
            cached=True,
            log=log,
            output=log_body(text),
        )

    # -- one run --------------------------------------------------------------

    def run(self, t: TestTarget) -> TestResult:
        env = self.environment(t)
        argv = self.argv(t)
        key = self.key(t, env, argv)
        hit = self.cached(t, key)
        if hit is not None:
            return hit
        logs = self.log_dir(t.label)
        _fresh(logs)
        for name in ("test.outputs", "test.outputs_manifest"):
            (logs / name).mkdir(parents=True)
        tmpdir = self._tmpdir(t.label)
        _fresh(tmpdir)
        cwd = t.tree / self.base.workspace_name
        cwd.mkdir(parents=True, exist_ok=True)
        command = argv
        if self.namespace is not None and not {"local", "no-sandbox"} & set(t.spec.tags):
            command = self.namespace.test_command(
                tmpdir.with_name(tmpdir.name + ".tmp"),
                self.readable,
                [tmpdir, logs],
                cwd,
                argv,
                network="requires-network" in t.spec.tags,
            )
        log = logs / "test.log"
        seconds, status, code = self._spawn(t.label, command, cwd, env, log, self.timeout(t.spec))
        text = log.read_bytes()
        xml = logs / "test.xml"
        if not xml.is_file() or xml.stat().st_size == 0:
            name = env["TEST_BINARY"].removeprefix("./")
            xml.write_bytes(generated_xml(name, text, seconds, status, code))
        write_bytes_atomic(
            logs / "test.cache_status",
            json_bytes({"format": _FORMAT, "key": key, "status": status, "seconds": seconds}),
        )
        for scratch in (tmpdir, tmpdir.with_name(tmpdir.name + ".tmp")):
            _remove(scratch)
        return TestResult(t.label, status, seconds, log=log, output=log_body(text))

    @staticmethod
    def _spawn(
        label: str,
        command: Sequence[str],
        cwd: Path,
        env: Mapping[str, str],
        log: Path,
        timeout: int,
    ) -> tuple[float, str, int]:
        """Run the test with its output in `log`; (seconds, status, exit code)."""
        with open(log, "wb") as out:
            out.write(log_header(label).encode())
            out.flush()
            start = time.monotonic()
            try:
                proc = subprocess.Popen(
                    list(command),
                    cwd=cwd,
                    env=dict(env),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as e:
                out.write(f"cannot run {command[0]}: {e.strerror}\n".encode())
                return time.monotonic() - start, FAILED, 127
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                seconds = time.monotonic() - start
                stamp = time.strftime("%a %d %b %Y %I:%M:%S %p", time.gmtime())
                out.write(f"-- Test timed out at {stamp} UTC --\n".encode())
                return seconds, TIMEOUT, proc.returncode or 142
            finally:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)  # what it left behind
        return time.monotonic() - start, PASSED if code == 0 else FAILED, code


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=_KILL_GRACE)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return os.environ.get("USER", "")


def _remove(path: Path) -> None:
    """Remove `path`, also what a test made read-only in its TEST_TMPDIR."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, onerror=_writable_and_retry)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _writable_and_retry(func: object, path: str, exc: object) -> None:
    with contextlib.suppress(OSError):
        os.chmod(os.path.dirname(path), 0o700)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, 0o700)
    if callable(func):
        func(path)


def _fresh(path: Path) -> None:
    """An empty directory at `path` (what an earlier run left there is removed)."""
    _remove(path)
    path.mkdir(parents=True)
