"""Store paths read from their own layers: names, kinds, link targets, where data is.

The image rules read a store path from its cached layer, never from a
directory input: a directory reaches an action the way a sandbox stages it,
a layer file byte for byte, so both engines feed an action the same bytes.
A StorePath layer is an uncompressed tar (see strata.store.layer): its
listing comes from the headers alone (strata.oci.tarscan, which seeks past
file data), and a file's data is read only when it is copied.

`StoreView` puts several such paths under one root, so that a symlink
(`lib64 -> lib`, `share -> /nix/store/<hash>-other/share`) can be followed
the way the kernel follows it on a machine holding those paths, which is
what buildImage's rsync does: component by component, `..` after the link
before it, at most 40 links (ELOOP).
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass

from strata.errors import UserError
from strata.oci.compress import detect_compressor
from strata.oci.tarscan import DIRECTORY, REGULAR_TYPES, Header, TarFormatError, scan
from strata.oci.tarscan import SYMLINK as SYMLINK_TYPE
from strata.oci.tree import DIR, FILE, SYMLINK, FileSlice

MAX_LINK_HOPS = 40
"""Links followed in one lookup before giving up, as Linux does (ELOOP)."""


@dataclass(frozen=True)
class Member:
    """One entry of a store path; `name` is relative to the path ("" is the path itself)."""

    name: str
    kind: str
    mode: int = 0
    target: str = ""
    """SYMLINK: the target as written."""
    size: int = 0
    offset: int = 0
    """FILE: where its data starts in the layer."""


def read_members(layer: str, store_path: str, where: str) -> dict[str, Member]:
    """The entries of `store_path` in its (uncompressed) layer, by name; no data is read."""
    prefix = store_path.strip("/")
    found: dict[str, Member] = {}
    try:
        with open(layer, "rb") as f:
            kind = detect_compressor(f.read(4))
            if kind != "none":
                raise UserError(
                    f"a store path's layer must be uncompressed to be read in place (got {kind} "
                    f"in {layer}); pass the path's own layer (StorePathInfo.layer)",
                    where=where,
                )
            for h in scan(f.fileno()):
                name = h.name.strip("/")
                if name != prefix and not name.startswith(prefix + "/"):
                    continue
                rel = name[len(prefix) + 1 :]
                found[rel] = _member(rel, h, name, where)
    except (OSError, TarFormatError) as e:
        raise UserError(
            f"cannot read a store path's layer (got {layer}: {e}); pass the path's own "
            "layer (StorePathInfo.layer)",
            where=where,
        ) from None
    if "" not in found:
        raise UserError(
            f"the layer does not hold the store path (got {store_path} not in {layer}); pass "
            "the path's own layer (StorePathInfo.layer)",
            where=where,
        )
    for rel in found:
        parent = posixpath.dirname(rel) if rel else ""
        if rel and (parent not in found or found[parent].kind != DIR):
            raise UserError(
                f"a layer member's parent is not a directory in the layer (got {rel!r} in "
                f"{layer}); rebuild the store path's layer",
                where=where,
            )
    return found


def _member(rel: str, h: Header, name: str, where: str) -> Member:
    if ".." in rel.split("/"):
        raise UserError(f"layer member escapes its store path (got {name!r})", where=where)
    mode = h.mode & 0o7777
    if h.kind == DIRECTORY:
        return Member(rel, DIR, mode)
    if h.kind == SYMLINK_TYPE:
        return Member(rel, SYMLINK, 0o777, target=h.linkname)
    if h.kind in REGULAR_TYPES:
        return Member(rel, FILE, mode, size=h.size, offset=h.data)
    raise UserError(
        f"unsupported member in a store path layer (got {name!r}); store paths hold files, "
        "directories and symlinks",
        where=where,
    )


class StoreView:
    """Store paths under one root, each read from its layer when first looked at."""

    def __init__(self, layers: Mapping[str, str], where: str) -> None:
        self._layers = {p.rstrip("/"): layer for p, layer in layers.items()}
        self._members: dict[str, dict[str, Member]] = {}
        self._where = where
        self._dirs = {"/"} | {
            parent for p in self._layers for parent in _ancestors(posixpath.dirname(p))
        }

    def members(self, store_path: str) -> dict[str, Member]:
        if store_path not in self._members:
            self._members[store_path] = read_members(
                self._layers[store_path], store_path, self._where
            )
        return self._members[store_path]

    def locate(self, path: str) -> tuple[str, str] | None:
        """(store path, name inside it) of an absolute, link-free path; None outside them."""
        parts = path.split("/")
        for i in range(2, len(parts) + 1):
            store_path = "/".join(parts[:i])
            if store_path in self._layers:
                return store_path, "/".join(parts[i:])
        return None

    def lookup(self, path: str) -> Member | None:
        """The entry at an absolute, link-free path, or None when there is none."""
        if path in self._dirs:
            return Member("", DIR, 0o755)
        located = self.locate(path)
        if located is None:
            return None
        return self.members(located[0]).get(located[1])

    def resolve(self, path: str) -> str | None:
        """Where an absolute `path` leads, every link followed; None: it does not exist."""
        todo = path.split("/")[::-1]
        cur = ""
        hops = 0
        while todo:
            part = todo.pop()
            if part in ("", "."):
                continue
            if part == "..":
                cur = cur.rsplit("/", 1)[0]
                continue
            nxt = f"{cur}/{part}"
            m = self.lookup(nxt)
            if m is None:
                return None
            if m.kind == SYMLINK:
                hops += 1
                if hops > MAX_LINK_HOPS:
                    return None
                if m.target.startswith("/"):
                    cur = ""
                todo.extend(m.target.split("/")[::-1])
                continue
            if m.kind != DIR and todo:
                return None
            cur = nxt
        return cur or "/"

    def data(self, store_path: str, m: Member) -> FileSlice:
        """Where a FILE member's data is: a slice of its layer, read only when copied."""
        return FileSlice(self._layers[store_path], m.offset, m.size)


def _ancestors(path: str) -> list[str]:
    out = []
    while path not in ("/", ""):
        out.append(path)
        path = posixpath.dirname(path)
    return out
