"""Atomic file and directory writes, and the file-system facts around them.

An output either appears whole under its final name or not at all: we write
beside it (same directory, so rename is atomic), fsync (for caches), then rename. A crash or
an error leaves no half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

NAME_MAX = 255
"""Bytes in one file name (Linux, every common file system)."""
PATH_MAX = 4095
"""Bytes in a path the kernel accepts in one call."""
_TEMP_EXTRA = len(".") + len(".") + 8 + len(".tmp")
"""What `temp_prefix` and mkstemp's random part and suffix add to a kept name."""


def kind_of(mode: int, unknown: str | None = None) -> str:
    """What a file of `mode` is, as an error message names it.

    One list for every message that refuses a file by its type; a mode of no
    known type is `unknown`, or "a file of mode 0o…" by default.
    """
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISREG(mode):
        return "a regular file"
    return f"a file of mode {oct(mode)}" if unknown is None else unknown


def temp_prefix(final: Path) -> str:
    """The prefix of a temporary name beside `final` (`.<name>.`), cut so that mkstemp's
    name (prefix, 8 random characters, `.tmp`) fits in NAME_MAX when `final`'s does: a
    250-byte output name is valid, and its temporary must be too."""
    name = os.fsencode(final.name)[: NAME_MAX - _TEMP_EXTRA]
    return f".{os.fsdecode(name)}."


def check_writable_name(final: Path) -> None:
    """Raise ENAMETOOLONG naming `final` (not its temporary) when no file can have its name,
    and EISDIR when it names no file at all ("", ".", "..").

    Without this, the error names the temporary (`.<name>.k3j2h1x0.tmp`), which
    the user never wrote.
    """
    if final.name in ("", ".."):  # "", "." and "..": replacing them would empty the directory
        raise IsADirectoryError(errno.EISDIR, "names a directory, not a file", str(final))
    raw = os.fsencode(final)
    if len(os.fsencode(final.name)) > NAME_MAX or len(raw) > PATH_MAX - _TEMP_EXTRA:
        raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), str(final))


@contextlib.contextmanager
def atomic_file(
    path: str | os.PathLike[str], mode: int = 0o644, *, durable: bool = True
) -> Iterator[BinaryIO]:
    """Open a temporary file next to `path`; on clean exit (fsync and) rename it into place.

    `durable=False` skips the fsync: right for build outputs, which the engine
    re-checks by digest, and costly for large layers; caches keep it on.
    """
    final = Path(path)
    check_writable_name(final)
    if final.is_dir() and not final.is_symlink():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(final))
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(final), suffix=".tmp", dir=final.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a directory beside `path`; on clean exit replace `path` with it."""
    final = Path(path)
    check_writable_name(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(final), suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        elif final.exists() or final.is_symlink():
            final.unlink()
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_link(tmp: str | os.PathLike[str], final: str | os.PathLike[str]) -> None:
    """`os.replace(tmp, final)` for a `tmp` that may be a hard link of `final`'s file.

    POSIX rename does nothing, and succeeds, when both names are links to one
    file: `tmp` would stay beside `final` (in an output directory, a stray file).
    """
    os.replace(tmp, final)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


def write_bytes_atomic(
    path: str | os.PathLike[str], data: bytes, mode: int = 0o644, *, durable: bool = True
) -> None:
    with atomic_file(path, mode, durable=durable) as f:
        f.write(data)


def real_path(path: str) -> str:
    """`os.path.realpath` of an existing path, asked of the kernel in one lookup.

    realpath walks the path in Python, one lstat per component (75 us for a
    sandbox's link into the workspace, 17 us this way): StorePath resolves
    every input, 58,000 at the size of a real closure. Where /proc is not
    there, or the path does not exist, it is realpath itself.
    """
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return os.path.realpath(path)
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(path)
    finally:
        os.close(fd)
    return target if target.startswith("/") else os.path.realpath(path)


def link_or_copy(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """Make `dest` (absent) hold `src`'s bytes: a hard link, or a copy where none can be made.

    For read-only build outputs and cache blobs, which are replaced and never
    changed in place, a link is a copy that costs no bytes. Links to a symlink
    are made to what it points at. Across filesystems or mounts (EXDEV), or
    where links are refused, the bytes are copied.
    """
    try:
        os.link(src, dest, follow_symlinks=True)
        return
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
            raise
    shutil.copyfile(src, dest)


def share_output(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """`link_or_copy` for an action putting an input's bytes in its output.

    Only another action's output (under `bazel-out/`, where both engines keep
    them, read-only) is linked: both engines chmod outputs, which would change a
    linked source file of the user's or a shared download store, so those are
    copied.
    """
    real = os.path.realpath(src)
    if "/bazel-out/" in real:
        link_or_copy(real, dest)
    else:
        shutil.copyfile(real, dest)
