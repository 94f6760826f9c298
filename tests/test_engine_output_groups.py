"""`--output_groups`: which files of a requested target a build makes and lists, as in Bazel 4.2.3.

The rules are unit-tested on `requested_groups`/`top_level_files`; then one
workspace is built by real Bazel and by `strata build` under the same flags,
and both must build the same files and print the same `Target ... up-to-date`
lists (Bazel's `bazel-bin/` is strata's `strata-bin/`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from realtools import need, run
from strata.engine.analysis.output_groups import (
    DEFAULT_GROUPS,
    HIDDEN_TOP_LEVEL,
    VALIDATION,
    requested_groups,
    top_level_files,
)
from strata.engine.analysis.result import TargetInfo

ROOT = Path(__file__).resolve().parents[1]
BIN = "bazel-out/k8-fastbuild/bin"


def test_signed_names_change_the_default_set_and_unsigned_ones_replace_it() -> None:
    assert requested_groups([]) == tuple(sorted(DEFAULT_GROUPS | {VALIDATION}))
    assert requested_groups(["+tarball"]) == tuple(sorted(DEFAULT_GROUPS | {VALIDATION, "tarball"}))
    assert "default" not in requested_groups(["-default"])
    assert requested_groups(["tarball"]) == (VALIDATION, "tarball")
    # one list across repeated flags: any unsigned name drops the defaults (Bazel 4.2.3)
    assert requested_groups(["+a", "b"]) == (VALIDATION, "a", "b")
    assert requested_groups(["a,b", "-a"]) == (VALIDATION, "b")
    assert requested_groups([""]) == requested_groups([])


def test_files_are_listed_by_sorted_group_once_and_hidden_groups_are_only_built() -> None:
    info = TargetInfo(
        "//p:x",
        files=(f"{BIN}/p/x.d", "p/src.txt"),
        executable=f"{BIN}/p/x",
        runfiles=(f"{BIN}/p/data",),
        output_groups={
            "zeta": (f"{BIN}/p/x.b",),
            "alpha": (f"{BIN}/p/x.a", f"{BIN}/p/x.d"),
            "_hid": (f"{BIN}/p/x.h",),
        },
    )
    top = top_level_files(info, requested_groups(["+zeta,+alpha,+_hid"]))
    # source files are built (they exist) but never listed, as in Bazel
    assert top.shown == (f"{BIN}/p/x.a", f"{BIN}/p/x.d", f"{BIN}/p/x.b")
    assert set(top.built) == {f"{BIN}/p/{n}" for n in ("x.a", "x.d", "x.b", "x.h", "x", "data")} | {
        "p/src.txt"
    }
    only = top_level_files(info, requested_groups(["zeta"]))
    assert only.built == only.shown == (f"{BIN}/p/x.b",)
    # without the hidden top-level group, no runfiles and no executable
    assert HIDDEN_TOP_LEVEL not in requested_groups(["zeta"])


DEFS = """
def _impl(ctx):
    outs = {}
    for ext in ("d", "a", "b", "h"):
        outs[ext] = ctx.actions.declare_file(ctx.label.name + "." + ext)
        ctx.actions.write(outs[ext], ext + "\\n")
    return [
        DefaultInfo(files = depset([outs["d"]] + ctx.files.srcs)),
        OutputGroupInfo(
            zeta = depset([outs["b"]]),
            alpha = depset([outs["a"], outs["d"]]),
            _hid = depset([outs["h"]]),
        ),
    ]

groups = rule(implementation = _impl, attrs = {"srcs": attr.label_list(allow_files = True)})

def _tool_impl(ctx):
    exe = ctx.actions.declare_file(ctx.label.name)
    ctx.actions.write(exe, "#!/bin/sh\\necho hi\\n", is_executable = True)
    data = ctx.actions.declare_file(ctx.label.name + ".data")
    ctx.actions.write(data, "data\\n")
    extra = ctx.actions.declare_file(ctx.label.name + ".extra")
    ctx.actions.write(extra, "extra\\n")
    return [
        DefaultInfo(executable = exe, runfiles = ctx.runfiles(files = [data])),
        OutputGroupInfo(extra = depset([extra])),
    ]

tool = rule(implementation = _tool_impl, executable = True)
"""

BUILD = """load(":defs.bzl", "groups", "tool")

groups(name = "x", srcs = ["src.txt"])

tool(name = "t")

filegroup(name = "fg", srcs = ["src.txt"])
"""

CANDIDATES = ["x.d", "x.a", "x.b", "x.h", "t", "t.data", "t.extra"]
FLAG_SETS = [
    [],
    ["--output_groups=+zeta,+alpha"],
    ["--output_groups=zeta"],
    ["--output_groups=-default"],
    ["--output_groups=+zeta", "--output_groups=alpha"],
    ["--output_groups=_hid,extra"],
    ["--output_groups=+extra", "--output_groups=-_hidden_top_level_INTERNAL_"],
]


def _listing(stderr: str, prefix: str) -> dict[str, list[str]]:
    """Each target's `Target ... up-to-date` line and the paths under it (relative to bin)."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in stderr.splitlines():
        if line.startswith("Target "):
            current = out.setdefault(line.split()[1], [line])
        elif line.startswith("  ") and current is not None:
            current.append(line.strip().removeprefix(prefix))
        else:
            current = None
    return out


@pytest.mark.realtool
@pytest.mark.slow
@pytest.mark.parametrize("flags", FLAG_SETS, ids=lambda f: " ".join(f) or "default")
def test_bazel_and_strata_build_and_list_the_same_files(flags: list[str], tmp_path: Path) -> None:
    bazel = need("bazel")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "WORKSPACE").write_text("")
    (ws / "defs.bzl").write_text(DEFS)
    (ws / "BUILD").write_text(BUILD)
    (ws / "src.txt").write_text("source\n")
    targets = ["//:x", "//:t", "//:fg"]
    theirs = run(
        bazel,
        "--batch",
        f"--output_user_root={tmp_path / 'bazel-root'}",
        "build",
        "--spawn_strategy=processwrapper-sandbox",
        "--show_result=10",  # Bazel lists one target's files by default
        *flags,
        *targets,
        cwd=ws,
    )
    ours = subprocess.run(
        [sys.executable, "-m", "strata", "build", f"--output_base={tmp_path / 'ob'}"]
        + [*flags, *targets],
        cwd=ws,
        env={**os.environ, "PYTHONPATH": str(ROOT / "python")},
        capture_output=True,
        text=True,
    )
    assert ours.returncode == 0, ours.stderr
    listed = _listing(theirs.stderr, "bazel-bin/")
    assert sorted(listed) == sorted(targets)
    assert _listing(ours.stderr, "strata-bin/") == listed
    built = {
        out: [n for n in CANDIDATES if (ws / out / n).exists()]
        for out in ("bazel-bin", "strata-bin")
    }
    assert built["strata-bin"] == built["bazel-bin"]
    if not flags:
        assert listed["//:x"] == ["Target //:x up-to-date:", "x.d"]
        assert listed["//:fg"] == ["Target //:fg up-to-date (nothing to build)"]
        assert built["bazel-bin"] == ["x.d", "t", "t.data"]
