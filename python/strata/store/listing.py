"""Store paths read from their own layers: names, kinds, link targets, where data is.

The image rules read a store path from its cached layer, never from a
directory input: a directory reaches an action the way a sandbox stages it,
a layer file byte for byte, so both engines feed an action the same bytes.
A StorePath layer is an uncompressed tar (see strata.store.layer): its
listing comes from the headers alone (strata.oci.tarscan, which seeks past
file data), and a file's data is read only when it is copied. The StorePath
action also writes that listing beside the layer (`listing_bytes`, read by
`read_listing`): at the size of a real closure, scanning tens of thousands of
headers cost a customisation layer more than everything else it did.

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
from typing import NamedTuple

from strata.canonical import json_bytes, read_json
from strata.errors import UserError
from strata.oci.compress import detect_compressor
from strata.oci.tarscan import DIRECTORY, REGULAR_TYPES, Header, TarFormatError, scan
from strata.oci.tarscan import SYMLINK as SYMLINK_TYPE
from strata.oci.tree import DIR, FILE, SYMLINK, FileSlice

MAX_LINK_HOPS = 40
"""Links followed in one lookup before giving up, as Linux does (ELOOP)."""


class Member(NamedTuple):
    """One entry of a store path; `name` is relative to the path ("" is the path itself).

    A tuple, not a frozen dataclass: a closure's listings make 60,000 of them, and a
    frozen dataclass took eight times as long to make."""

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
    _check_parents(found, layer, where)
    return found


def _check_parents(found: dict[str, Member], source: str, where: str) -> None:
    for rel in found:
        parent = posixpath.dirname(rel) if rel else ""
        if rel and (parent not in found or found[parent].kind != DIR):
            raise UserError(
                f"a layer member's parent is not a directory in the layer (got {rel!r} in "
                f"{source}); rebuild the store path's layer",
                where=where,
            )


LISTING_SCHEMA = 1
_KINDS = (DIR, FILE, SYMLINK)


def listing_bytes(store_path: str, members: list[Member], span: tuple[int, int]) -> bytes:
    """The listing file of a store path's layer: its members as `read_members` finds them,
    and `span`, the byte range of the layer that holds them (every header naming the path,
    and its data)."""
    rows = [[m.name, m.kind, m.mode, m.size, m.offset, m.target] for m in members]
    doc = {"members": rows, "path": store_path, "schema_version": LISTING_SCHEMA}
    return json_bytes({**doc, "span": list(span)})


@dataclass(frozen=True)
class Listing:
    """A store path's listing file, read: its members by name, and its span in the layer."""

    members: dict[str, Member]
    span: tuple[int, int]


def read_listing(listing: str, store_path: str, where: str) -> Listing:
    """The listing file a StorePath action wrote beside the layer of `store_path`."""
    fix = "rebuild the store path (its listing is an output of the StorePath action)"
    doc = read_json(listing, "a store path's listing", fix, where)
    bad = _listing_problem(doc, store_path)
    if bad:
        raise UserError(f"store path listing {bad} (got {listing}); {fix}", where=where)
    found: dict[str, Member] = {}
    for name, kind, mode, size, offset, target in doc["members"]:
        if ".." in name.split("/"):
            raise UserError(f"layer member escapes its store path (got {name!r})", where=where)
        found[name] = Member(name, kind, mode, target, size, offset)
    if "" not in found:
        raise UserError(f"store path listing has no root entry (got {listing}); {fix}", where=where)
    _check_parents(found, listing, where)
    return Listing(found, (doc["span"][0], doc["span"][1]))


def _listing_problem(doc: object, store_path: str) -> str:
    """What is wrong with a listing document, or ""."""
    if not isinstance(doc, dict) or doc.get("schema_version") != LISTING_SCHEMA:
        return f"is not schema_version {LISTING_SCHEMA}"
    if doc.get("path") != store_path:
        return f"is of another path than {store_path}"
    span = doc.get("span")
    if not (isinstance(span, list) and len(span) == 2 and all(_count(x) for x in span)):
        return "has no [start, end] span"
    if span[0] > span[1]:
        return "has a span that ends before it starts"
    rows = doc.get("members")
    if not isinstance(rows, list) or not all(_row_ok(r) for r in rows):
        return "has a malformed member"
    return ""


def _count(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _row_ok(row: object) -> bool:
    if not (isinstance(row, list) and len(row) == 6):
        return False
    name, kind, mode, size, offset, target = row
    return (
        isinstance(name, str)
        and kind in _KINDS
        and _count(mode)
        and _count(size)
        and _count(offset)
        and isinstance(target, str)
    )


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

    def __init__(
        self, layers: Mapping[str, str], where: str, listings: Mapping[str, str] | None = None
    ) -> None:
        self._layers = {p.rstrip("/"): layer for p, layer in layers.items()}
        self._listings = {p.rstrip("/"): f for p, f in (listings or {}).items()}
        """Listing files (`read_listing`) of some of the paths: read instead of the layer."""
        self._members: dict[str, dict[str, Member]] = {}
        self._where = where
        self._dirs = {"/"} | {
            parent for p in self._layers for parent in _ancestors(posixpath.dirname(p))
        }

    def members(self, store_path: str) -> dict[str, Member]:
        if store_path not in self._members:
            listing = self._listings.get(store_path)
            self._members[store_path] = (
                read_listing(listing, store_path, self._where).members
                if listing is not None
                else read_members(self._layers[store_path], store_path, self._where)
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
