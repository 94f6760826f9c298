"""image_test: container-structure-test on images, under `bazel test` and `strata test`.

Real Bazel 4.2.3 and the engine run the examples' structure tests
(`bazel test //examples/...`, `strata test //examples/...`), a failing one
fails both with container-structure-test's reasons in its log, and the
docker-driver tests (tagged `manual`) pass against a private Docker engine
under both. The engine's test scripts are byte-identical to Bazel's and run
by hand from their runfiles too. The binary is the one pinned in
requirements.lock, installed by strata_dependencies().
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from examples_build import FLAGS
from realtools import DockerEngine, bazel, run

ROOT = Path(__file__).resolve().parent.parent
STRATA = ROOT / "tools" / "strata"
BIN = "bazel-out/k8-fastbuild/bin"

pytestmark = pytest.mark.realtool

# Every image_test of the examples that needs no daemon (the others are `manual`).
EXAMPLE_TESTS = [
    "//examples/env-merge:structure_test",
    "//examples/hello:dirlinks_test",
    "//examples/hello:no_dirlinks_test",
    "//examples/hello:structure_test",
    "//examples/nginx:structure_test",
    "//examples/run-as-root:built_as_root_test",
    "//examples/run-as-root:structure_test",
]
DOCKER_TESTS = ["//examples/hello:command_test", "//examples/run-as-root:owner_test"]

WORKSPACE = f"""\
local_repository(name = "strata", path = "{ROOT}")

load("@strata//rules:repositories.bzl", "strata_dependencies")

strata_dependencies()

local_repository(name = "remote_coverage_tools", path = "{ROOT}/tools/bazel/no-coverage")
"""

BUILD = """\
load("@strata//rules:defs.bzl", "image_test", "layered_image", "store_path")

genrule(name = "greeting", outs = ["greeting.txt"], cmd = "echo hi > $@")

store_path(name = "greeting-1.0", srcs = {":greeting": "share/greeting.txt"})

layered_image(
    name = "app",
    contents = [":greeting-1.0"],
    config = {"Env": ["GREETING_FILE=/share/greeting.txt"], "Cmd": ["/bin/true"]},
    tag = "t",
)

image_test(name = "good_test", image = ":app", configs = ["good.yaml", "more.json"])

image_test(name = "bad_test", image = ":app", configs = ["bad.yaml"])
"""

GOOD = """\
schemaVersion: 2.0.0
fileExistenceTests:
  - name: the greeting is linked at /share
    path: /share/greeting.txt
    shouldExist: true
metadataTest:
  envVars:
    - key: GREETING_FILE
      value: /share/greeting.txt
"""
MORE = '{"schemaVersion": "2.0.0", "metadataTest": {"cmd": ["/bin/true"]}}\n'
BAD = """\
schemaVersion: 2.0.0
fileExistenceTests:
  - name: a file the image does not have
    path: /share/missing.txt
    shouldExist: true
metadataTest:
  envVars:
    - key: GREETING_FILE
      value: /elsewhere
"""

ERRORS = """\
load("@strata//rules:defs.bzl", "image_index", "image_test")

image_index(name = "index", images = ["//app:app"])

