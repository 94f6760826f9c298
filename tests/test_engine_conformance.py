"""Conformance: the fixture workspaces built by real Bazel 4.2.3 and by `strata build`.

Every file of every target under `//...` (as strata's analysis predicts them)
must exist in Bazel's output tree and be byte-identical to strata's.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from realtools import need, need_skylib, run
from strata.engine.analysis.analysis import AnalysisResult, analyze
from strata.engine.loading.build_settings import split_setting_flags

FIXTURES = Path(__file__).parent / "fixtures" / "engine"
ROOT = Path(__file__).resolve().parents[1]


def _digests(base: Path, rel: str) -> dict[str, str]:
    """sha256 of a file, or of every file in a directory, keyed by relative path."""
    path = base / rel
    if path.is_dir():
        return {
            f"{rel}/{p.relative_to(path).as_posix()}": hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*"))
            if p.is_file()
        }
    return {rel: hashlib.sha256(path.read_bytes()).hexdigest()}


def _generated_digests(ws: Path, result: AnalysisResult) -> tuple[dict[str, str], dict[str, str]]:
    """The digests of every file `result`'s targets generate, as the embedded engine
    (strata-bin) and as Bazel (bazel-bin) wrote them."""
    prefix = result.bin_dir + "/"
    generated = sorted(
        {f for info in result.targets.values() for f in info.files if f.startswith(prefix)}
    )
    assert len(generated) >= 20
    ours: dict[str, str] = {}
    theirs: dict[str, str] = {}
    for f in generated:
        rel = f[len(prefix) :]
        ours.update(_digests(ws / "strata-bin", rel))
        theirs.update(_digests(ws / "bazel-bin", rel))
    return ours, theirs


@pytest.mark.realtool
@pytest.mark.slow
def test_conformance_bazel_and_strata_byte_identical(tmp_path: Path) -> None:
    bazel = need("bazel")
    for name in ("conformance", "conformance_local", "conformance_new_local"):
        shutil.copytree(FIXTURES / name, tmp_path / name, symlinks=True)
    ws = tmp_path / "conformance"
    run(
        bazel,
        f"--output_user_root={tmp_path / 'bazel-root'}",
        "--batch",
        "build",
        "--spawn_strategy=processwrapper-sandbox",
        "//...",
        cwd=ws,
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    run(
        sys.executable,
        "-m",
        "strata",
        "build",
        f"--output_base={tmp_path / 'strata-ob'}",
        "//...",
        cwd=ws,
        env=env,
    )

    result = analyze(ws, ["//..."], output_base=tmp_path / "analysis-ob")
    ours, theirs = _generated_digests(ws, result)
    (tmp_path / "bazel-outputs.json").write_text(json.dumps(theirs, indent=1, sort_keys=True))
    assert ours == theirs
    # A few outputs checked by content too, so the comparison cannot pass on two empty trees.
    assert (ws / "bazel-bin/app/all.list").read_text().splitlines() == [
        "<alpha>",
        "<beta>",
        "--joined",
        "alpha,beta",
    ]
    assert (ws / "bazel-bin/lib/tree.d/f4.txt").read_text() == "file 4\n"
    assert "hello from a repository rule" in (ws / "bazel-bin/app/combined.txt").read_text()
    assert (ws / "bazel-bin/app/platform.txt").read_text() == "linux\n"
    assert (ws / "bazel-bin/app/configured.txt").read_text() == "k8_fastbuild\n"
    assert (ws / "bazel-bin/app/configured_os.txt").read_text() == "linux\n"
    assert (ws / "bazel-bin/app/new_local.txt").read_text() == "first\nsecond\n"
    # Tree inputs with links: a link (to a directory too) is staged as one link, never
    # expanded; a tree of only directories, and a source directory, as one link.
    staged = (ws / "bazel-bin/lib/staged.txt").read_text().splitlines()
    tree = "<root>/bazel-out/k8-fastbuild/bin/lib/linked.d"
    for link in ("lib64", "share/doc", "chain", "emptylink", "absdir", "bin/current"):
        assert f"./{link} L {tree}/{link}" in staged
    assert not [line for line in staged if line.startswith(("./lib64/", "./empty "))]
    assert (ws / "bazel-bin/lib/staged_dirs.txt").read_text().splitlines()[:1] == [
        "TOP L <root>/bazel-out/k8-fastbuild/bin/lib/only_dirs.d"
    ]
    assert (
        (ws / "bazel-bin/lib/staged_srcdir.txt").read_text().startswith("TOP L <root>/lib/srcdir\n")
    )

    # Tools are built where Bazel 4.2.3 builds them: genrule `tools` in the host
    # configuration, `cfg = "exec"` dependencies in the exec one.
    strata_out = tmp_path / "strata-ob" / "execroot" / "conformance" / "bazel-out"
    for config in ("host", "k8-opt-exec-2B5CBBC6"):
        if result.bin_dir != "bazel-out/k8-fastbuild/bin" and config != "host":
            continue  # the exec directory's name is Bazel's on x86_64
        tool = f"{config}/bin/app/stamper"
        assert (ws / "bazel-out" / tool).read_bytes() == (strata_out / tool).read_bytes()

    # `build` of an executable builds its runfiles (a file in no DefaultInfo.files) and
    # lays out its runfiles tree; an executable not named after its target is accepted
    # and the implicit `ctx.outputs.executable` is never made.
    for out in ("bazel-bin", "strata-bin"):
        assert (ws / out / "app/launch.message").read_text() == (
            "message for launch: runfiles only\n"
        )
        assert not (ws / out / "app/launch").exists()
    launch_trees = [ws / b / "app/launch.sh.runfiles" for b in ("bazel-bin", "strata-bin")]
    assert _tree_listing(launch_trees[0]) == _tree_listing(launch_trees[1])
    assert "conformance/app/launch.message" in _tree_listing(launch_trees[1])
    launched = [
        run(*cmd, "run", *flag, "//app:launch", cwd=ws, env=env).stdout
        for cmd, flag in (
            ((bazel, f"--output_user_root={tmp_path / 'bazel-root'}", "--batch"), ()),
            ((sys.executable, "-m", "strata"), (f"--output_base={tmp_path / 'strata-ob'}",)),
        )
    ]
    assert launched[0] == launched[1]
    assert launched[1].startswith("launched as launch.sh\nmessage for launch: runfiles only\n")

    # `run` of a tool from a local_repository, through its runfiles: same output, same tree.
    bazel_run = run(
        bazel,
        f"--output_user_root={tmp_path / 'bazel-root'}",
        "--batch",
        "run",
        "//app:run_local",
        cwd=ws,
    )
    strata_run = run(
        sys.executable,
        "-m",
        "strata",
        "run",
        f"--output_base={tmp_path / 'strata-ob'}",
        "//app:run_local",
        cwd=ws,
        env=env,
    )
    assert (
        strata_run.stdout
        == bazel_run.stdout
        == "cwd: conformance\na message from @local_lib\ninput line\n"
    )
    trees = [ws / b / "app/run_local.sh.runfiles" for b in ("bazel-bin", "strata-bin")]
    assert _tree_listing(trees[0]) == _tree_listing(trees[1])
    manifests = [t / "MANIFEST" for t in trees]
    manifests += [t.parent / "run_local.sh.runfiles_manifest" for t in trees]
    listed = [_manifest_paths(m) for m in manifests]
    assert listed == [listed[0]] * 4 and "local_lib/show.sh" in listed[0]

    # `query 'deps(...)'` of Starlark rules (genrule adds @bazel_tools deps strata has not).
    queried = [
        sorted(run(*cmd, "query", *flag, "deps(//app:run_local)", cwd=ws, env=env).stdout.split())
        for cmd, flag in (
            ((bazel, f"--output_user_root={tmp_path / 'bazel-root'}", "--batch"), ()),
            ((sys.executable, "-m", "strata"), (f"--output_base={tmp_path / 'strata-ob'}",)),
        )
    ]
    assert queried[0] == queried[1]
    assert "@local_lib//:message.txt" in queried[0]


def _tree_listing(tree: Path) -> list[str]:
    return sorted(
        (Path(d) / n).relative_to(tree).as_posix()
        for d, dirs, files in os.walk(tree)
        for n in dirs + files
    )


def _manifest_paths(manifest: Path) -> list[str]:
    return [line.split(" ")[0] for line in manifest.read_text().splitlines()]


@pytest.mark.realtool
@pytest.mark.slow
def test_keep_going_past_analysis_errors_like_bazel(tmp_path: Path) -> None:
    """`build --keep_going`: each failing target's analysis error, the others built, exit 1."""
    bazel = need("bazel")
    ws = tmp_path / "ws"
    (ws / "p").mkdir(parents=True)
    (ws / "WORKSPACE").write_text("")
    (ws / "p" / "defs.bzl").write_text(
        "def _ok(ctx):\n"
        '    out = ctx.actions.declare_file(ctx.label.name + ".out")\n'
        '    ctx.actions.write(out, "ok " + ctx.label.name + "\\n")\n'
        "    return [DefaultInfo(files = depset([out]))]\n"
        'ok = rule(implementation = _ok, attrs = {"deps": attr.label_list()})\n'
        "def _broken(ctx):\n"
        '    fail("broken on purpose")\n'
        "broken = rule(implementation = _broken)\n"
    )
    (ws / "p" / "BUILD").write_text(
        'load(":defs.bzl", "broken", "ok")\n'
        'ok(name = "good")\n'
        'broken(name = "bad")\n'
        'broken(name = "worse")\n'
        'ok(name = "needs_bad", deps = [":bad"])\n'
    )
    targets = ("//p:good", "//p:bad", "//p:worse", "//p:needs_bad")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    procs = [
        subprocess.run(
            [*cmd, "build", *flags, "--keep_going", *targets],
            cwd=ws,
            env=env,
            capture_output=True,
            text=True,
        )
        for cmd, flags in (
            ((bazel, f"--output_user_root={tmp_path / 'bazel-root'}", "--batch"), ()),
            ((sys.executable, "-m", "strata"), (f"--output_base={tmp_path / 'strata-ob'}",)),
        )
    ]
    assert [p.returncode for p in procs] == [1, 1], [p.stderr for p in procs]
    for proc in procs:
        lines = proc.stderr.splitlines()
        for label in ("//p:bad", "//p:worse"):  # each error once; //p:needs_bad's is not its own
            assert sum(f"rule {label}:" in line for line in lines) == 1, proc.stderr
        assert "rule //p:needs_bad" not in proc.stderr
    # Both place each error at the target's BUILD call (column: its parenthesis).
    for place in (
        "p/BUILD:3:7: in broken rule //p:bad: ",
        "p/BUILD:4:7: in broken rule //p:worse: ",
    ):
        assert f"ERROR: {ws}/{place}" in procs[0].stderr
        assert f"error: {place}broken on purpose\n  at p/defs.bzl:7:5\n" in procs[1].stderr
    for out in ("bazel-bin", "strata-bin"):
        assert (ws / out / "p/good.out").read_text() == "ok good\n"
        assert not (ws / out / "p/needs_bad.out").exists()


