"""From files on disk to the sorted entries of one layer.

A layer's content is described by a *path mapping*: sources (files,
directories, symlinks on disk) placed at destinations in the image, plus
directories and symlinks made from nothing. `LayerTree` merges them the way
extracting several tars into one root would, then hands out the entries in
the order `tar --sort=name` uses (component by component), every parent
directory first.

Rules that keep layers reproducible and safe:
- device nodes, FIFOs and sockets are refused, naming the path;
- hard links become regular files (a link's target may not be in the layer);
- symlink targets are kept as written, except for the links a sandbox makes
  for inputs: a mapped source is always read through (it names content), and
  inside a directory a link whose absolute target ends with the link's own
  path relative to the execroot is a sandbox link and is followed one hop
  (Bazel's sandboxes and strata's both lay inputs out that way; a real link
  in a tree is relative, or points somewhere that does not repeat its own
  path); when that hop lands on a link the tree artifact kept, that link is
  what goes in the layer;
- a later source replaces an earlier entry at the same path, except that a
  directory merges into a directory; with `keep_dirlinks` (dockerTools'
  keepContentsDirlinks) a directory arriving where a symlink to a directory
  is keeps the symlink and its content goes through it.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from strata.errors import UserError
from strata.fsutil import kind_of

FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
BYTES = "bytes"


@dataclass(frozen=True)
class Entry:
    """One member of a layer. `name` is the archive path without a leading slash."""

    name: str
    kind: str
    mode: int
    size: int = 0
    source: str = ""
    """For FILE: the path to read the content from."""
    offset: int = 0
    """For FILE: where the content starts in `source` (non-zero: a member of a layer file)."""
    target: str = ""
    """For SYMLINK: the link target, as written."""
    data: bytes = b""
    """For BYTES: the content itself."""
    uid: int | None = None
    gid: int | None = None


@dataclass(frozen=True)
class FileSlice:
    """`size` bytes of the file `path` from `offset`: content named, not read.

    A member of a layer file, or (offset 0) a whole file, which must then be `size` bytes.
    """

    path: str
    offset: int
    size: int


def normalize_dest(dest: str, where: str) -> str:
    """`/usr/bin/x`, `usr/bin/x/`, `./usr//bin/x` → `usr/bin/x`; `/`, `.`, `` → ``."""
    if "\0" in dest:
        raise UserError(f"destination contains a NUL byte (got {dest!r})", where=where)
    norm = posixpath.normpath("/" + dest).lstrip("/")
    if norm == ".":
        norm = ""
    parts = dest.replace("\\", "/").split("/")
    if ".." in parts:
        raise UserError(
            f"destination must stay inside the image root (got {dest!r}); remove '..'",
            where=where,
        )
    return norm


def sort_key(name: str) -> tuple[bytes, ...]:
    """Component-wise byte order: a directory's members follow it before its next sibling."""
    return tuple(part.encode("utf-8", "surrogateescape") for part in name.split("/"))


