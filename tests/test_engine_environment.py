"""A machine that says no: a full disk, a read-only workspace.

Each case mounts what it needs (a small tmpfs, a read-only bind mount) in a
private mount namespace of its own (`unshare -m`, so nothing outside the
test sees it; root is needed to mount), runs `strata build` there as a user
would, and checks what the project promises: one error line and no
half-written output or cache entry when the disk is full, then, once there
is room, a build with the same bytes as a clean one; a warning, not a
failure, when only the convenience link cannot be made.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from casekit import PYTHON_DIR, assert_one_error, strata, workspace
from realtools import need, unavailable

ROOT = PYTHON_DIR.parent
STRATA = f"PYTHONPATH={shlex.quote(str(PYTHON_DIR))} {shlex.quote(sys.executable)} -m strata"

pytestmark = pytest.mark.realtool


def in_mount_namespace(tmp: Path, script: str, timeout: float = 1200) -> None:
    """Run `script` (bash) in a private mount namespace; `run N ARGS` runs strata in $WS,
    leaving $T/N.rc and $T/N.err for the test to read."""
    if os.geteuid() != 0:
        unavailable("mounting a tmpfs in a private mount namespace needs root")
    need("unshare")
    prelude = (
        f"T={shlex.quote(str(tmp))}\n"
        f'run() {{ n=$1; shift; rc=0; (cd "$WS" && {STRATA} build "$@") 2>"$T/$n.err" '
        '>/dev/null || rc=$?; echo $rc >"$T/$n.rc"; }\n'
    )
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "bash", "-euc", prelude + script],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr


def result(tmp: Path, n: int) -> tuple[int, str]:
    return int((tmp / f"{n}.rc").read_text()), (tmp / f"{n}.err").read_text()


def _outcome(tmp: Path, n: int) -> object:
    from casekit import Outcome

    code, err = result(tmp, n)
    return Outcome(code, "", err)


RANDOM_BUILD = """
genrule(name = "big", outs = ["big"], cmd = "head -c 300000 /dev/urandom > $@")
genrule(name = "sum", srcs = [":big"], outs = ["sum"], cmd = "sha256sum < $< > $@")
"""


def test_a_full_disk_cache_warns_once_and_keeps_no_partial_entry(tmp_path: Path) -> None:
    ws = workspace(tmp_path / "ws", {"p/BUILD": RANDOM_BUILD})
    cache = tmp_path / "cache"
    cache.mkdir()
    in_mount_namespace(
        tmp_path,
        f"WS={ws}; C={cache}\n"
        'mount -t tmpfs -o size=100k tmpfs "$C"\n'
        'run 1 --output_base="$T/ob1" --disk_cache="$C" //p:sum\n'
        'find "$C" -type f > "$T/cache-after-1"\n'
        'mount -o remount,size=10m "$C"\n'
        'run 2 --output_base="$T/ob2" --disk_cache="$C" //p:sum\n'
        'run 3 --output_base="$T/ob3" --disk_cache="$C" //p:sum\n',
    )
    code, err = result(tmp_path, 1)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning: disk cache")]
    assert warnings == [
        f"warning: disk cache {cache}: cannot store entries (got No space left on device); the "
        "build goes on without storing results there: free some space or fix its permissions"
    ]
    # a blob too big for the disk, so no entry at all: no temp file, no action result
    assert (tmp_path / "cache-after-1").read_text() == ""
    assert (tmp_path / "ob1/execroot/w/bazel-out/k8-fastbuild/bin/p/big").stat().st_size == 300000
    # with room, the cache fills and then serves a build the same bytes
    code, err = result(tmp_path, 2)
    assert code == 0 and "warning" not in err, err
    code, err = result(tmp_path, 3)
    assert code == 0 and "2 actions: 0 executed, 2 cache hits" in err, err
    bins = [tmp_path / f"ob{n}/execroot/w/bazel-out/k8-fastbuild/bin/p" for n in (2, 3)]
    assert (bins[0] / "big").read_bytes() == (bins[1] / "big").read_bytes()
    assert (bins[0] / "sum").read_bytes() == (bins[1] / "sum").read_bytes()


def test_a_full_disk_under_the_outputs_is_one_error_then_builds(tmp_path: Path) -> None:
    build = 'genrule(name = "g", outs = ["o"], cmd = "head -c 300000 /dev/zero > $@")\n'
    ws = workspace(tmp_path / "ws", {"p/BUILD": build})
    ob = tmp_path / "ob"
    ob.mkdir()
    in_mount_namespace(
        tmp_path,
        f"WS={ws}; OB={ob}\n"
        'mount -t tmpfs -o size=200k tmpfs "$OB"\n'
        'run 1 --output_base="$OB" //p:g\n'
        'find "$OB/execroot" -name o > "$T/outputs-after-1" || true\n'
        'mount -o remount,size=10m "$OB"\n'
        'run 2 --output_base="$OB" //p:g\n'
        'cp "$OB/execroot/w/bazel-out/k8-fastbuild/bin/p/o" "$T/o-after"\n',
    )
    assert_one_error(
        _outcome(tmp_path, 1),  # type: ignore[arg-type]
        r"^error: //p:g: Genrule failed with exit status 1 \(got command: .*\); it printed "
        "nothing, and the output base's file system is full: free some space and build again$",
    )
    assert (tmp_path / "outputs-after-1").read_text() == ""  # no half-written output
    assert result(tmp_path, 2)[0] == 0
    assert (tmp_path / "o-after").read_bytes() == bytes(300000)


STORE_BUILD = """load("@strata//rules:defs.bzl", "store_path")
genrule(name = "f", outs = ["f.txt"], cmd = "echo hello > $@")
store_path(name = "hello-1.0", srcs = {":f": "share/hello.txt"})
"""
STRATA_WORKSPACE = (
    f'local_repository(name = "strata", path = "{ROOT}")\n'
    'load("@strata//rules:repositories.bzl", "strata_dependencies")\n'
    "strata_dependencies()\n"
)


@pytest.mark.slow
def test_a_full_disk_during_the_tool_fetch_is_one_error_then_builds(tmp_path: Path) -> None:
    ws = workspace(tmp_path / "ws", {"WORKSPACE": STRATA_WORKSPACE, "p/BUILD": STORE_BUILD})
    ob = tmp_path / "ob"
    ob.mkdir()
    layer = "execroot/__main__/bazel-out/k8-fastbuild/bin/p/hello-1.0.layer.tar"
    in_mount_namespace(
        tmp_path,
        f"WS={ws}; OB={ob}\n"
        'mount -t tmpfs -o size=8m tmpfs "$OB"\n'
        'run 1 --output_base="$OB" //p:hello-1.0\n'
        'find "$OB/execroot" -type f > "$T/outputs-after-1" || true\n'
        'mount -o remount,size=2g "$OB"\n'
        'run 2 --output_base="$OB" //p:hello-1.0\n'
        f'cp "$OB/{layer}" "$T/layer-after"\n',
    )
    assert_one_error(
        _outcome(tmp_path, 1),  # type: ignore[arg-type]
        r"^error: \S+repositories.bzl:\d+:\d+: @strata_tools: .* failed \(got exit \d+: .*\); "
        r"the output base's file system has only \d+ KiB free: free some space and build again$",
    )
    assert (tmp_path / "outputs-after-1").read_text() == ""
    assert result(tmp_path, 2)[0] == 0, result(tmp_path, 2)[1]
    clean = strata(ws, "build", f"--output_base={tmp_path / 'clean'}", "//p:hello-1.0")
    assert clean.code == 0, clean.err
    assert (tmp_path / "layer-after").read_bytes() == (tmp_path / "clean" / layer).read_bytes()


@pytest.mark.parametrize("stale_link", [False, True])
def test_a_read_only_workspace_builds_with_a_warning(tmp_path: Path, stale_link: bool) -> None:
    ws = workspace(
        tmp_path / "ws", {"p/BUILD": 'genrule(name = "g", outs = ["o"], cmd = "echo hi > $@")\n'}
    )
    if stale_link:
        (ws / "strata-bin").symlink_to("/nonexistent")
    in_mount_namespace(
        tmp_path,
        f"WS={ws}\n"
        'mount --bind "$WS" "$WS" && mount -o remount,ro,bind "$WS"\n'
        'run 1 --output_base="$T/ob" //p:g\n',
    )
    code, err = result(tmp_path, 1)
    assert code == 0, err
    bin_dir = tmp_path / "ob/execroot/w/bazel-out/k8-fastbuild/bin"
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        f"warning: cannot point strata-bin at the outputs (got Read-only file system: "
        f"{ws / 'strata-bin'}); find the outputs under {bin_dir}"
    ]
    assert f"Target //p:g up-to-date:\n  {bin_dir}/p/o" in err  # where the file really is
    assert (bin_dir / "p" / "o").read_text() == "hi\n"
