"""Finding and starting the real third-party tools tests check our output with.

A missing tool skips the test on a developer's machine, but fails it when
`CI` is set: in CI, tools/test installs every tool, so a missing one is a bug
in the set-up, never a reason to pass quietly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> None:
    """Skip locally; fail in CI."""
    if IN_CI:
        pytest.fail(
            f"{reason} (CI must run this test: fix tools/test or tools/debian-packages.txt)"
        )
    pytest.skip(reason)


REAL_TOOLS = frozenset(
    {
        "bazel", "bwrap", "docker", "docker-registry", "dockerd", "fakeroot", "nginx",
        "nix-build", "nix-instantiate", "nix-store", "oci-image-tool", "podman", "proot",
        "runc", "skopeo", "umoci",
    }
)  # fmt: skip
"""The third-party tools a test may run only under the `realtool` marker, so that the fast
tier (`tools/test -m "not realtool"`) never starts one. Plain utilities (busybox, rsync,
openssl, unshare, ...) are not among them."""


class RunningTest:
    """The test pytest is running now (set by conftest's pytest_runtest_protocol), so that
    `need` can tell a test that runs a real tool without the `realtool` marker."""

    item: pytest.Item | None = None


def check_marked(tool: str, item: pytest.Item | None) -> None:
    """Fail `item` if it runs the real tool `tool` without the `realtool` marker."""
    if tool in REAL_TOOLS and item is not None and item.get_closest_marker("realtool") is None:
        pytest.fail(
            f"{item.nodeid} runs {tool} but is not marked realtool; add "
            "@pytest.mark.realtool (or a module pytestmark) so the fast tier leaves it out",
            pytrace=False,
        )


def need(tool: str) -> str:
    """Path of `tool` on PATH (also /usr/sbin), or skip/fail as above. A real tool (see
    REAL_TOOLS) fails a test that is not marked `realtool`, installed or not."""
    check_marked(tool, RunningTest.item)
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin:/usr/local/sbin")
    if path is None:
        unavailable(f"{tool} is not installed; run tools/test as root to install it")
    assert path is not None
    return path


SKYLIB = Path("/usr/share/bazel/tools/skylib")
"""Where Debian's bazel-skylib package (1.0.3) installs the repository."""


def need_skylib() -> Path:
    """Debian's bazel-skylib, or skip/fail as above."""
    if not (SKYLIB / "rules" / "common_settings.bzl").is_file():
        unavailable(f"bazel-skylib is not installed in {SKYLIB}; run tools/test as root")
    return SKYLIB


def run(*argv: str | os.PathLike[str], **kw: object) -> subprocess.CompletedProcess[str]:
    """Run a tool, raising with its output on failure so the test log shows why."""
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, argv))} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def bazel(
    ws: Path,
    user_root: Path,
    *args: str,
    check: bool = True,
    timeout: float = 1800,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Bazel in batch mode in `ws`, its output base under `user_root`; with `check`, a
    failure fails the test with the ends of Bazel's output."""
    proc = subprocess.run(
        [need("bazel"), "--batch", f"--output_user_root={user_root}", *args],
        cwd=ws,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 30) -> None:
    """Terminate a server the tests started, killing it if it does not go in time."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class DockerEngine:
    """A private dockerd (vfs storage, no network) under a temporary directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sock = root / "docker.sock"
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.sock}"}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        dockerd = need("dockerd")
        need("docker")
        log = open(self.root / "dockerd.log", "wb")  # noqa: SIM115 - lives as long as dockerd
        self.proc = subprocess.Popen(
            [
                dockerd,
                "--data-root",
                str(self.root / "data"),
                "--exec-root",
                str(self.root / "exec"),
                "--pidfile",
                str(self.root / "dockerd.pid"),
                "-H",
                f"unix://{self.sock}",
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--storage-driver=vfs",
                "--default-ulimit",
                "nofile=1024:1024",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            probe = subprocess.run(["docker", "info"], env=self.env, capture_output=True)
            if probe.returncode == 0:
                return
            time.sleep(0.5)
        self.stop()
        tail = (self.root / "dockerd.log").read_text(errors="replace")[-2000:]
        unavailable(f"dockerd did not start:\n{tail}")

    def docker(self, *args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
        return run("docker", *args, env=self.env)

    def run_from_registry(self, ref: str, name: str, archive: Path) -> str:
        """What the registry image `ref` prints when run: skopeo copies it (no TLS checks)
        into the docker-archive `archive` as `name`, which this engine loads and runs."""
        run(
            "skopeo", "copy", "--src-tls-verify=false",
            f"docker://{ref}", f"docker-archive:{archive}:{name}",
        )  # fmt: skip
        self.docker("load", "-i", archive)
        return self.docker("run", "--rm", "--network=none", name).stdout

    def stop(self) -> None:
        stop_process(self.proc)


def need_namespace_sandbox() -> None:
    """bubblewrap, able to make strata's namespace sandbox here, or skip/fail as above."""
    from strata.engine.execution.sandbox import find_bwrap, probe

    need("bwrap")
    why = probe(find_bwrap())
    if why:
        unavailable(f"bubblewrap cannot make a sandbox here ({why})")
