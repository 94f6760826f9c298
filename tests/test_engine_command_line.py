"""Bazel's command-line shape: startup options, `info`, `help`, flags, `--keep_going`.

`strata [startup options] COMMAND [options] [arguments]`, as `bazel` is
called; the last test runs Bazel 4.2.3 beside strata on the same workspace
and command lines (the mistakes themselves are cases of tests/test_bad_inputs.py).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from realtools import need
from strata.cli import main

ROOT = Path(__file__).resolve().parents[1]
GENRULE = 'genrule(name = "{name}", outs = ["{name}.txt"], cmd = "echo {name} > $@"{extra})\n'


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """good/ builds, bad/ does not load, dep/ depends on bad/, manual/ is tagged manual."""
    root = tmp_path / "ws"
    for pkg in ("good", "bad", "dep", "manual"):
        (root / pkg).mkdir(parents=True)
    (root / "WORKSPACE").write_text('workspace(name = "shape")\n')
    (root / "good" / "BUILD").write_text(GENRULE.format(name="g", extra=""))
    (root / "bad" / "BUILD").write_text(GENRULE.format(name="b", extra="") + "undefined_fn()\n")
    (root / "dep" / "BUILD").write_text(
        'genrule(name = "d", srcs = ["//bad:b"], outs = ["d.txt"], cmd = "cp $< $@")\n'
    )
    (root / "manual" / "BUILD").write_text(
        GENRULE.format(name="m", extra=', tags = ["manual"]') + GENRULE.format(name="n", extra="")
    )
    monkeypatch.chdir(root)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_output_base_is_a_startup_option_and_still_taken_after_the_command(
    ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before, after, user_root = tmp_path / "before", tmp_path / "after", tmp_path / "users"
    assert run(capsys, f"--output_base={before}", "--batch", "build", "//good:g")[0] == 0
    assert (before / "execroot/shape/bazel-out/k8-fastbuild/bin/good/g.txt").is_file()
    assert run(capsys, "build", f"--output_base={after}", "//good:g")[0] == 0
    assert (after / "execroot/shape/bazel-out/k8-fastbuild/bin/good/g.txt").is_file()
    # --output_user_root: the output base is <root>/<hash of the workspace path>, as in Bazel.
    rc, out, _err = run(capsys, f"--output_user_root={user_root}", "info", "output_base")
    digest = hashlib.sha256(os.fsencode(ws.resolve())).hexdigest()[:32]
    assert rc == 0 and out == f"{user_root.resolve()}/{digest}\n"


def test_info(ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ob = (tmp_path / "ob").resolve()
    rc, out, _err = run(capsys, f"--output_base={ob}", "info")
    assert rc == 0
    values = dict(line.split(": ", 1) for line in out.splitlines())
    assert list(values) == sorted(values)
    execroot = f"{ob}/execroot/shape"
    assert values == {
        "bazel-bin": f"{execroot}/bazel-out/k8-fastbuild/bin",
        "bazel-genfiles": f"{execroot}/bazel-out/k8-fastbuild/bin",
        "bazel-testlogs": f"{execroot}/bazel-out/k8-fastbuild/testlogs",
        "execution_root": execroot,
        "output_base": str(ob),
        "output_path": f"{execroot}/bazel-out",
        "release": values["release"],
        "strata-bin": f"{execroot}/bazel-out/k8-fastbuild/bin",
        "strata-testlogs": f"{execroot}/bazel-out/k8-fastbuild/testlogs",
        "workspace": str(ws.resolve()),
    }
    assert values["release"].startswith("strata ")
    assert run(capsys, f"--output_base={ob}", "info", "execution_root") == (0, execroot + "\n", "")
    rc, out, _err = run(capsys, "info", f"--output_base={ob}", "workspace", "output_base")
    assert (rc, out) == (0, f"workspace: {ws.resolve()}\noutput_base: {ob}\n")


def test_help_lists_the_commands_and_their_flags(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _err = run(capsys)
    assert rc == 0 and out.startswith("usage: strata [startup options] COMMAND")
    assert run(capsys, "help") == (0, out, "")
    rc, test_help, _err = run(capsys, "help", "test")
    assert rc == 0 and "--test_output" in test_help and "--test_filter" in test_help
    rc, startup, _err = run(capsys, "help", "startup_options")
    assert rc == 0 and "--output_base=DIR" in startup and "--output_user_root=DIR" in startup


def test_boolean_flags_take_bazels_forms(
    ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ob = f"--output_base={tmp_path / 'ob'}"
    for flag in ("--keep_going=false", "--keep_going=1", "--nokeep_going", "--explain=no"):
        rc, _out, err = run(capsys, "build", ob, flag, "//good:g")
        assert rc == 0, (flag, err)


def test_keep_going_carries_on_past_packages_that_fail_to_load(
    ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ob = f"--output_base={tmp_path / 'ob'}"
    rc, _out, err = run(capsys, "build", ob, "//...")
    assert rc == 1 and not (ws / "strata-bin" / "good" / "g.txt").exists(), err
    for patterns in (["//..."], ["//good:g", "//bad:b", "//dep:d"]):
        rc, _out, err = run(capsys, "build", ob, "--keep_going", *patterns)
        assert rc == 1, err
        assert (ws / "strata-bin" / "good" / "g.txt").read_text() == "g\n"
        assert not (ws / "strata-bin" / "dep" / "d.txt").exists()
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert errors[0].startswith("error: bad/BUILD:2:1: "), err
        assert errors[-1].startswith("error: strata build: command succeeded, but not all")
        assert "Traceback" not in err


def test_wildcards_leave_out_manual_targets(
    ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ob = f"--output_base={tmp_path / 'ob'}"
    assert run(capsys, "build", ob, "//manual:all")[0] == 0
    assert (ws / "strata-bin" / "manual" / "n.txt").is_file()
    assert not (ws / "strata-bin" / "manual" / "m.txt").exists()
    assert run(capsys, "build", ob, "//manual:m")[0] == 0
    assert (ws / "strata-bin" / "manual" / "m.txt").is_file()


def test_readme_lists_every_command_of_strata_help() -> None:
    """README's command list (between its `commands` markers) is `strata --help`'s."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- commands: -->", 1)[1].split("<!-- /commands -->", 1)[0]
    listed = re.findall(r"^- `strata ([a-z-]+)", block, re.MULTILINE)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    proc = subprocess.run(
        [sys.executable, "-m", "strata", "--help"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    section = proc.stdout.split("COMMAND\n", 1)[1].split("\n\n", 1)[0]
    helped = re.findall(r"^    ([a-z-]+)", section, re.MULTILINE)
    assert len(helped) >= 10
    assert listed == helped


@pytest.mark.realtool
@pytest.mark.slow
def test_bazel_and_strata_agree_on_the_command_line(ws: Path, tmp_path: Path) -> None:
    """The same command lines to `bazel` and `strata`: the same exit status; the same words
    for a mistake (`bazel`/`ERROR:` read `strata`/`error:`); `info` the same places given
    the same output base; `--keep_going` past a package that fails to load."""
    bazel = [need("bazel"), f"--output_user_root={tmp_path / 'bazel-root'}", "--batch"]
    strata = [sys.executable, "-m", "strata"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}

    def both(*argv: str) -> list[subprocess.CompletedProcess[str]]:
        """Run `argv` with bazel then strata; bazel's build gets processwrapper-sandbox
        (its linux-sandbox prints debug lines here)."""
        quiet = ["--spawn_strategy=processwrapper-sandbox"] if argv[:1] == ("build",) else []
        return [
            subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True)
            for cmd in ([*bazel, *argv[:1], *quiet, *argv[1:]], [*strata, *argv])
        ]

    for argv in (["bulid", "//good:g"], ["build", "--jbos=2", "//good:g"], ["build", "--keep_go"]):
        theirs, ours = both(*argv)
        assert theirs.returncode == ours.returncode == 2, (theirs.stderr, ours.stderr)
        said = [ln for ln in theirs.stderr.splitlines() if "Unrecognized" in ln or "'bulid'" in ln]
        expected = said[0].removeprefix("ERROR: ").replace("'bazel help'", "'strata help'")
        assert ours.stderr == f"error: {expected}\n"

    infos = []
    for proc in both("info"):
        assert proc.returncode == 0, proc.stderr
        values = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)
        infos.append(values)
    keys = ("bazel-bin", "bazel-genfiles", "bazel-testlogs", "execution_root", "output_path")
    for key in keys:
        bazel_base, strata_base = infos[0]["output_base"], infos[1]["output_base"]
        assert infos[0][key].replace(bazel_base, "OB") == infos[1][key].replace(strata_base, "OB")
    assert infos[0]["workspace"] == infos[1]["workspace"] == str(ws)

    theirs, ours = both("build", "--keep_going", "//...")
    assert theirs.returncode == ours.returncode == 1, (theirs.stderr, ours.stderr)
    for proc, out in ((theirs, "bazel-bin"), (ours, "strata-bin")):
        assert "bad/BUILD:2:1:" in proc.stderr, proc.stderr
        assert (ws / out / "good" / "g.txt").read_text() == "g\n"
        assert (ws / out / "manual" / "n.txt").is_file()
        assert not (ws / out / "manual" / "m.txt").exists()  # manual: not in //...
