"""Running one fuzz target: count inputs and outcomes, catch crashes, shrink and save them.

A target turns an input (a set of named files, `Files`) into a call of the
parser under test. The parser's contract is the target's `expected`
exceptions: a `UserError` whose message is one line, plus whatever the
module documents (the cache backends' `InvalidEntry`, `from_reapi`'s
`ValueError`). Anything else, a multi-line `UserError` or an input that runs
longer than `HANG_SECONDS`, is a crash.

hypothesis drives generation. The test function records outcomes and never
fails for a crash it has seen before; a new kind of crash (its exception type
and the innermost strata frame) fails the run, hypothesis shrinks it to a
minimal input, the harness saves that input with its traceback, and a new run
continues with the rest of the budget.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from strata.engine.cache import InvalidEntry
from strata.errors import UserError

Files = dict[str, bytes]
"""An input: relative file name -> content, written into a scratch directory to run."""

HANG_SECONDS = 20.0
"""An input that runs longer than this is reported as a hang (a crash)."""

SCRATCH_ENV = "STRATA_FUZZ_SCRATCH"


def scratch_root() -> str | None:
    """Where each input's scratch directory is made: $STRATA_FUZZ_SCRATCH, else /dev/shm
    when it is a writable directory (a RAM file system: making and removing an input's
    files there costs a sixth of a disk's, and most of an input's time went to that),
    else the default temporary directory. The parsers run the same code on either."""
    chosen = os.environ.get(SCRATCH_ENV)
    if chosen:
        return chosen
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


KNOWN: dict[str, str] = {
    # Crashes already filed and being fixed elsewhere: still counted and saved, listed as
    # known, and not a failure. Remove an entry when its fix lands. (Empty: the truncated
    # docker-archive and the OCI layout without index.json are fixed, with tests in
    # tests/test_actions_inputs.py.)
}


def known(signature: str) -> str | None:
    """Why a crash is known (its KNOWN entry, matched without the line number), or None."""
    return KNOWN.get(re.sub(r":\d+ ", " ", signature, count=1))


class Hang(BaseException):
    """Raised by the alarm in a parser that did not return in time."""


@dataclass(frozen=True)
class Target:
    name: str
    doc: str
    strategy: st.SearchStrategy[Files]
    run: Callable[[Files, Path], str]
    """Run the parser on the input inside the scratch directory; return a label for a
    clean result (e.g. "ok", "miss"); raise for anything else."""
    expected: tuple[type[BaseException], ...] = ()
    """Documented exceptions besides UserError that are clean outcomes."""


@dataclass
class Crash:
    signature: str
    traceback: str
    files: Files
    saved: Path | None = None


@dataclass
class Report:
    target: str
    inputs: int = 0
    shrink_inputs: int = 0
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    crashes: dict[str, Crash] = field(default_factory=dict)


class _Found(Exception):
    """Raised from the test function to make hypothesis shrink a new crash."""

    def __init__(self, signature: str) -> None:
        super().__init__(signature)
        self.signature = signature


_NUMBER = re.compile(r"\d+")
_DIGEST = re.compile(r"(sha256:)?\b[0-9a-f]{8,}\b")
_HEX = re.compile(r"\b0x[0-9a-f]+\b")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def outcome_of(err: BaseException) -> str:
    """A short kind of a clean outcome: the message's opening words, values (numbers,
    quoted text, digests and other hex) blanked.

    The place is left out (a UserError's `where`, an InvalidEntry's cache name): it is
    the same for every input, or names the input's scratch directory, and would hide the
    reason or make each input an outcome of its own."""
    if isinstance(err, UserError):
        text = err.detail
    elif isinstance(err, InvalidEntry):
        text = err.why
    else:
        text = str(err)
    head = re.split(r" \(got |; |: ", text, maxsplit=1)[0]
    head = _DIGEST.sub("<digest>", _QUOTED.sub("'…'", head))
    head = _NUMBER.sub("N", _HEX.sub("<hex>", head))[:70]
    return f"{type(err).__name__}: {head}"


def signature_of(err: BaseException, tb: TracebackType | None) -> str:
    """Exception type and the innermost frame in strata's code (or the last frame)."""
    frames = traceback.extract_tb(tb)
    ours = [f for f in frames if "/strata/" in f.filename and "/fuzzers/" not in f.filename]
    frame = (ours or frames or [None])[-1]
    where = "?" if frame is None else f"{Path(frame.filename).name}:{frame.lineno} {frame.name}"
    return f"{type(err).__name__} at {where}"


def _alarm(_signum: int, _frame: FrameType | None) -> None:
    raise Hang(f"no result after {HANG_SECONDS:.0f} s")


