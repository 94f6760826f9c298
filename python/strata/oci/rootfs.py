"""A root filesystem unpacked from layers, confined to its directory.

Layers, store path layers and base images come from outside, and the
symlinks in them are data: a layer holding `x -> /` and then `x/etc/passwd`
writes the image's /etc/passwd, never the host's. A container runtime
resolves every member path inside the image's root as chroot(2) would: an
absolute link target starts again at the root, and `..` stops there, so a
link to `/` (or to `../../..`) is the root itself. `resolve` does exactly
that, one component at a time, over any tree that can say whether a path is
a symlink and to what: a directory on disk (`Rootfs`) or the in-memory map
of strata.oci.export. Compare openat2(2) `RESOLVE_IN_ROOT` and containerd's
continuity `fs.RootPath`.

`Rootfs` then acts on what `resolve` returned only through directory file
descriptors, opened from the root one component at a time with
`O_NOFOLLOW | O_DIRECTORY`, and `*at()` calls that do not follow the final
name: should a resolution ever be wrong, the kernel refuses to follow a link
rather than leave the root. Nothing else writes to the tree while it is
unpacked, so resolving first and acting second is not racy.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Protocol

from strata.errors import UserError
from strata.oci.tree import FileSlice

MAX_LINKS = 40
"""Symlinks followed while resolving one path, as Linux's MAXSYMLINKS."""

