"""A layer root kept in memory, with exactly the rules of `Rootfs` on disk.

The customisation layer joins (lndir) or copies (rsync) thousands of store
paths' entries at `/`. Laid out on disk that is one inode per entry, made,
read back into a layer and deleted: at the size of a real closure (50,000
files) that costs a minute on a disk where creating an inode takes half a
millisecond. When nothing has to run in the tree (no `extra_commands`, no
fake-root commands), the same operations are applied to this tree of
dictionaries instead, and the layer is written from it: file content stays
where it is (a slice of a store path's layer, a source file), named and not
copied.

Every operation is `Rootfs`'s, as the kernel would carry it out under
umask 022: names are resolved with the same chroot-style `resolve`, a
missing parent is made 0755 (with the set-group-ID bit of its parent, as
Linux's mkdir inherits it), a file or link in the way of a parent is the
same error, `mkdir` keeps a directory and replaces anything else, `write`
and `symlink` replace whatever is there (a directory with its content),
`chmod` leaves links and missing names alone. tests/test_oci_memroot.py
holds the two to the same results, operation by operation and layer by
layer.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from strata.errors import UserError
from strata.oci.rootfs import resolve
from strata.oci.tree import BYTES, DIR, FILE, SYMLINK, Entry, FileSlice, sort_key

_NEW_DIR = 0o755  # os.mkdir(..., 0o755) under umask 022


@dataclass
class _Dir:
    mode: int
    children: dict[str, _Node] = field(default_factory=dict)


@dataclass
class _File:
    mode: int
    data: bytes | FileSlice

    @property
    def size(self) -> int:
        return len(self.data) if isinstance(self.data, bytes) else self.data.size


@dataclass
class _Link:
    target: str


_Node = _Dir | _File | _Link


def _stat(node: _Node) -> os.stat_result:
    """What lstat(2) would say of the node, in the fields callers read (mode, size)."""
    if isinstance(node, _Dir):
        mode, size = stat.S_IFDIR | node.mode, 0
    elif isinstance(node, _File):
        mode, size = stat.S_IFREG | node.mode, node.size
    else:
        mode, size = stat.S_IFLNK | 0o777, len(os.fsencode(node.target))
    return os.stat_result((mode, 0, 0, 1, 0, 0, size, 0, 0, 0))


class MemoryRoot:
    """A layer root in memory; `entries()` gives it as sorted layer entries."""

    def __init__(self, where: str, *, _root: _Dir | None = None) -> None:
        self.where = where
        self._root = _root if _root is not None else _Dir(_NEW_DIR)

    def at(self, where: str) -> MemoryRoot:
        """The same tree, naming `where` in its errors."""
        return MemoryRoot(where, _root=self._root)

    # -- looking -------------------------------------------------------------------------------

    def _node(self, parts: tuple[str, ...]) -> _Node | None:
        node: _Node | None = self._root
        for part in parts:
            if not isinstance(node, _Dir):
                return None
            node = node.children.get(part)
        return node

    def _readlink(self, parts: tuple[str, ...]) -> str | None:
        node = self._node(parts)
        return node.target if isinstance(node, _Link) else None

    def resolve(self, name: str, *, follow_last: bool = False) -> tuple[str, ...]:
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." not in parts:
            # One walk down the tree: until a link that is to be followed, each component is
            # itself (as the general walk finds, asking for each prefix from the root). Below
            # a missing name or a file nothing is a link, so the rest is itself too.
            node = self._root
            last = len(parts) - 1
            for i, part in enumerate(parts):
                child = node.children.get(part)
                if isinstance(child, _Dir):
                    node = child
                elif isinstance(child, _Link) and (i < last or follow_last):
                    break
                else:
                    return tuple(parts)
            else:
                return tuple(parts)
        return resolve(name, self._readlink, follow_last=follow_last, where=self.where)

    def _dir(self, parts: tuple[str, ...], name: str, *, create: bool) -> _Dir | None:
        """The directory at `parts`; missing ones are made with `create` (see Rootfs._dir)."""
        node = self._root
        for i, part in enumerate(parts):
            child = node.children.get(part)
            if child is None:
                if not create:
                    return None
                child = node.children[part] = _Dir(_NEW_DIR | (node.mode & stat.S_ISGID))
            elif not isinstance(child, _Dir):
                if not create:
                    return None
                raise UserError(
                    f"{'/'.join(parts[: i + 1])} is not a directory, so the layer entry "
                    f"cannot go below it (got {name!r}); the image is malformed: rebuild it",
                    where=self.where,
                )
            node = child
        return node

    def _parent(self, name: str) -> tuple[_Dir, str]:
        parts = self.resolve(name)
        if not parts:
            raise UserError(
                f"a layer entry names the root itself (got {name!r}); the image is malformed",
                where=self.where,
            )
        parent = self._dir(parts[:-1], name, create=True)
        if parent is None:  # pragma: no cover - create=True never gives None
            raise UserError(f"cannot open the parent of {name!r}", where=self.where)
        return parent, parts[-1]

    def lstat(self, name: str, *, follow_last: bool = False) -> os.stat_result | None:
        parts = self.resolve(name, follow_last=follow_last)
        if not parts:
            return _stat(self._root)
        parent = self._dir(parts[:-1], name, create=False)
        node = None if parent is None else parent.children.get(parts[-1])
        return None if node is None else _stat(node)

    def readlink(self, name: str) -> str | None:
        parts = self.resolve(name)
        parent = self._dir(parts[:-1], name, create=False) if parts else None
        node = None if parent is None else parent.children.get(parts[-1])
        return node.target if isinstance(node, _Link) else None

    def listdir(self, name: str) -> list[str]:
        node = self._dir(self.resolve(name, follow_last=True), name, create=False)
        return [] if node is None else list(node.children)

    # -- writing -------------------------------------------------------------------------------

    def mkdir(self, name: str, mode: int | None = None) -> None:
        parent, base = self._parent(name)
        node = parent.children.get(base)
        if not isinstance(node, _Dir):
            node = parent.children[base] = _Dir(_NEW_DIR | (parent.mode & stat.S_ISGID))
        if mode is not None:
            node.mode = stat.S_IMODE(mode)

    def write(self, name: str, src: bytes | FileSlice, mode: int) -> None:
        parent, base = self._parent(name)
        parent.children[base] = _File(stat.S_IMODE(mode), src)

    def symlink(self, name: str, target: str) -> None:
        parent, base = self._parent(name)
        parent.children[base] = _Link(target)

    def chmod(self, name: str, mode: int) -> None:
        parts = self.resolve(name)
        parent = self._dir(parts[:-1], name, create=False) if parts else None
        node = None if parent is None else parent.children.get(parts[-1])
        if isinstance(node, _Dir | _File):
            node.mode = stat.S_IMODE(mode)

    def chmod_root(self, mode: int) -> None:
        self._root.mode = stat.S_IMODE(mode)

    # -- output --------------------------------------------------------------------------------

    def entries(self) -> list[Entry]:
        """Every entry but the root, in layer order (as a walk of the tree on disk lists them)."""
        out: list[Entry] = []
        todo: list[tuple[str, _Dir]] = [("", self._root)]
        while todo:
            prefix, node = todo.pop()
            for base, child in node.children.items():
                name = prefix + base
                if isinstance(child, _Dir):
                    out.append(Entry(name, DIR, child.mode))
                    todo.append((name + "/", child))
                elif isinstance(child, _Link):
                    out.append(Entry(name, SYMLINK, 0o777, target=child.target))
                elif isinstance(child.data, bytes):
                    out.append(Entry(name, BYTES, child.mode, size=child.size, data=child.data))
                else:
                    data = child.data
                    out.append(
                        Entry(
                            name,
                            FILE,
                            child.mode,
                            size=data.size,
                            source=data.path,
                            offset=data.offset,
                        )
                    )
        return sorted(out, key=lambda e: sort_key(e.name))
