"""How tools/bench e2e measures one command: wall and CPU time, peak RSS of its processes.

CPU is user + system time of the command and every process under it, from a
cgroup of its own (tree_cpu.py; getrusage where none can be made). A Bazel
server is not under the client, so for Bazel the server's own counters in
/proc/<pid>/stat (with its waited-for actions) are added.

Peak RSS of actions is sampled, not taken from getrusage: a child's
ru_maxrss includes its parent's high-water mark at fork (Linux records the
old address space's peak at exec), so RUSAGE_CHILDREN reports the engine's
size for every action. Instead, every 0.2 s, the VmHWM of each descendant of
the watched process is read from /proc; VmHWM belongs to the process's own
address space and only grows, so a sample misses at most the last 0.2 s of
an action's growth (and actions shorter than that, which are small).
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tree_cpu import TreeCpu

SAMPLE_S = 0.2


@dataclass
class Run:
    """One timed command: wall and CPU seconds, what it printed, its largest descendant."""

    seconds: float
    cpu: float
    output: str
    peak_kib: int = 0  # VmHWM of the largest descendant process (sampled)
    peak_what: str = ""  # its mnemonic (`strata action X`) or program name
    cpu_exact: bool = True  # False: only the waited-for processes' CPU (no cgroup here)

    @property
    def warnings(self) -> int:
        return sum(1 for line in self.output.splitlines() if line.startswith("warning:"))

    @property
    def executed(self) -> int | None:
        m = re.search(r"(\d+) actions: (\d+) executed", self.output)
        return int(m.group(2)) if m else None


class Failed(Exception):
    """A measured command exited non-zero: (what, the last lines it printed)."""


def run(
    argv: list[str],
    cwd: Path,
    log: Path,
    env: dict[str, str] | None = None,
    server: int | None = None,
) -> Run:
    """Run argv with its output in `log`, sampling the RSS of its (or `server`'s) descendants."""
    meter = TreeCpu()
    cpu0 = process_cpu(server)
    # a process forked by the server and not yet exec-ed is a copy of the server: not an action
    copy = cmdline(server) if server else None
    t0 = time.perf_counter()
    peak, what = 0, ""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=meter.enter
        )
        while True:
            try:
                proc.wait(timeout=SAMPLE_S)
                break
            except subprocess.TimeoutExpired:
                for pid in descendants(server or proc.pid):
                    kib = vm_hwm(pid)
                    if kib > peak and (copy is None or cmdline(pid) != copy):
                        peak, what = kib, program(pid)
    took = time.perf_counter() - t0
    cpu = meter.seconds() + process_cpu(server) - cpu0
    text = log.read_text(errors="replace")
    if proc.returncode != 0:
        tail = "\n".join(text.splitlines()[-20:])
        raise Failed(f"exit {proc.returncode}: {' '.join(argv)}", tail)
    return Run(took, cpu, text, peak, what, meter.exact)


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def process_cpu(pid: int | None) -> float:
    """User + system seconds of a running process and its waited-for children (/proc stat)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def descendants(root: int) -> list[int]:
    """Every live process under `root` (not root itself), from the parent ids in /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    stack = [root]
    while stack:
        for kid in children.get(stack.pop(), []):
            found.append(kid)
            stack.append(kid)
    return found


def vm_hwm(pid: int) -> int:
    try:
        m = re.search(r"^VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    except OSError:
        return 0
    return int(m.group(1)) if m else 0


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def program(pid: int) -> str:
    """`strata action <Mnemonic>` as the mnemonic, anything else as its program's name."""
    argv = cmdline(pid).split(b"\0")
    if argv == [b""]:
        return "?"
    words = [a.decode(errors="replace") for a in argv]
    if "action" in words[:-1]:
        return words[words.index("action") + 1]
    return os.path.basename(words[0]) if words and words[0] else "?"


def remove(path: Path) -> None:
    """rm -rf that also takes read-only trees (outputs are 0555)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        subprocess.run(["chmod", "-R", "u+w", str(path)], check=False)
        shutil.rmtree(path)


def existing_ancestor(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def du(path: Path) -> int:
    """Apparent bytes under path, hard links counted once."""
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def tree_sha256(root: Path) -> str:
    """One digest of a directory (an OCI layout): every file's relative path and sha256."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(f"{path.relative_to(root).as_posix()}\0{sha256(path)}\n".encode())
    return h.hexdigest()
