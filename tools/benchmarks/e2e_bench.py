"""The e2e benchmark's runs and table (tools/benchmarks/e2e.py): `Bench` runs the
commands, each in a new process with its output logged, and prints each figure
beside its baseline; the formatting helpers are shared with e2e_remote.py.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e_measure import Failed, Run, remove
from e2e_measure import run as measure_run

STRATA = Path(__file__).resolve().parents[2]

# Runs the CLI as `python -m strata` does, then records its own peak RSS (KiB):
# that of the engine process, exact (the actions' are sampled, see e2e_measure).
WRAPPER = """
import resource, sys
from strata.cli import main
try:
    code = main(sys.argv[2:])
finally:
    with open(sys.argv[1], "w") as f:
        f.write("%d\\n" % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
raise SystemExit(code)
"""


NO = ("", "", "")  # a figure without a baseline


@dataclass
class Bench:
    ws: Path
    work: Path
    keep: bool
    figures: dict[str, Any] = field(default_factory=dict)
    rows: list[tuple[str, ...]] = field(default_factory=list)

    def run(self, name: str, argv: list[str], ws: Path | None = None, **kw: Any) -> Run:
        """Run argv in the workspace (or `ws`), its output in logs/NAME.log (e2e_measure.run)."""
        log = self.work / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            return measure_run(argv, ws or self.ws, log, **kw)
        except Failed as e:
            what, tail = e.args
            raise SystemExit(
                f"error: tools/bench e2e: {name} failed ({what}); its output is in {log}\n{tail}"
            ) from None

    def shell(self, name: str, script: str, **kw: Any) -> Run:
        return self.run(name, ["bash", "-o", "pipefail", "-c", script], **kw)

    def strata(
        self, name: str, ob: Path, target: str, *flags: str, ws: Path | None = None
    ) -> tuple[Run, int]:
        """A strata build in a new process: the run, and the engine's peak RSS in KiB."""
        rss = self.work / "logs" / f"{name}.rss"
        argv = [
            sys.executable,
            "-c",
            WRAPPER,
            str(rss),
            "build",
            f"--output_base={ob}",
            *flags,
            target,
        ]
        r = self.run(name, argv, ws, env=self._strata_env())
        return r, int(rss.read_text())

    def strata_run(self, name: str, ob: Path, target: str, pipe: str) -> Run:
        """`strata run TARGET | PIPE` in a new process (a shell pipeline)."""
        run = shlex.join([sys.executable, "-m", "strata", "run", f"--output_base={ob}", target])
        return self.shell(name, f"{run} | {pipe}", env=self._strata_env())

    def _strata_env(self) -> dict[str, str]:
        path = os.pathsep.join(filter(None, [str(STRATA / "python"), os.environ.get("PYTHONPATH")]))
        # An installed strata runs from compiled modules; a checkout under
        # PYTHONDONTWRITEBYTECODE would compile all of them in every command (~0.2 s).
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update(PYTHONPATH=path, PYTHONPYCACHEPREFIX=str(self.work / "pycache"))
        return env

    def cold_output_base(self, name: str) -> Path:
        """A fresh output base with the strata tool installed and nothing else."""
        ob = self.work / name
        self.strata(f"{name}-warmup", ob, "//warmup:warmup")
        for entry in ob.iterdir():
            if entry.name != "external":
                remove(entry)
        return ob

    def row(self, what: str, value: str, vs: tuple[str, str, str] = NO) -> None:
        """One figure, and its baseline (name, value, ratio) when it has one."""
        self.rows.append((what, value, *vs))
        line = f"{what:<38} {value:>24}"
        if vs[0]:
            line += f"   vs {vs[0]:<24} {vs[1]:>24}   {vs[2]}"
        print(line, flush=True)

    def timed(self, what: str, run: Run, base: tuple[str, Run] | None = None) -> None:
        """A time, wall (and CPU), against a baseline's: ratios of both."""
        vs = ("", "", "")
        if base:
            label, b = base
            vs = (label, timing(b), f"{ratio(run.seconds, b.seconds)} ({ratio(run.cpu, b.cpu)})")
        self.row(what, timing(run), vs)

    def record(self, key: str, run: Run) -> None:
        self.figures[f"{key}_s"] = run.seconds
        self.figures[f"{key}_cpu_s"] = run.cpu
        if run.executed is not None:
            self.figures[f"{key}_executed"] = run.executed

    def drop(self, path: Path) -> None:
        if not self.keep:
            remove(path)


def secs(x: float) -> str:
    return f"{x:.2f} s"


def timing(run: Run) -> str:
    return f"{run.seconds:.2f} s ({run.cpu:.1f} s cpu)"


def ratio(x: float, base: float) -> str:
    return f"{x / base:.2f}x" if base else "-"


def size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def print_table(b: Bench) -> None:
    print()
    rows = [("figure", "value", "baseline", "value", "ratio"), *b.rows]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        cells = [r[0].ljust(widths[0]), r[1].rjust(widths[1])]
        if r[2]:
            cells += [r[2].ljust(widths[2]), r[3].rjust(widths[3]), r[4]]
        print(" | ".join(cells).rstrip())