def run_one(target: Target, files: Files) -> tuple[str, str | None, str]:
    """(outcome, crash signature or None, traceback text) of one input, in a fresh directory."""
    scratch = Path(tempfile.mkdtemp(prefix=f"fuzz-{target.name}-", dir=scratch_root()))
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    try:
        try:
            label = target.run(files, scratch)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        return f"ok: {label}", None, ""
    except UserError as err:
        if "\n" in str(err) or "\r" in str(err):
            return (
                "crash",
                f"multi-line UserError from {signature_of(err, err.__traceback__)}",
                (traceback.format_exc()),
            )
        return outcome_of(err), None, ""
    except target.expected as err:
        return outcome_of(err), None, ""
    except (Exception, Hang, RecursionError) as err:  # noqa: BLE001 - every other one is a crash
        return "crash", signature_of(err, err.__traceback__), traceback.format_exc()
    finally:
        signal.signal(signal.SIGALRM, old)
        shutil.rmtree(scratch, ignore_errors=True)


@dataclass
class _State:
    shrinking: str = ""
    """The signature of the crash hypothesis is shrinking, "" while generating."""
    last_bad: Files = field(default_factory=dict)


def fuzz(
    target: Target,
    examples: int,
    out_dir: Path,
    *,
    random_seed: int | None = None,
    progress: Callable[[str], None] = lambda _s: None,
) -> Report:
    """Run `examples` generated inputs through `target`; save a minimal input per crash kind."""
    report = Report(target.name)
    start = time.monotonic()
    state = _State()

    def test(files: Files) -> None:
        if state.shrinking:
            report.shrink_inputs += 1
        else:
            report.inputs += 1
            if report.inputs % 10000 == 0:
                progress(f"{target.name}: {report.inputs} inputs")
        outcome, sig, tb = run_one(target, files)
        if state.shrinking:
            if sig == state.shrinking:  # still the same crash: a smaller input is kept
                state.last_bad = files
                report.crashes[sig].traceback = tb
                raise _Found(sig)
            return  # other outcomes do not count while shrinking
        report.outcomes[outcome if sig is None else f"crash: {sig}"] += 1
        if sig is None or sig in report.crashes:
            return
        report.crashes[sig] = Crash(sig, tb, files)
        state.shrinking = sig
        state.last_bad = files
        raise _Found(sig)

    while report.inputs < examples:
        run = settings(
            max_examples=examples - report.inputs,
            database=None,
            deadline=None,
            phases=(Phase.generate, Phase.shrink),
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
            print_blob=False,
        )(given(target.strategy)(test))
        if random_seed is not None:
            run = seed(random_seed + report.inputs)(run)
        try:
            run()
            break
        except Exception:  # _Found, or hypothesis' Flaky when a replay differs
            if not state.shrinking:
                raise
            crash = report.crashes[state.shrinking]
            crash.files, tries = minimise(target, state.last_bad, crash.signature)
            report.shrink_inputs += tries
            crash.saved = save_crash(target, crash, out_dir)
            progress(f"{target.name}: crash {crash.signature}, saved to {crash.saved}")
        finally:
            state.shrinking = ""
    report.seconds = time.monotonic() - start
    return report


def minimise(target: Target, files: Files, sig: str, budget: int = 3000) -> tuple[Files, int]:
    """Cut `files` down while the crash keeps its signature: drop files, then byte ranges
    (halving the range each pass, as delta debugging does). Returns (files, runs)."""
    runs = 0

    def same(candidate: Files) -> bool:
        nonlocal runs
        runs += 1
        return run_one(target, candidate)[1] == sig

    for name in sorted(files, key=lambda n: -len(files[n])):
        if runs < budget and len(files) > 1 and same({k: v for k, v in files.items() if k != name}):
            files = {k: v for k, v in files.items() if k != name}
    for name in sorted(files, key=lambda n: -len(files[n])):
        data = files[name]
        chunk = max(1, len(data) // 2)
        while chunk >= 1 and runs < budget:
            i = 0
            while i < len(data) and runs < budget:
                candidate = data[:i] + data[i + chunk :]
                if same({**files, name: candidate}):
                    data = candidate
                else:
                    i += chunk
            chunk //= 2
        files = {**files, name: data}
    return files, runs


def save_crash(target: Target, crash: Crash, out_dir: Path) -> Path:
    """Write the input's files and the traceback under out_dir/<target>/<n>/."""
    top = out_dir / target.name
    top.mkdir(parents=True, exist_ok=True)
    n = len([p for p in top.iterdir() if p.is_dir()])
    dest = top / f"crash-{n}"
    (dest / "input").mkdir(parents=True)
    write_files(crash.files, dest / "input")
    (dest / "crash.txt").write_text(
        f"target: {target.name}\nsignature: {crash.signature}\n"
        f"replay: tools/fuzz --replay {dest}\n\n{crash.traceback}"
    )
    return dest


def write_files(files: Files, root: Path) -> None:
    for name, data in sorted(files.items()):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def read_files(root: Path) -> Files:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def replay(target: Target, crash_dir: Path) -> tuple[str, str | None, str]:
    return run_one(target, read_files(crash_dir / "input"))
