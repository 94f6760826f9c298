"""Appending byte ranges of files to a file, digested as they land.

Joining cached layers copies large ranges of one file into another. Through
Python each byte was read into memory, hashed, and written back; here the
kernel copies (`copy_file_range`: no pass through user memory, and a reflink
where the filesystem shares extents), while a second thread reads back what
has landed in the output and hashes it. Copying and hashing overlap, and the
digest is of the output's own bytes, whatever happened to the sources.
"""

from __future__ import annotations

import errno
import os
import queue
import threading

from strata import written
from strata.errors import UserError
from strata.oci.digest import DigestingWriter
from strata.oci.image import Join

_CHUNK = 8 << 20
"""Copied per call, so hashing follows close behind the copy."""
_NO_KERNEL_COPY = {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM}


class SpanCopier:
    """Appends to `out` and digests it: `out` is a descriptor at offset 0 of an empty file,
    open for reading too (the hashing thread reads back what landed; `mkstemp` opens so).

    Use as a context manager; `digests` is complete after a clean exit.
    """

    def __init__(self, out: int) -> None:
        self._out = out
        self.digests = DigestingWriter(xxh3=True)
        self._landed: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._failed: BaseException | None = None
        self._kernel = True
        self._hasher = threading.Thread(target=self._hash, name="span-hash", daemon=True)

    def __enter__(self) -> SpanCopier:
        self._hasher.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._landed.put(None)
        self._hasher.join()
        if self._failed is not None and exc[0] is None:
            raise self._failed

    def copy(self, src: int, start: int, end: int) -> None:
        """Append bytes [start, end) of file `src`; OSError if they are not all there."""
        while start < end:
            n = self._copy_some(src, start, min(end - start, _CHUNK))
            if n == 0:
                raise OSError(errno.EIO, "the file is shorter than its tar headers say")
            self._landed.put(n)
            start += n

    def write(self, data: bytes) -> None:
        """Append `data`."""
        self._write_all(data)
        self._landed.put(len(data))

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._out, view) :]

    def _copy_some(self, src: int, offset: int, count: int) -> int:
        if self._kernel:
            try:
                return os.copy_file_range(src, self._out, count, offset)
            except OSError as e:
                if e.errno not in _NO_KERNEL_COPY:
                    raise
                self._kernel = False  # another filesystem, or an old kernel: copy it here
        data = os.pread(src, count, offset)
        self._write_all(data)
        return len(data)

    def _hash(self) -> None:
        buf = bytearray(_CHUNK)
        pos = 0
        while (n := self._landed.get()) is not None:
            if self._failed is not None:
                continue
            try:
                while n:
                    got = os.preadv(self._out, [memoryview(buf)[:n]], pos)
                    if got == 0:
                        raise OSError(errno.EIO, "the output is shorter than what was written")
                    self.digests.write(memoryview(buf)[:got])
                    pos += got
                    n -= got
            except BaseException as e:  # handed to the copying thread at exit
                self._failed = e


def write_join(join: Join, target: str | os.PathLike[str], digest: str) -> None:
    """Write the bytes of `join` to the new file `target`; an error unless they have `digest`."""
    fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with SpanCopier(fd) as out:
            for path, start, end in join.parts:
                with open(path, "rb") as src:
                    out.copy(src.fileno(), start, end)
            out.write(bytes(join.trailer))
    finally:
        os.close(fd)
    if out.digests.digest != digest:
        raise UserError(
            f"joined layer has digest {out.digests.digest}, not {digest} as its recipe says; "
            "the store path layers changed since LayerGroups ran: rebuild",
            where=os.fspath(target),
        )
    written.note(target, out.digests.xxh3_hexdigest, out.digests.hexdigest)
