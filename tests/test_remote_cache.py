"""Teams sharing action results through a real nginx WebDAV cache, and with real Bazel 4.2.3.

Team A builds with `--remote_cache`; team B, a copy of the workspace in
another directory with its own output base and an empty disk cache, builds
the same actions and runs none of them. Real Bazel stores and finds entries
on the same server, and, with REAPI action keys, Bazel and strata hit each
other's entries. Failure cases: server down, a hung server, a corrupt blob.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from enginekit import BIN, sh
from nginx_server import NginxCache
from realtools import bazel, need, run
from strata.engine.action import Action
from strata.engine.build import ExecutionConfig, execute
from strata.engine.cache import reapi
from strata.engine.cache.http import RemoteOptions
from strata.engine.execution.report import BuildStats, Reporter
from strata.engine.execution.scheduler import BuildOptions
from strata.engine.outputbase import OutputBase

pytestmark = pytest.mark.realtool


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[NginxCache]:
    server = NginxCache(tmp_path / "nginx")
    server.start(need("nginx"))
    yield server
    server.stop()


def _workspace(root: Path, text: str = "hello\n") -> Path:
    (root / "src").mkdir(parents=True)
    (root / "WORKSPACE").write_text("")
    (root / "src" / "a.txt").write_text(text)
    (root / "src" / "b.txt").write_text("world\n")
    return root


ACTIONS = [
    sh(
        "//src:layer_a",
        f"gzip -n -c src/a.txt > {BIN}/src/a.layer",
        ["src/a.txt"],
        [f"{BIN}/src/a.layer"],
        mnemonic="StoreLayer",
    ),
    sh(
        "//src:layer_b",
        f"gzip -n -c src/b.txt > {BIN}/src/b.layer",
        ["src/b.txt"],
        [f"{BIN}/src/b.layer"],
        mnemonic="StoreLayer",
    ),
    sh(
        "//src:tree",
        f"mkdir -p {BIN}/src/tree/sub && cp src/a.txt {BIN}/src/tree/sub/x && "
        f"cp src/b.txt {BIN}/src/tree/y",
        ["src/a.txt", "src/b.txt"],
        [],
        output_dirs=(f"{BIN}/src/tree",),
    ),
    sh(
        "//src:image",
        f"cat {BIN}/src/a.layer {BIN}/src/b.layer > {BIN}/src/image.tar",
        [f"{BIN}/src/a.layer", f"{BIN}/src/b.layer"],
        [f"{BIN}/src/image.tar"],
        mnemonic="ImageAssemble",
        tags=("no-remote-cache",),
    ),
]
OUTPUTS = [f"{BIN}/src/a.layer", f"{BIN}/src/b.layer", f"{BIN}/src/image.tar"]


def _build(
    ws: Path,
    out: Path,
    actions: list[Action],
    remote: RemoteOptions | None,
    *,
    keys: str = "strata",
) -> tuple[BuildStats, str, OutputBase]:
    stream = io.StringIO()
    base = OutputBase(out / "base", ws)
    config = ExecutionConfig(
        BuildOptions(jobs=2, action_keys=keys), disk_cache=out / "disk", remote=remote
    )
    wanted = [o for a in actions for o in a.outputs + a.output_dirs]
    stats = execute(base, actions, wanted, config, Reporter(stream, tty=False))
    return stats, stream.getvalue(), base


def _tree_bytes(base: OutputBase) -> dict[str, bytes]:
    files = {p: (base.execroot / p).read_bytes() for p in OUTPUTS}
    tree = base.execroot / BIN / "src" / "tree"
    for p in sorted(tree.rglob("*")):
        if p.is_file():
            files[str(p.relative_to(base.execroot))] = p.read_bytes()
    return files


def test_team_b_fresh_clone_executes_nothing_it_may_share(
    nginx: NginxCache, tmp_path: Path
) -> None:
    remote = RemoteOptions(url=nginx.url + "/teams")
    ws_a, ws_b = _workspace(tmp_path / "a"), _workspace(tmp_path / "b")
    stats_a, log_a, base_a = _build(ws_a, tmp_path / "out-a", ACTIONS, remote)
    assert stats_a.executed == 4 and "warning" not in log_a
    ac = nginx.entries("ac")
    assert len(ac) == 3  # the image (no-remote-cache) is not uploaded
    for data in ac.values():
        reapi.ActionResult.FromString(data)  # real REAPI messages
    cas = nginx.entries("cas")
    image_sha = hashlib.sha256(base_a.execroot.joinpath(OUTPUTS[2]).read_bytes())
    assert image_sha.hexdigest() not in cas
    layer = base_a.execroot.joinpath(OUTPUTS[0]).read_bytes()
    assert hashlib.sha256(layer).hexdigest() in cas

    stats_b, log_b, base_b = _build(ws_b, tmp_path / "out-b", ACTIONS[:3], remote)
    assert (stats_b.executed, stats_b.cache_hits) == (0, 3)
    assert "remote cache: 3 hits" in log_b
    stats_b2, _log, base_b = _build(ws_b, tmp_path / "out-b", ACTIONS, remote)
    assert stats_b2.executed_labels == ["//src:image ImageAssemble"]
    assert _tree_bytes(base_b) == _tree_bytes(base_a)
    # Uploads went blobs first, action result last, each with a Content-Length.
    puts = [r for r in nginx.requests() if r.startswith("PUT ")]
    first_ac = next(i for i, r in enumerate(puts) if "/ac/" in r)
    assert any("/cas/" in r for r in puts[:first_ac])


def test_server_down_warns_once_and_builds_locally(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    remote = RemoteOptions(url=f"http://127.0.0.1:{port}", timeout=5)
    stats, log, base = _build(_workspace(tmp_path / "ws"), tmp_path / "out", ACTIONS, remote)
    assert stats.executed == 4
    assert log.count("warning:") == 1 and "continuing without the remote cache" in log
    assert (base.execroot / OUTPUTS[2]).read_bytes().startswith(b"\x1f\x8b")


def test_hung_server_times_out_once_and_builds_locally(tmp_path: Path) -> None:
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)  # accepts connections into the backlog, never answers
        port = hung.getsockname()[1]
        remote = RemoteOptions(url=f"http://127.0.0.1:{port}", timeout=0.5)
        stats, log, _base = _build(_workspace(tmp_path / "ws"), tmp_path / "out", ACTIONS, remote)
    assert stats.executed == 4
    assert log.count("warning:") == 1 and "Timeout" in log


def test_corrupt_blob_on_the_server_is_rejected_and_the_action_runs(
    nginx: NginxCache, tmp_path: Path
) -> None:
    remote = RemoteOptions(url=nginx.url)
    _build(_workspace(tmp_path / "a"), tmp_path / "out-a", ACTIONS[:1], remote)
    (blob,) = [p for p in nginx.cache_dir.joinpath("cas").iterdir()]
    good = blob.read_bytes()
    blob.write_bytes(b"not the layer")
    stats, log, base = _build(_workspace(tmp_path / "b"), tmp_path / "out-b", ACTIONS[:1], remote)
    assert stats.executed == 1 and stats.cache_hits == 0
    assert log.count("warning:") == 1 and f"blob {blob.name} does not match its sha256" in log
    assert blob.read_bytes() == good  # uploaded again by the run
    assert (base.execroot / OUTPUTS[0]).read_bytes() == good
    disk = tmp_path / "out-b" / "disk"
    assert not [p for p in disk.rglob("*") if p.name.endswith(".tmp")]
    # The local entry written is the one from the local run, with the right blob.
    assert (disk / "cas" / blob.name[:2] / blob.name).read_bytes() == good


def test_noremote_accept_cached_and_no_upload(nginx: NginxCache, tmp_path: Path) -> None:
    quiet = RemoteOptions(url=nginx.url, upload_local_results=False)
    _build(_workspace(tmp_path / "a"), tmp_path / "out-a", ACTIONS[:2], quiet)
    assert nginx.entries("ac") == {}
    _build(_workspace(tmp_path / "b"), tmp_path / "out-b", ACTIONS[:2], RemoteOptions(nginx.url))
    blind = RemoteOptions(url=nginx.url, accept_cached=False)
    stats, _log, _b = _build(_workspace(tmp_path / "c"), tmp_path / "out-c", ACTIONS[:2], blind)
    assert stats.executed == 2


def _auth_nginx(root: Path, *, reads_too: bool) -> NginxCache:
    """nginx asking for basic auth on writes, and on reads too when `reads_too`."""
    users = root / "htpasswd"
    root.mkdir(parents=True)
    users.write_text(run(need("htpasswd"), "-nb", "team", "cache-pw").stdout)
    auth = f'auth_basic "cache"; auth_basic_user_file {users};'
    server = NginxCache(root, extra=auth if reads_too else f"limit_except GET HEAD {{ {auth} }}")
    server.start(need("nginx"))
    return server


def test_cache_refusing_reads_warns_once_naming_the_fix(tmp_path: Path) -> None:
    """401 to every read is a miss, as 404 is, but worth saying (Bazel: 'Reading from
    Remote Cache: 401 Unauthorized'): otherwise a team never learns its cache is unused."""
    server = _auth_nginx(tmp_path / "nginx", reads_too=True)
    try:
        anonymous = RemoteOptions(url=server.url)
        stats, log, _b = _build(_workspace(tmp_path / "a"), tmp_path / "out-a", ACTIONS, anonymous)
        assert stats.executed == 4
        assert log.count("reading was refused") == 1, log
        assert (
            f"warning: remote cache {server.url}: reading was refused (GET {server.url}/ac/"
        ) in log
        assert "got HTTP 401 Unauthorized); every lookup misses and actions run locally; " in log
        assert "--remote_cache=http://user:password@host:port/..." in log
        assert log.count("warning:") == 2  # and one for the refused uploads
        assert server.entries("ac") == {} and server.entries("cas") == {}
        # The fix it names works: team B, with credentials, stores; team C hits.
        url = server.url.replace("http://", "http://team:cache-pw@")
        stats, log, _b = _build(
            _workspace(tmp_path / "b"), tmp_path / "out-b", ACTIONS, RemoteOptions(url=url)
        )
        assert stats.executed == 4 and "warning" not in log
        stats, log, _b = _build(
            _workspace(tmp_path / "c"), tmp_path / "out-c", ACTIONS[:3], RemoteOptions(url=url)
        )
        assert (stats.executed, stats.cache_hits) == (0, 3) and "warning" not in log
    finally:
        server.stop()


def test_refused_uploads_are_not_counted_as_uploaded(tmp_path: Path) -> None:
    server = _auth_nginx(tmp_path / "nginx", reads_too=False)
    try:
        remote = RemoteOptions(url=server.url)
        stats, log, _b = _build(_workspace(tmp_path / "a"), tmp_path / "out-a", ACTIONS, remote)
        assert stats.executed == 4
        assert server.entries("ac") == {} and server.entries("cas") == {}
        refused = [r for r in server.requests() if r.startswith("PUT ")]
        assert refused and all(r.endswith(" 401") for r in refused)
        assert log.count("warning:") == 1 and "was refused (got HTTP 401)" in log
        summary = next(line for line in log.splitlines() if line.startswith("remote cache:"))
        assert ", 0 bytes uploaded, " in summary, summary
        assert summary.endswith(f", {len(refused)} uploads refused"), summary
        assert "reads refused" not in summary  # anonymous reads are allowed here
    finally:
        server.stop()


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
