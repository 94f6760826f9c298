from __future__ import annotations

import gzip
import json
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from enginekit import BIN, sh
from strata.cli import main
from strata.engine.action import Action


@dataclass(frozen=True)
class FakeTarget:
    files: tuple[str, ...]
    executable: str | None = None
    runfiles: tuple[str, ...] = ()
    deps: tuple[str, ...] = ()
    output_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass
class FakeResult:
    actions: list[Action]
    targets: dict[str, FakeTarget]
    workspace_name: str = "__main__"
    calls: list[tuple[list[str], str]] = field(default_factory=list)
    errors: tuple[str, ...] = ()
    graph: Any = None  # AnalysisResult.graph, set when the result is stored


TOOL = f"{BIN}/app/tool"
ACTIONS = [
    Action(
        owner="//app:tool",
        mnemonic="FileWrite",
        progress_message="",
        kind="write",
        outputs=(TOOL,),
        is_executable=True,
        content=b'#!/bin/sh\necho "args: $*"; cat app/data.txt; pwd\n',
    ),
    sh(
        "//app:gen",
        f"cat app/data.txt app/data.txt > {BIN}/app/double",
        ["app/data.txt"],
        [f"{BIN}/app/double"],
    ),
]
TARGETS = {
    "//app:gen": FakeTarget((f"{BIN}/app/double",), deps=("//app:data.txt",)),
    "//app:tool": FakeTarget((TOOL,), executable=TOOL, runfiles=("app/data.txt",)),
}


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "ws"
    (root / "app").mkdir(parents=True)
    (root / "WORKSPACE").write_text("")
    (root / "app" / "data.txt").write_text("data\n")
    (root / ".strata.rc").write_text("build --jobs=1\n")
    monkeypatch.chdir(root / "app")
    calls: list[tuple[list[str], str]] = []

    def analyze(
        workspace: Path,
        patterns: list[str],
        *,
        cwd_package: str,
        output_base: Path,
        reads: object = None,
        keep_going: bool = False,
        setting_flags: object = (),
    ) -> FakeResult:
        assert workspace == root.resolve()
        calls.append((patterns, cwd_package))
        wanted = {p.replace(":", "//app:") if p.startswith(":") else p for p in patterns}
        picked = {k: v for k, v in TARGETS.items() if k in wanted or "//app/..." in wanted}
        return FakeResult(ACTIONS, picked, calls=calls)

    fake = types.ModuleType("strata.engine.analysis.analysis")
    fake.analyze = analyze  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "strata.engine.analysis.analysis", fake)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return root


def test_build_prints_targets_and_summary(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", ":gen"]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "Target //app:gen up-to-date:\n  strata-bin/app/double\n" in err
    assert "1 actions: 1 executed, 0 cache hits\n" in err
    assert (ws / "strata-bin" / "app" / "double").read_text() == "data\ndata\n"
    assert str((ws / "strata-bin").resolve()).startswith(str(ws.parent / "xdg" / "strata"))
    assert main(["build", "//app:gen"]) == 0
    assert "1 actions: 0 executed, 1 cache hits\n" in capsys.readouterr().err


def test_output_base_and_disk_cache_flags(
    ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ob, dc = tmp_path / "ob", tmp_path / "dc"
    assert main(["build", "//app:gen", f"--output_base={ob}", f"--disk_cache={dc}"]) == 0
    assert (ob / "execroot" / "__main__" / BIN / "app" / "double").is_file()
    assert any((dc / "cas").rglob("*"))
    assert main(["clean", f"--output_base={ob}"]) == 0
    assert not (ob / "execroot").exists() and not (ws / "strata-bin").exists()
    assert (
        main(["build", "//app:gen", f"--output_base={ob}", f"--disk_cache={dc}", "--explain"]) == 0
    )
    assert "0 executed, 1 cache hits" in capsys.readouterr().err
    assert main(["clean", "--expunge", f"--output_base={ob}"]) == 0
    assert not ob.exists()


def test_run_passes_args_and_runs_in_runfiles(ws: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["run", ":tool", "--", "a", "b c"]) == 0
    out = capfd.readouterr().out.splitlines()
    assert out[0] == "args: a b c"
    assert out[1] == "data"
    assert out[2].endswith(f"/{BIN}/app/tool.runfiles/__main__")


def test_run_refuses_a_non_executable_target(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "//app:gen"]) == 1
    assert capsys.readouterr().err == (
        "error: //app:gen: target is not executable (got a rule without executable = True); "
        "run a *_binary or a rule that sets executable = True\n"
    )


def test_query_lists_targets_and_deps(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "//app/..."]) == 0
    assert capsys.readouterr().out == "//app:gen\n//app:tool\n"
    assert main(["query", "deps(//app:gen)"]) == 0
    assert capsys.readouterr().out == "//app:data.txt\n//app:gen\n"


