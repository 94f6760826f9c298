"""Hand-made actions and a tiny workspace for the execution-engine tests."""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass, field
from pathlib import Path

from casekit import PYTHON_DIR
from strata.engine.action import Action
from strata.engine.build import ExecutionConfig, execute
from strata.engine.execution.report import BuildStats, Reporter
from strata.engine.execution.scheduler import BuildOptions
from strata.engine.outputbase import OutputBase

BIN = "bazel-out/k8-fastbuild/bin"
TOOL = f"{BIN}/external/strata_tools/strata"
TOOL_INPUTS = (TOOL, f"{TOOL}.runfiles/MANIFEST")
"""The inputs of an action that runs the tool: its launcher and its runfiles."""


def launcher(
    module: str = "strata", pythonpath: str = str(PYTHON_DIR), *, before: str = ""
) -> bytes:
    """A launcher running `python -m <module>` from this checkout; `before` is shell run first."""
    return (
        f'#!/bin/sh\n{before}PYTHONPATH="{pythonpath}" exec "{sys.executable}" -B -s '
        f'-m {module} "$@"\n'
    ).encode()


def tool_actions(script: bytes | None = None) -> list[Action]:
    """The tool as the engine stages it: a launcher (`script`, by default `launcher()`) and
    its runfiles tree, both outputs."""
    return [
        Action(
            "//tool",
            "Launcher",
            "",
            kind="write",
            content=launcher() if script is None else script,
            is_executable=True,
            outputs=(TOOL,),
        ),
        Action(
            "//tool",
            "Runfiles",
            "",
            kind="write",
            content=b"",
            outputs=(f"{TOOL}.runfiles/MANIFEST",),
        ),
    ]


def sh(
    owner: str,
    script: str,
    inputs: list[str],
    outputs: list[str],
    *,
    mnemonic: str = "Genrule",
    output_dirs: tuple[str, ...] = (),
    env: tuple[tuple[str, str], ...] = (),
    tags: tuple[str, ...] = (),
) -> Action:
    return Action(
        owner=owner,
        mnemonic=mnemonic,
        progress_message=f"Executing {mnemonic} {owner}",
        argv=("/bin/sh", "-c", script),
        env=env,
        inputs=tuple(sorted(inputs)),
        outputs=tuple(sorted(outputs)),
        output_dirs=output_dirs,
        tags=tags,
    )


def chain() -> list[Action]:
    """a.txt -> A; b.txt -> B; A + B -> C, in the workspace `chain_engine` makes."""
    return [
        sh("//pkg:a", f"tr a-z A-Z < pkg/a.txt > {BIN}/pkg/A", ["pkg/a.txt"], [f"{BIN}/pkg/A"]),
        sh("//pkg:b", f"tr a-z A-Z < pkg/b.txt > {BIN}/pkg/B", ["pkg/b.txt"], [f"{BIN}/pkg/B"]),
        sh(
            "//pkg:c",
            f"cat {BIN}/pkg/A {BIN}/pkg/B > {BIN}/pkg/C",
            [f"{BIN}/pkg/A", f"{BIN}/pkg/B"],
            [f"{BIN}/pkg/C"],
        ),
    ]


@dataclass
class Engine:
    workspace: Path
    output_base: Path
    disk_cache: Path | None = None
    log: list[str] = field(default_factory=list)

    @property
    def base(self) -> OutputBase:
        return OutputBase(self.output_base, self.workspace)

    def out(self, path: str) -> Path:
        return self.base.execroot / path

    def build(
        self,
        actions: list[Action],
        wanted: list[str] | None = None,
        *,
        explain: bool = False,
        jobs: int = 2,
        keep_going: bool = False,
        verbose_failures: bool = False,
        workers: bool = True,
        sandbox: str = "auto",
    ) -> BuildStats:
        stream = io.StringIO()
        reporter = Reporter(stream, tty=False, explain=explain)
        if wanted is None:
            wanted = [o for a in actions for o in a.outputs + a.output_dirs]
        config = ExecutionConfig(
            BuildOptions(
                jobs=jobs,
                keep_going=keep_going,
                verbose_failures=verbose_failures,
                workers=workers,
            ),
            disk_cache=self.disk_cache,
            sandbox=sandbox,
        )
        try:
            return execute(self.base, actions, wanted, config, reporter)
        finally:
            self.log.append(stream.getvalue())


def chain_engine(tmp_path: Path) -> Engine:
    """An engine on a workspace holding `chain`'s sources: pkg/a.txt and pkg/b.txt."""
    ws = tmp_path / "ws"
    (ws / "pkg").mkdir(parents=True)
    (ws / "WORKSPACE").write_text("")
    (ws / "pkg" / "a.txt").write_text("alpha\n")
    (ws / "pkg" / "b.txt").write_text("beta\n")
    return Engine(ws, tmp_path / "ob")
