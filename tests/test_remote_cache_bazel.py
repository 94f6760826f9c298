"""Real Bazel 4.2.3 and strata through one real nginx WebDAV cache: with REAPI action keys
each finds the other's entries, and a host tool with runfiles has Bazel's action key.
Teams of strata builds alone are test_remote_cache.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from enginekit import BIN, sh
from nginx_server import NginxCache, running_nginx
from realtools import bazel
from remote_kit import build as _build
from strata.engine.action import Action
from strata.engine.cache.http import RemoteOptions

pytestmark = pytest.mark.realtool


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[NginxCache]:
    with running_nginx(tmp_path / "nginx") as server:
        yield server


# -- real Bazel 4.2.3 -------------------------------------------------------------

BUILD = """\
load(":defs.bzl", "concat")
genrule(name = "gen", srcs = ["a.txt"], outs = ["gen.txt"], cmd = "cat $< $< > $@")
concat(name = "cat", srcs = ["a.txt", ":gen"], tool = "tool.sh")
"""
DEFS = """\
def _impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name + ".out")
    ctx.actions.run(
        executable = ctx.file.tool,
        arguments = [out.path] + [f.path for f in ctx.files.srcs],
        inputs = ctx.files.srcs,
        outputs = [out],
        mnemonic = "Concat",
        env = {"B": "2", "A": "1"},
    )
    return [DefaultInfo(files = depset([out]))]

