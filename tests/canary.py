"""A canary directory outside every build: hostile input must leave it exactly as it was.

`canary` (a pytest fixture, registered in conftest.py) makes
`<tmp>/canary/victim/{delete-me,secret}` and yields its path relative to `/`
(so a hostile layer or cache entry can name it through links or `..`); after
the test every entry's mode, owner, link count, ctime and content must be
unchanged and `delete-me` must still be there.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

Snapshot = dict[str, tuple[Any, ...]]


def snapshot(top: Path) -> Snapshot:
    """Everything about a tree a write, delete, chmod, chown or link would change."""
    out: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in ["", *dirnames, *filenames]:
            if name == "" and dirpath != str(top):
                continue
            path = os.path.join(dirpath, name) if name else dirpath
            st = os.lstat(path)
            data: Any = b""
            if stat.S_ISREG(st.st_mode):
                data = Path(path).read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                data = os.readlink(path)
            key = os.path.relpath(path, top)
            out[key] = (st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_ctime_ns, data)
    return out


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[str]:
    """A directory outside every build, as a path relative to `/`; checked untouched after."""
    top = tmp_path / "canary"
    (top / "victim").mkdir(parents=True)
    (top / "victim" / "delete-me").write_bytes(b"must survive\n")
    (top / "victim" / "secret").write_bytes(b"host secret\n")
    os.chmod(top / "victim", 0o750)
    before = snapshot(top)
    yield str(top).lstrip("/")
    assert (top / "victim" / "delete-me").read_bytes() == b"must survive\n"
    assert snapshot(top) == before
