"""tools/benchmarks/e2e_measure.py: a command's CPU counts processes nobody waited for."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools" / "benchmarks"))

import e2e_measure  # noqa: E402
import tree_cpu  # noqa: E402

BURN_S = 0.5
# A grandchild in a session of its own burns CPU and says so; the command then ends
# without anybody waiting for the grandchild, as a sandboxed worker killed at the end.
ORPHAN = textwrap.dedent(
    f"""
    import os, sys, time
    done = sys.argv[1]
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            end = time.process_time() + {BURN_S}
            while time.process_time() < end:
                pass
            open(done, "w").close()
            time.sleep(0.3)  # still alive when the command ends
        os._exit(0)
    os.wait()  # the middle process only
    while not os.path.exists(done):
        time.sleep(0.01)
    """
)


def test_a_command_cpu_counts_the_orphan_it_left(tmp_path: Path) -> None:
    waited = tree_cpu.children_cpu()
    r = e2e_measure.run(
        [sys.executable, "-c", ORPHAN, str(tmp_path / "done")], tmp_path, tmp_path / "log"
    )
    waited = tree_cpu.children_cpu() - waited
    assert waited < BURN_S * 0.7  # getrusage never sees the orphan's CPU
    if r.cpu_exact:
        assert r.cpu >= BURN_S * 0.9
        assert "from a cgroup of its own" in tree_cpu.how_measured()
    else:  # no cgroup can be made here: the figures say they are short
        assert abs(r.cpu - waited) < 0.05
        assert "only the processes each command waited for" in tree_cpu.how_measured()