image_test(name = "index_test", image = ":index", configs = ["//app:good.yaml"])
"""


@pytest.fixture(scope="module")
def user_root(examples_bazel_root: Path) -> Path:
    """The session's Bazel root for this checkout (tests/examples_build.py): the examples'
    images are built once; `bazel test` here builds and runs only the tests."""
    return examples_bazel_root


def _status(out: str) -> dict[str, str]:
    return dict(re.findall(r"^(//\S+)\s+(PASSED|FAILED|NO STATUS)\b", out, re.M))


def test_examples_structure_tests_pass_under_bazel(user_root: Path) -> None:
    proc = bazel(ROOT, user_root, "test", *FLAGS, "//examples/...")
    status = _status(proc.stdout + proc.stderr)
    assert status == {t: "PASSED" for t in EXAMPLE_TESTS}, status
    packages = {t.split(":")[0] for t in status}
    assert len(packages) >= 3


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("image-test-ws")
    (ws / "WORKSPACE").write_text(WORKSPACE)
    (ws / "app").mkdir()
    (ws / "app" / "BUILD").write_text(BUILD)
    (ws / "app" / "good.yaml").write_text(GOOD)
    (ws / "app" / "more.json").write_text(MORE)
    (ws / "app" / "bad.yaml").write_text(BAD)
    (ws / "errors").mkdir()
    (ws / "errors" / "BUILD").write_text(ERRORS)
    return ws


def test_a_failing_structure_test_fails_bazel_test(workspace: Path, user_root: Path) -> None:
    proc = bazel(workspace, user_root, "test", *FLAGS, "--keep_going", "//app:all", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out[-3000:]  # Bazel's "some tests failed"
    assert _status(out) == {"//app:good_test": "PASSED", "//app:bad_test": "FAILED"}
    info = bazel(workspace, user_root, "info", *FLAGS, "bazel-testlogs").stdout.strip()
    log = (Path(info) / "app" / "bad_test" / "test.log").read_text()
    assert "/share/missing.txt: no such file or directory" in log
    assert "env var GREETING_FILE value /share/greeting.txt does not match" in log
    assert "Failures:    2" in log


def _strata_build(ws: Path, base: Path, *targets: str) -> Path:
    run(STRATA, "build", f"--output_base={base}", *targets, cwd=ws)
    (bin_dir,) = base.glob(f"execroot/*/{BIN}")
    return bin_dir


def strata_test(ws: Path, base: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(STRATA), "test", f"--output_base={base}", *args],
        cwd=ws,
        capture_output=True,
        text=True,
        timeout=1800,
    )


def test_examples_structure_tests_pass_under_strata_test(examples_strata_base: Path) -> None:
    proc = strata_test(ROOT, examples_strata_base, "//examples/...")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert _status(proc.stdout + proc.stderr) == {t: "PASSED" for t in EXAMPLE_TESTS}


def test_a_failing_structure_test_fails_strata_test(workspace: Path, tmp_path: Path) -> None:
    base = tmp_path / "ob"
    proc = strata_test(workspace, base, "--keep_going", "//app:all")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out[-3000:]  # as Bazel: "some tests failed"
    assert _status(out) == {"//app:good_test": "PASSED", "//app:bad_test": "FAILED"}
    info = run(STRATA, f"--output_base={base}", "info", "bazel-testlogs", cwd=workspace)
    log = (Path(info.stdout.strip()) / "app" / "bad_test" / "test.log").read_text()
    assert "/share/missing.txt: no such file or directory" in log
    assert "env var GREETING_FILE value /share/greeting.txt does not match" in log


def test_the_engine_writes_bazels_test_script_and_it_runs_by_hand(
    workspace: Path, user_root: Path, tmp_path: Path
) -> None:
    bin_dir = _strata_build(workspace, tmp_path / "ob", "//app:good_test", "//app:bad_test")
    bazel(workspace, user_root, "build", *FLAGS, "//app:good_test", "//app:bad_test")
    bazel_bin = Path(bazel(workspace, user_root, "info", *FLAGS, "bazel-bin").stdout.strip())
    for name in ("good_test", "bad_test"):
        assert (bin_dir / "app" / name).read_bytes() == (bazel_bin / "app" / name).read_bytes()
    # By hand, outside any test runner: it finds its runfiles next to itself.
    env = {"PATH": "/usr/bin:/bin"}
    good = subprocess.run(
        [str(bin_dir / "app" / "good_test")], env=env, capture_output=True, text=True
    )
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Passes:      3" in good.stdout
    bad = subprocess.run(
        [str(bin_dir / "app" / "bad_test")], env=env, capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert "/share/missing.txt: no such file or directory" in bad.stdout


def test_the_tar_driver_needs_a_docker_archive(workspace: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(STRATA), "build", f"--output_base={tmp_path / 'ob'}", "//errors:index_test"],
        cwd=workspace,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert (
        "//errors:index_test: attribute 'image': the tar driver reads a docker-archive "
        "(got an image_index (an OCI layout only)); "
        'test one platform\'s image, or set driver = "docker"'
    ) in proc.stderr


def test_docker_driver_runs_commands_and_checks_owners(
    user_root: Path, docker_engine: DockerEngine, tmp_path: Path
) -> None:
    host = docker_engine.env["DOCKER_HOST"]
    proc = bazel(ROOT, user_root, "test", *FLAGS, f"--test_env=DOCKER_HOST={host}", *DOCKER_TESTS)
    assert _status(proc.stdout + proc.stderr) == {t: "PASSED" for t in DOCKER_TESTS}
    images = docker_engine.docker("images", "--format", "{{.Repository}}").stdout.split()
    assert "strata.local/image-test/examples-hello-command-test" in images
    docker_engine.docker("rmi", "strata.local/image-test/examples-hello-command-test:latest")
    # The engine's namespace sandbox hides the host's /tmp, where this daemon's socket
    # is: the tests run in a directory sandbox here.
    proc = strata_test(
        ROOT,
        tmp_path / "ob",
        "--sandbox=directory",
        f"--test_env=DOCKER_HOST={host}",
        *DOCKER_TESTS,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert _status(out) == {t: "PASSED" for t in DOCKER_TESTS}
    images = docker_engine.docker("images", "--format", "{{.Repository}}").stdout.split()
    assert "strata.local/image-test/examples-hello-command-test" in images
