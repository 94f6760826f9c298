"""`tools/fuzz`: fuzz every parser of untrusted input, print a table, save crashes."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from fuzzers import TARGETS
from fuzzers.harness import Report, fuzz, known, replay


def _new(r: Report) -> list[str]:
    return [sig for sig in r.crashes if known(sig) is None]


def _row(r: Report) -> str:
    crashes = f"{len(_new(r))}+{len(r.crashes) - len(_new(r))}k"
    return (
        f"{r.target:<18} {r.inputs:>9,} {r.seconds:>8.1f} {r.inputs / max(r.seconds, 1e-9):>8.0f}"
        f" {len(r.outcomes):>9} {crashes:>8}"
    )


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="tools/fuzz", description=__doc__)
    p.add_argument("targets", nargs="*", help=f"default: all of {', '.join(TARGETS)}")
    p.add_argument("--examples", type=int, default=100_000, help="inputs per target")
    p.add_argument("--seed", type=int, default=None, help="hypothesis seed (default random)")
    p.add_argument("--out", type=Path, default=None, help="where crash reproducers go")
    p.add_argument("--outcomes", action="store_true", help="list each target's outcomes")
    p.add_argument("--replay", type=Path, metavar="CRASH_DIR", help="run one saved input")
    args = p.parse_args(argv)
    if args.replay is not None:
        name = (args.replay / "crash.txt").read_text().split("\n", 1)[0].split(": ", 1)[1]
        outcome, sig, tb = replay(TARGETS[name], args.replay)
        print(f"{name}: {outcome}" + (f" {sig}\n{tb}" if sig else ""))
        return 1 if sig else 0
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        print(
            f"error: tools/fuzz: no target {unknown[0]!r}; use one of: {', '.join(TARGETS)}",
            file=sys.stderr,
        )
        return 1
    out = args.out or Path(tempfile.mkdtemp(prefix="strata-fuzz-"))
    print(f"crash reproducers go to {out}", file=sys.stderr)
    reports = []
    for name in args.targets or list(TARGETS):
        target = TARGETS[name]
        print(f"{name}: {target.doc}", file=sys.stderr)
        report = fuzz(
            target,
            args.examples,
            out,
            random_seed=args.seed,
            progress=lambda s: print(s, file=sys.stderr, flush=True),
        )
        reports.append(report)
        if args.outcomes:
            for outcome, n in report.outcomes.most_common():
                print(f"  {n:>8,}  {outcome}", file=sys.stderr)
    print(
        f"{'target':<18} {'inputs':>9} {'seconds':>8} {'per s':>8} {'outcomes':>9} {'crashes':>8}"
    )
    for r in reports:
        print(_row(r))
        for crash in r.crashes.values():
            why = known(crash.signature)
            note = f" (known: {why})" if why else ""
            print(f"    crash: {crash.signature}{note} -> {crash.saved}")
    print("crashes: new+known (k); known ones are filed and fixed elsewhere")
    return 1 if any(_new(r) for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