def test_rc_flags_are_applied_and_checked(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (ws / ".strata.rc").write_text("build --jobs=0\n")
    assert main(["build", "//app:gen"]) == 2  # a flag's mistake: Bazel's exit status and words
    assert "While parsing option --jobs=0: Value '0' must be at least 1." in capsys.readouterr().err
    # As in Bazel, an rc file's bad value is an error even where the command line overrides it.
    assert main(["build", "//app:gen", "--jobs=2"]) == 2
    (ws / ".strata.rc").write_text("build --jobs=1\n")
    assert main(["build", "//app:gen", "--jobs=2"]) == 0
    capsys.readouterr()
    (ws / ".strata.rc").write_text("build --bogus\n")
    assert main(["build", "//app:gen"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {ws}/.strata.rc:1: --bogus :: Unrecognized option: --bogus\n"


def _gen_fails(monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    """//app:gen becomes one Genrule running `script`, which fails."""
    bad = sh("//app:gen", script, [], [f"{BIN}/app/double"])
    monkeypatch.setattr(
        sys.modules["strata.engine.analysis.analysis"],
        "analyze",
        lambda *a, **k: FakeResult([bad], {"//app:gen": TARGETS["//app:gen"]}),
    )


def test_failing_build_exits_1_with_action_error(
    ws: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _gen_fails(monkeypatch, "echo nope >&2; exit 2")
    assert main(["build", "//app:gen"]) == 1
    err = capsys.readouterr().err
    assert "error: //app:gen: Genrule failed with exit status 2 (got command: /bin/sh -c" in err
    assert err.rstrip().endswith("nope")


def test_not_in_a_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["clean"]) == 1
    assert capsys.readouterr().err.startswith(f"error: not inside a workspace (got {tmp_path}")


@pytest.fixture(scope="module")
def strata_pex(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tools/build-pex for the module's tests (building it takes seconds); its tests
    share a PEX_ROOT beside it, so the pex unpacks its wheels once."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    pex = tmp_path_factory.mktemp("pex") / "strata.pex"
    subprocess.run([str(root / "tools" / "build-pex"), str(pex)], check=True, capture_output=True)
    return pex


@pytest.mark.slow
def test_build_pex_makes_a_single_file_that_runs(tmp_path: Path, strata_pex: Path) -> None:
    import subprocess

    pex = strata_pex
    env = {"PATH": "/usr/bin:/bin", "PEX_ROOT": str(pex.parent / "pex-root")}
    out = subprocess.run(
        ["python3", str(pex), "version"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.startswith("strata ")
    probe = (
        "import blake3, xxhash, starlark, zstandard, isal; import strata.engine.execution.scheduler"
    )
    subprocess.run(
        ["python3", str(pex), "-c", probe],
        env={**env, "PEX_INTERPRETER": "1"},
        cwd=tmp_path,
        check=True,
    )


PEX_WORKSPACE = """workspace(name = "pexuser")

load("@strata//rules:repositories.bzl", "strata_dependencies")

strata_dependencies()
"""

PEX_BUILD = """load("@strata//rules:defs.bzl", "layered_image", "store_path")

store_path(name = "greeting-1.0", srcs = {"greeting.txt": "share/greeting.txt"})

layered_image(name = "img", contents = [":greeting-1.0"], tag = "v1")
"""


@pytest.mark.slow
def test_pex_alone_builds_a_workspace_that_loads_strata_rules(
    tmp_path: Path, strata_pex: Path, tools_cache: str
) -> None:
    """strata.pex carries @strata (rules, tool sources, lock): same image as the checkout."""
    import hashlib
    import subprocess

    root = Path(__file__).resolve().parents[1]
    pex = strata_pex
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "WORKSPACE").write_text(PEX_WORKSPACE)
    (ws / "BUILD").write_text(PEX_BUILD)
    (ws / "greeting.txt").write_text("hello from a pex-built image\n")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PEX_ROOT": str(pex.parent / "pex-root"),
        "STRATA_TOOLS_CACHE": tools_cache,
    }
    digests = []
    for argv in (["python3", str(pex)], [sys.executable, "-m", "strata"]):
        base = tmp_path / f"ob{len(digests)}"
        proc = subprocess.run(
            [*argv, "build", f"--output_base={base}", "--output_groups=+tarball", "//:img"],
            cwd=ws,
            env={**env, "PYTHONPATH": str(root / "python")} if "-m" in argv else env,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        digests.append(hashlib.sha256((ws / "strata-bin" / "img.tar").read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def _trace(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    doc = json.loads(gzip.decompress(data) if path.suffix == ".gz" else data)
    assert doc["otherData"] == {"producer": "strata"}
    return [e for e in doc["traceEvents"] if e["ph"] == "X"]


def test_profile_traces_phases_and_actions(
    ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = f"--disk_cache={tmp_path / 'dc'}"
    assert main(["build", "//app:gen", cache, f"--profile={tmp_path / 'p.json'}"]) == 0
    spans = _trace(tmp_path / "p.json")
    analysis, execution = spans[0], spans[1]
    assert (analysis["name"], execution["name"]) == ("analysis", "execution")
    assert analysis["tid"] == execution["tid"] == 0
    assert analysis["ts"] + analysis["dur"] <= execution["ts"]
    actions = spans[2:]
    assert [(e["cat"], e["args"]["result"]) for e in actions] == [
        ("action", "cache_miss"),  # looked up in the disk cache
        ("action", "executed"),
    ]
    for e in actions:
        assert e["name"] == "Genrule //app:gen" and e["tid"] == 1
        assert (
            execution["ts"] <= e["ts"] <= e["ts"] + e["dur"] <= execution["ts"] + execution["dur"]
        )
    # gzipped when asked; after `clean`, the result comes from the disk cache
    assert main(["clean"]) == 0
    assert main(["build", "//app:gen", cache, f"--profile={tmp_path / 'p.json.gz'}"]) == 0
    results = [e["args"]["result"] for e in _trace(tmp_path / "p.json.gz")[2:]]
    assert results == ["cache_hit"]
    assert "1 cache hits" in capsys.readouterr().err


def test_profile_is_written_when_the_build_fails(
    ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _gen_fails(monkeypatch, "exit 2")
    assert main(["build", "//app:gen", f"--profile={tmp_path / 'p.json'}"]) == 1
    actions = [e for e in _trace(tmp_path / "p.json") if e["cat"] == "action"]
    assert [e["args"]["result"] for e in actions] == ["cache_miss", "failed"]
    missing = tmp_path / "no" / "p.json"
    assert main(["build", "//app:gen", f"--profile={missing}"]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err == (
        f"error: strata: --profile names a file in a directory that does not exist (got "
        f"{missing}); create the directory or pick another path"
    )
    assert not missing.parent.exists()