concat = rule(_impl, attrs = {
    "srcs": attr.label_list(allow_files = True),
    "tool": attr.label(allow_single_file = True, executable = True, cfg = "host"),
})
"""
TOOL = '#!/bin/sh\nout=$1; shift; cat "$@" > "$out"\n'


def _bazel_ws(root: Path, text: str) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "WORKSPACE").write_text("")
    (root / "pkg" / "BUILD").write_text(BUILD)
    (root / "pkg" / "defs.bzl").write_text(DEFS)
    (root / "pkg" / "a.txt").write_text(text)
    (root / "pkg" / "tool.sh").write_text(TOOL)
    os.chmod(root / "pkg" / "tool.sh", 0o755)
    return root


def _strata_mirror() -> list[Action]:
    """The actions strata's analysis makes of that BUILD file: the Concat action is
    the same command line, environment, inputs and outputs as Bazel's; the genrule
    is a plain shell action (Bazel's genrule adds genrule-setup.sh and the client PATH)."""
    gen, out = f"{BIN}/pkg/gen.txt", f"{BIN}/pkg/cat.out"
    return [
        sh("//pkg:gen", f"cat pkg/a.txt pkg/a.txt > {gen}", ["pkg/a.txt"], [gen]),
        Action(
            owner="//pkg:cat",
            mnemonic="Concat",
            progress_message="Concat pkg/cat.out",
            argv=("pkg/tool.sh", out, "pkg/a.txt", gen),
            env=(("A", "1"), ("B", "2")),
            inputs=tuple(sorted([gen, "pkg/a.txt", "pkg/tool.sh"])),
            outputs=(out,),
        ),
    ]


def test_bazel_and_strata_share_the_cache(nginx: NginxCache, tmp_path: Path) -> None:
    root = tmp_path / "bazel-root"
    flags = ["--spawn_strategy=processwrapper-sandbox", f"--remote_cache={nginx.url}"]

    # Bazel twice with a clean in between: both its actions come from the server.
    ws1 = _bazel_ws(tmp_path / "ws1", "hello\n")
    bazel(ws1, root, "build", *flags, "//pkg:cat")
    want = (ws1 / "bazel-bin" / "pkg" / "cat.out").read_bytes()
    bazel(ws1, root, "clean")
    err = bazel(ws1, root, "build", *flags, "//pkg:cat").stderr
    assert "2 remote cache hit" in err
    assert (ws1 / "bazel-bin" / "pkg" / "cat.out").read_bytes() == want

    # strata with REAPI keys finds Bazel's Concat entry (and runs its own genrule).
    remote = RemoteOptions(url=nginx.url)
    stats, _log, base = _build(ws1, tmp_path / "s1", _strata_mirror(), remote, keys="reapi")
    assert stats.executed_labels == ["//pkg:gen Genrule"] and stats.cache_hits == 1
    assert (base.execroot / BIN / "pkg" / "cat.out").read_bytes() == want

    # New content: strata builds first and uploads; Bazel then hits strata's Concat entry.
    ws2 = _bazel_ws(tmp_path / "ws2", "fresh content\n")
    stats, _log, base = _build(ws2, tmp_path / "s2", _strata_mirror(), remote, keys="reapi")
    assert stats.executed == 2
    err = bazel(ws2, root, "build", *flags, "//pkg:cat").stderr
    assert "1 remote cache hit" in err
    assert (ws2 / "bazel-bin" / "pkg" / "cat.out").read_bytes() == (
        base.execroot / BIN / "pkg" / "cat.out"
    ).read_bytes()
    shutil.rmtree(root, ignore_errors=True)


# A rule running a `cfg = "host"` tool with runfiles, from another repository: Bazel
# runs it from bazel-out/host/bin and stages only the tool and its runfiles tree
# (the tool itself included, under both names of an external file).
TOOL_WS_DEFS = """\
def _tool_impl(ctx):
    exe = ctx.actions.declare_file(ctx.label.name)
    ctx.actions.expand_template(
        template = ctx.file.launcher, output = exe, substitutions = {}, is_executable = True,
    )
    runfiles = ctx.runfiles(files = ctx.files.data)
    return [DefaultInfo(executable = exe, files = depset([exe]), runfiles = runfiles)]

tool = rule(_tool_impl, executable = True, attrs = {
    "launcher": attr.label(allow_single_file = True, mandatory = True),
    "data": attr.label_list(allow_files = True),
})

def _use_impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name + ".out")
    ctx.actions.run(
        executable = ctx.executable._tool,
        arguments = [out.path],
        outputs = [out],
        mnemonic = "UseTool",
        env = {"PATH": "/usr/bin:/bin"},
    )
    return [DefaultInfo(files = depset([out]))]

use = rule(_use_impl, attrs = {
    "_tool": attr.label(default = "@ext//:tool", executable = True, cfg = "host"),
})
"""
TOOL_LAUNCHER = '#!/bin/sh\ncat "$0.runfiles/ext/data.txt" "$0.runfiles/main/pkg/own.txt" > "$1"\n'


def _tool_ws(root: Path) -> Path:
    (root / "ext").mkdir(parents=True)
    (root / "ext" / "WORKSPACE").write_text('workspace(name = "ext")\n')
    (root / "ext" / "BUILD").write_text(
        'load("@main//pkg:defs.bzl", "tool")\n'
        'tool(name = "tool", launcher = "tool.sh", data = ["data.txt", "@main//pkg:own.txt"],'
        ' visibility = ["//visibility:public"])\n'
    )
    (root / "ext" / "tool.sh").write_text(TOOL_LAUNCHER)
    (root / "ext" / "data.txt").write_text("from ext\n")
    ws = root / "main"
    (ws / "pkg").mkdir(parents=True)
    (ws / "WORKSPACE").write_text(
        f'workspace(name = "main")\nlocal_repository(name = "ext", path = "{root / "ext"}")\n'
    )
    (ws / "pkg" / "BUILD").write_text(
        'load(":defs.bzl", "use")\nexports_files(["own.txt"])\nuse(name = "u")\n'
    )
    (ws / "pkg" / "defs.bzl").write_text(TOOL_WS_DEFS)
    (ws / "pkg" / "own.txt").write_text("from main\n")
    return ws


def test_host_tool_with_runfiles_has_bazels_action_key(nginx: NginxCache, tmp_path: Path) -> None:
    root = tmp_path / "bazel-root"
    url = f"--remote_cache={nginx.url}"
    ws = _tool_ws(tmp_path / "bazel")
    bazel(ws, root, "build", "--spawn_strategy=processwrapper-sandbox", url, "//pkg:u")
    (key,) = nginx.entries("ac")
    want = (ws / "bazel-bin" / "pkg" / "u.out").read_bytes()
    assert want == b"from ext\nfrom main\n"
    assert (ws / "bazel-out/host/bin/external/ext/tool").is_file()

    # strata in a copy: the same key, so Bazel's entry is a hit and nothing runs but
    # the in-process template and runfiles links.
    ours = _tool_ws(tmp_path / "strata")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "python")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "strata",
            "build",
            f"--output_base={tmp_path / 'ob'}",
            url,
            "--action_keys=reapi",
            "//pkg:u",
        ],
        cwd=ours,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "1 executed" not in proc.stderr + proc.stdout
    assert (ours / "strata-bin" / "pkg" / "u.out").read_bytes() == want
    assert (tmp_path / "ob" / "execroot" / "main" / "bazel-out/host/bin/external/ext/tool").exists()
    assert set(nginx.entries("ac")) == {key}

    # Without the cache, strata runs the tool itself: the sandbox holds its runfiles tree.
    proc = subprocess.run(
        [sys.executable, "-m", "strata", "build", f"--output_base={tmp_path / 'ob2'}", "//pkg:u"],
        cwd=ours,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert (ours / "strata-bin" / "pkg" / "u.out").read_bytes() == want
