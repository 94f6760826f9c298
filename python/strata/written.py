"""Digests of the files this process wrote, noted while it wrote them.

An action that streams a layer through sha256 (and xxh3) already knows the
digests the engine needs of it. Noting them here lets strata's worker report
them (strata.worker.report_digests) without reading the file a second time:
at the size of a real closure that second read is gigabytes per build. A blob
downloaded from a remote cache is noted the same way, so the disk cache does
not hash it again when it links it out (strata.engine.cache.local).

A note names the file by device and inode, so it holds after the file or its
directory is renamed into place, and it is believed only while the file's
size and mtime are those it had when noted: a file changed afterwards is
read and hashed again, as if it had never been noted.
"""

from __future__ import annotations

import os

_NOTES: dict[tuple[int, int], tuple[int, int, str, str]] = {}


def note(path: str | os.PathLike[str], xxh3: str, sha256: str) -> None:
    """Record the digests (hex) of the file now at `path`, as written."""
    st = os.stat(path)
    _NOTES[(st.st_dev, st.st_ino)] = (st.st_size, st.st_mtime_ns, xxh3, sha256)


def recall(st: os.stat_result) -> tuple[str, str] | None:
    """(xxh3, sha256) noted for the file `st` describes, if it is unchanged since."""
    got = _NOTES.get((st.st_dev, st.st_ino))
    if got is None or got[:2] != (st.st_size, st.st_mtime_ns):
        return None
    return got[2], got[3]