class LayerTree:
    """An in-memory plan of a layer's entries, built from sources and then emitted sorted."""

    def __init__(
        self,
        *,
        keep_dirlinks: bool = False,
        dir_mode: int = 0o755,
        execroot: str | os.PathLike[str] | None = None,
    ) -> None:
        self._entries: dict[str, Entry] = {}
        self.keep_dirlinks = keep_dirlinks
        self.dir_mode = dir_mode
        self._execroot = os.path.abspath(execroot) if execroot is not None else None

    # -- adding --------------------------------------------------------------------------------

    def add_dir(self, dest: str, mode: int | None = None, where: str = "") -> None:
        name = self._place(normalize_dest(dest, where or dest), where)
        if not name:
            return
        old = self._entries.get(name)
        if old is not None and old.kind == DIR and mode is None:
            return
        if old is not None and old.kind == SYMLINK and self.keep_dirlinks:
            return  # the link stays; what goes inside follows it (see _place)
        if old is not None and old.kind == DIR:
            self._entries[name] = Entry(name, DIR, mode if mode is not None else old.mode)
            return
        self._entries[name] = Entry(name, DIR, self.dir_mode if mode is None else mode)

    def add_symlink(self, dest: str, target: str, where: str = "") -> None:
        name = self._place(normalize_dest(dest, where or dest), where)
        if not name:
            raise UserError("the image root cannot be a symlink", where=where or dest)
        self._replace(name, Entry(name, SYMLINK, 0o777, target=target))

    def add_bytes(self, dest: str, data: bytes, mode: int = 0o644, where: str = "") -> None:
        name = self._place(normalize_dest(dest, where or dest), where)
        if not name:
            raise UserError("the image root cannot be a file", where=where or dest)
        self._replace(name, Entry(name, BYTES, mode, size=len(data), data=data))

    def add_path(self, src: str | os.PathLike[str], dest: str, mode: int | None = None) -> None:
        """Copy `src` (file, symlink or directory, recursively) to `dest`."""
        src = os.fspath(src)
        where = src
        try:
            st = os.stat(src)
        except FileNotFoundError:
            raise UserError(
                "source does not exist (or is a dangling link); check the path mapping",
                where=where,
            ) from None
        name = normalize_dest(dest, where)
        if stat.S_ISDIR(st.st_mode):
            self.add_dir(name, stat.S_IMODE(st.st_mode) if mode is None else mode, where)
            self._add_children(src, name)
        else:
            if not name:
                raise UserError("a file cannot be placed at the image root", where=where)
            self._add_one(src, name, st, mode)

    def _add_children(self, src_dir: str, dest_dir: str) -> None:
        try:
            children = sorted(os.scandir(src_dir), key=lambda e: e.name)
        except PermissionError:
            raise UserError("directory is not readable", where=src_dir) from None
        for child in children:
            dest = f"{dest_dir}/{child.name}" if dest_dir else child.name
            st = child.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode) and self._is_sandbox_link(child.path):
                staged = os.readlink(child.path)
                if os.path.islink(staged):
                    # the output itself is a link (kept in tree artifacts): keep it
                    self.add_symlink(dest, os.readlink(staged), where=child.path)
                    continue
                st = os.stat(child.path)
            if stat.S_ISDIR(st.st_mode):
                self.add_dir(dest, stat.S_IMODE(st.st_mode), child.path)
                self._add_children(child.path, dest)
            else:
                self._add_one(child.path, dest, st, None)

    def _is_sandbox_link(self, path: str) -> bool:
        if self._execroot is None:
            return False
        target = os.readlink(path)
        rel = os.path.relpath(os.path.abspath(path), self._execroot)
        if not target.startswith("/") or rel.startswith(".."):
            return False
        return target.endswith("/" + rel) and os.path.exists(path)

    def _add_one(self, src: str, dest: str, st: os.stat_result, mode: int | None) -> None:
        if stat.S_ISLNK(st.st_mode):
            self.add_symlink(dest, os.readlink(src), where=src)
        elif stat.S_ISREG(st.st_mode):
            name = self._place(dest, src)
            perm = stat.S_IMODE(st.st_mode) if mode is None else mode
            self._replace(name, Entry(name, FILE, perm, size=st.st_size, source=src))
        else:
            kind = kind_of(st.st_mode, unknown="a special file")
            raise UserError(
                f"{kind} cannot be put in an image layer; remove it from the inputs "
                "or exclude it from the path mapping",
                where=src,
            )

    # -- placing and replacing -----------------------------------------------------------------

    def _place(self, name: str, where: str) -> str:
        """Make the parents of `name` directories (or, with keep_dirlinks, follow dir links)."""
        if not name:
            return name
        parts = name.split("/")
        out: list[str] = []
        hops = 0
        i = 0
        while i < len(parts) - 1:
            out.append(parts[i])
            parent = "/".join(out)
            existing = self._entries.get(parent)
            if existing is not None and existing.kind == SYMLINK and self.keep_dirlinks:
                hops += 1
                if hops > 40:
                    raise UserError("too many levels of symbolic links", where=where)
                target = existing.target
                base = "" if target.startswith("/") else posixpath.dirname(parent)
                resolved = normalize_dest(posixpath.join(base, target), where)
                rest = resolved.split("/") if resolved else []
                parts = rest + parts[i + 1 :]
                out = []
                i = 0
                continue
            if existing is None or existing.kind != DIR:
                self._entries[parent] = Entry(parent, DIR, self.dir_mode)
            i += 1
        return "/".join([*out, parts[-1]]) if parts else ""

    def _replace(self, name: str, entry: Entry) -> None:
        old = self._entries.get(name)
        if old is not None and old.kind == DIR:
            # A file or link replaces a whole directory, as extracting a tar would.
            prefix = name + "/"
            for key in [k for k in self._entries if k.startswith(prefix)]:
                del self._entries[key]
        self._entries[name] = entry

    # -- output --------------------------------------------------------------------------------

    def entries(self) -> list[Entry]:
        return sorted(self._entries.values(), key=lambda e: sort_key(e.name))

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries())

    def __len__(self) -> int:
        return len(self._entries)