ReadLink = Callable[[tuple[str, ...]], str | None]
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _split(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def resolve(
    name: str, readlink: ReadLink, *, follow_last: bool = False, where: str
) -> tuple[str, ...]:
    """The components of `name` inside the root, symlinks followed as inside a chroot.

    `readlink(parts)` gives the target of the symlink at `parts` (whose
    parents are already resolved, so never links), or None if it is not
    one. The final component is followed only with `follow_last`. The
    result may be empty: the root itself.
    """
    pending = _split(name)
    pending.reverse()  # a stack: the next component is at the end
    out: list[str] = []
    hops = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if out:
                out.pop()
            continue
        if not pending and not follow_last:
            out.append(part)
            break
        target = readlink((*out, part))
        if target is None:
            out.append(part)
            continue
        hops += 1
        if hops > MAX_LINKS:
            raise UserError(
                f"more than {MAX_LINKS} symlinks resolving a path (got {name!r}); "
                "the image has a symlink loop: fix or rebuild it",
                where=where,
            )
        if target.startswith("/"):
            out.clear()
        pending.extend(reversed(_split(target)))
    return tuple(out)


def _lstat_at(name: str, fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _remove_at(name: str, fd: int) -> None:
    """Remove the entry `name` of directory `fd`, recursively, following no link."""
    st = _lstat_at(name, fd)
    if st is None:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=fd)  # the fd-based rmtree: never follows a link
    else:
        os.unlink(name, dir_fd=fd)


class RootTree(Protocol):
    """What the joins and copies of strata.store need of a layer root: `Rootfs` on disk,
    or `strata.oci.memroot.MemoryRoot`, the same rules kept in memory."""

    def at(self, where: str) -> RootTree: ...

    def resolve(self, name: str, *, follow_last: bool = False) -> tuple[str, ...]: ...

    def lstat(self, name: str, *, follow_last: bool = False) -> os.stat_result | None: ...

    def readlink(self, name: str) -> str | None: ...

    def listdir(self, name: str) -> list[str]: ...

    def mkdir(self, name: str, mode: int | None = None) -> None: ...

    def write(self, name: str, src: bytes | FileSlice, mode: int) -> None: ...

    def symlink(self, name: str, target: str) -> None: ...

    def chmod(self, name: str, mode: int) -> None: ...

    def chmod_root(self, mode: int) -> None: ...


def copy_slice(src: FileSlice, out: IO[bytes]) -> None:
    """Copy `src`'s bytes to `out`; a file shorter than the slice (or, for a whole file,
    one of another size) is an error, as in `TarWriter.add_file`."""
    with open(src.path, "rb") as f:
        f.seek(src.offset)
        left = src.size
        while left:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                break
            out.write(chunk)
            left -= len(chunk)
        if left or (not src.offset and f.read(1)):
            raise UserError(
                f"file changed size while it was being read (expected {src.size} bytes from "
                f"offset {src.offset}); do not modify inputs during a build",
                where=src.path,
            )


class Rootfs:
    """A directory tree written from untrusted layers; no operation reaches outside it."""

    def __init__(self, root: Path, where: str) -> None:
        self.root = root
        self.where = where

    def at(self, where: str) -> Rootfs:
        """The same tree, naming `where` in its errors."""
        return Rootfs(self.root, where)

    def _readlink(self, parts: tuple[str, ...]) -> str | None:
        # `parts[:-1]` were each checked not to be links, so this walk follows none.
        path = self.root.joinpath(*parts)
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return os.readlink(path) if stat.S_ISLNK(st.st_mode) else None

    def resolve(self, name: str, *, follow_last: bool = False) -> tuple[str, ...]:
        return resolve(name, self._readlink, follow_last=follow_last, where=self.where)

    def path(self, parts: tuple[str, ...]) -> Path:
        """Where resolved `parts` lie, for reading (every component is a real directory)."""
        return self.root.joinpath(*parts)

    @contextlib.contextmanager
    def _dir(self, parts: tuple[str, ...], name: str, *, create: bool) -> Iterator[int | None]:
        """A descriptor of the directory at `parts`; missing ones are made with `create`.

        Without `create`, a missing directory (or a file in the way) gives None.
        """
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for i, part in enumerate(parts):
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        yield None
                        return
                    os.mkdir(part, 0o755, dir_fd=fd)
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as e:
                    if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                        raise
                    if not create:
                        yield None
                        return
                    raise UserError(
                        f"{'/'.join(parts[: i + 1])} is not a directory, so the layer entry "
                        f"cannot go below it (got {name!r}); the image is malformed: rebuild it",
                        where=self.where,
                    ) from None
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _parent(self, name: str) -> Iterator[tuple[int, str]]:
        """The parent directory's descriptor (made if missing) and the final name."""
        parts = self.resolve(name)
        if not parts:
            raise UserError(
                f"a layer entry names the root itself (got {name!r}); the image is malformed",
                where=self.where,
            )
        with self._dir(parts[:-1], name, create=True) as fd:
            if fd is None:  # pragma: no cover - create=True never gives None
                raise UserError(f"cannot open the parent of {name!r}", where=self.where)
            yield fd, parts[-1]

    def lstat(self, name: str, *, follow_last: bool = False) -> os.stat_result | None:
        """What `name` is (a link itself unless `follow_last`), or None if nothing is there."""
        parts = self.resolve(name, follow_last=follow_last)
        if not parts:
            return os.lstat(self.root)
        with self._dir(parts[:-1], name, create=False) as fd:
            return None if fd is None else _lstat_at(parts[-1], fd)

    def mkdir(
        self, name: str, mode: int | None = None, owner: tuple[int, int] | None = None
    ) -> None:
        """A directory at `name`, kept if there is one, else replacing whatever is there."""
        with self._parent(name) as (fd, base):
            st = _lstat_at(base, fd)
            if st is None or not stat.S_ISDIR(st.st_mode):
                _remove_at(base, fd)
                os.mkdir(base, 0o755, dir_fd=fd)
            self._set(base, fd, mode, owner)

    def write(
        self,
        name: str,
        src: IO[bytes] | bytes | FileSlice,
        mode: int,
        owner: tuple[int, int] | None = None,
    ) -> None:
        """A regular file at `name` with `src`'s bytes, replacing whatever is there."""
        with self._parent(name) as (fd, base):
            _remove_at(base, fd)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            out = os.open(base, flags, 0o600, dir_fd=fd)
            with open(out, "wb") as f:
                if isinstance(src, bytes):
                    f.write(src)
                elif isinstance(src, FileSlice):
                    copy_slice(src, f)
                else:
                    shutil.copyfileobj(src, f, 1 << 20)
                f.flush()
                if owner is not None:
                    os.fchown(out, *owner)
                os.fchmod(out, mode)

    def symlink(self, name: str, target: str, owner: tuple[int, int] | None = None) -> None:
        """A symlink at `name` (its target is stored, never followed here)."""
        with self._parent(name) as (fd, base):
            _remove_at(base, fd)
            os.symlink(target, base, dir_fd=fd)
            if owner is not None:
                os.chown(base, *owner, dir_fd=fd, follow_symlinks=False)

    def hardlink(self, name: str, existing: str) -> None:
        """A hard link at `name` to the entry `existing` names (its last link not followed)."""
        src = self.resolve(existing)
        if src == self.resolve(name):
            return
        with self._dir(src[:-1], existing, create=False) as src_fd:
            st = None if src_fd is None or not src else _lstat_at(src[-1], src_fd)
            if src_fd is None or st is None or stat.S_ISDIR(st.st_mode):
                raise UserError(
                    f"hard link {name!r} points at a missing file (got {existing!r}); "
                    "the image is malformed: rebuild it",
                    where=self.where,
                )
            with self._parent(name) as (fd, base):
                _remove_at(base, fd)
                os.link(src[-1], base, src_dir_fd=src_fd, dst_dir_fd=fd, follow_symlinks=False)

    def remove(self, name: str) -> None:
        """Remove whatever `name` is (a link itself, a directory with its content), if any."""
        parts = self.resolve(name)
        if not parts:
            return
        with self._dir(parts[:-1], name, create=False) as fd:
            if fd is not None:
                _remove_at(parts[-1], fd)

    def clear(self, name: str) -> None:
        """Empty the directory `name` resolves to (an opaque whiteout), if it is one."""
        parts = self.resolve(name, follow_last=True)
        with self._dir(parts, name, create=False) as fd:
            if fd is not None:
                for child in os.listdir(fd):
                    _remove_at(child, fd)

    def readlink(self, name: str) -> str | None:
        """The target of the link `name` (itself, not followed), or None if it is not one."""
        st = self.lstat(name)
        if st is None or not stat.S_ISLNK(st.st_mode):
            return None
        return os.readlink(self.path(self.resolve(name)))

    def listdir(self, name: str) -> list[str]:
        """The names in the directory `name` resolves to ([] if it is not one)."""
        parts = self.resolve(name, follow_last=True)
        with self._dir(parts, name, create=False) as fd:
            return [] if fd is None else os.listdir(fd)

    def chmod_root(self, mode: int) -> None:
        os.chmod(self.root, mode)

    def chmod(self, name: str, mode: int) -> None:
        """Set `name`'s mode; a symlink (which has none) or a missing entry is left alone."""
        parts = self.resolve(name)
        with self._dir(parts[:-1], name, create=False) as fd:
            if fd is not None and parts:
                self._set(parts[-1], fd, mode, None)

    @staticmethod
    def _set(base: str, fd: int, mode: int | None, owner: tuple[int, int] | None) -> None:
        st = _lstat_at(base, fd)
        if st is None or stat.S_ISLNK(st.st_mode):
            return
        # Checked above not to be a link, so these follow nothing.
        if owner is not None:
            os.chown(base, *owner, dir_fd=fd, follow_symlinks=False)
        if mode is not None:
            os.chmod(base, mode, dir_fd=fd)