SKYLIB_FLAGS = ("--//settings:greeting=hola", "--//settings:names=ann,bob", "--no//settings:loud")
"""Build-setting flags the skylib workspace is built with (the other settings keep defaults)."""


@pytest.mark.realtool
@pytest.mark.slow
def test_skylib_bazel_and_strata_byte_identical(tmp_path: Path) -> None:
    """Debian's bazel-skylib 1.0.3 under both engines: every feature that builds offline.

    write_file, copy_file, diff_test, run_binary (ctx.resolve_tools), native_binary
    (one provider returned, not a list), selects.with_or and config_setting_group
    (aliases as select() keys), common_settings with command-line flags and
    config_setting(flag_values), and the Starlark libraries (structs.to_dict needs
    dir(struct) to list to_json and to_proto).
    """
    bazel = need("bazel")
    (tmp_path / "bazel_skylib").symlink_to(need_skylib())
    ws = tmp_path / "conformance_skylib"
    shutil.copytree(FIXTURES / "conformance_skylib", ws, symlinks=True)
    bazel_cmd = (bazel, f"--output_user_root={tmp_path / 'bazel-root'}", "--batch")
    offline = f"--override_repository=remote_coverage_tools={FIXTURES / 'remote_coverage_tools'}"
    sandbox = "--spawn_strategy=processwrapper-sandbox"
    run(*bazel_cmd, "build", offline, sandbox, *SKYLIB_FLAGS, "//...", cwd=ws)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    strata_cmd = (sys.executable, "-m", "strata", "build", f"--output_base={tmp_path / 'ob'}")
    run(*strata_cmd, *SKYLIB_FLAGS, "//...", cwd=ws, env=env)

    _, flags = split_setting_flags(SKYLIB_FLAGS)
    result = analyze(ws, ["//..."], output_base=tmp_path / "analysis-ob", setting_flags=flags)
    ours, theirs = _generated_digests(ws, result)
    assert ours == theirs
    # Executables' runfiles trees (native_binary collects its data's runfiles).
    for exe in ("tools/native_report.sh", "tools/report_copy.sh", "files/same-test.sh"):
        trees = [ws / out / f"{exe}.runfiles" for out in ("bazel-bin", "strata-bin")]
        assert _tree_listing(trees[0]) == _tree_listing(trees[1]), exe
    native_tree = _tree_listing(ws / "bazel-bin/tools/native_report.sh.runfiles")
    assert "conformance_skylib/tools/extra.txt" in native_tree

    # Contents, so the comparison cannot pass on two wrong trees.
    out = ws / "bazel-bin"
    assert (out / "settings/selected.txt").read_text() == "hola not-loud three\n"
    assert (out / "settings/values.txt").read_text().splitlines() == [
        '0: False {"value": False}',
        '1: False {"value": False}',
        '2: True {"value": True}',
        '3: "hola" {"value": "hola"}',
        '4: 3 {"value": 3}',
        '5: ["ann", "bob"] {"value": ["ann", "bob"]}',
    ]
    report = (out / "libs/report.txt").read_text()
    assert (
        'structs: {"x": 1, "y": "two", "z": [3]} ["to_json", "to_proto", "x", "y", "z"]' in report
    )
    assert "partial: Hello, world. Hello, you!" in report
    ran = (out / "tools/ran.txt").read_text().splitlines()
    assert ran[0] == "args: tools/input.txt literal argument"
    assert ran[-1] == "banner: the banner"
    # no PATH in run_binary's environment: bash's own default
    assert not ran[1].startswith("MODE=plain INPUT=tools/input.txt PATH=/bin:")
    assert (out / "files/crlf.txt").read_bytes() == b"one\r\ntwo"
    assert '"FAIL: files \\"files/hello.txt\\" and' in (out / "files/same-test.sh").read_text()
    groups = [
        (out / f"select/group_{n}.txt").read_text() for n in ("always", "any_cpu", "only_opt")
    ]
    assert groups == ["always matches\n", "any_cpu matches\n", "only_opt does not match\n"]

    # A bad flag value: both engines fail in the string_flag's implementation and
    # place the error at the flag target's BUILD call.
    bad = "--//settings:greeting=ciao"
    procs = [
        subprocess.run(
            [*cmd, bad, "//settings:values"], cwd=ws, env=env, capture_output=True, text=True
        )
        for cmd in ((*bazel_cmd, "build", offline, sandbox), strata_cmd)
    ]
    assert [p.returncode != 0 for p in procs] == [True, True]
    place = "settings/BUILD:29:12: in string_flag rule //settings:greeting: "
    assert f"{ws}/{place}" in procs[0].stderr
    assert f"error: {place}Error setting //settings:greeting: invalid value 'ciao'" in (
        procs[1].stderr
    )

    # select_file reads dep.files, which strata's Targets cannot offer (README,
    # "Differences from Bazel"): Bazel builds it; strata names the line and the fix.
    (ws / "pick").mkdir()
    (ws / "pick" / "BUILD").write_text(
        'load("@bazel_skylib//rules:select_file.bzl", "select_file")\n'
        'filegroup(name = "both", srcs = ["a.txt", "b.txt"])\n'
        'select_file(name = "b", srcs = ":both", subpath = "b.txt")\n'
    )
    for name in ("a.txt", "b.txt"):
        (ws / "pick" / name).write_text(name + "\n")
    run(*bazel_cmd, "build", offline, sandbox, "//pick:b", cwd=ws)
    proc = subprocess.run(
        [*strata_cmd, "//pick:b"], cwd=ws, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(
        "error: pick/BUILD:3:12: in select_file rule //pick:b: Object of type `dict` has no "
        "attribute `files`; a dependency (Target) supports only dep[Provider] in strata, so "
        "write dep[DefaultInfo].files for dep.files\n"
        "  at external/bazel_skylib/rules/select_file.bzl:"
    ), proc.stderr
