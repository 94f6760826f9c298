"""tools/lib.sh ensure_venv: a venv whose own interpreter still runs is kept.

Callers reach tools/strata with different PATHs (a test's `/usr/bin:/bin`
finds Debian's python3.11, a shell finds pyenv's): judged by the first
interpreter on PATH, the venv was made anew each time they alternated, and a
build printed `strata: preparing ...` where its error line was expected.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_working_venv_is_judged_by_its_own_interpreter(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    # Its "interpreter" is 3.99.0: never the version of the python3.11 on PATH.
    fake = venv / "bin" / "python"
    fake.write_text('#!/bin/sh\ncase "$2" in *print*) echo 3.99.0 ;; esac\nexit 0\n')
    fake.chmod(0o755)
    lock = hashlib.sha256((ROOT / "requirements.lock").read_bytes()).hexdigest()
    (venv / ".strata-stamp").write_text(f"{lock} 3.99.0\n")
    (venv / "keep").write_text("")
    script = f'source "{ROOT}/tools/lib.sh"; ensure_venv "{venv}" requirements.lock'
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "preparing" not in proc.stderr
    assert (venv / "keep").exists()  # not made anew
