"""Whiteouts: how a layer deletes what the layers below it put in the root.

A layer member `dir/.wh.<name>` deletes `dir/<name>` (and, for a
directory, everything under it) from the layers below; `dir/.wh..wh..opq`
(opaque) hides everything the layers below put in `dir`, keeping `dir`
itself. A member named `.wh.` alone deletes nothing. Whiteouts are markers,
never entries of the root filesystem.

Spec: https://github.com/opencontainers/image-spec/blob/main/layer.md#whiteouts

This module only names and recognises them; what a deletion means is up to
the tree it is applied to (the in-memory tree of export_image, a directory
on disk for run_as_root), each resolving paths inside its root.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"


@dataclass(frozen=True)
class Whiteout:
    """What a whiteout member deletes."""

    parent: str
    """The directory it sits in ("" for the root), as the member names it."""
    name: str
    """The entry of `parent` it deletes; "" for an opaque whiteout (all of `parent`'s
    content from below) or for `.wh.` alone (nothing)."""
    opaque: bool = False

    @property
    def deletes_nothing(self) -> bool:
        return not self.opaque and not self.name


def parse(member: str) -> Whiteout | None:
    """The whiteout a (normalised, relative) member name is, or None for an ordinary entry."""
    parent, base = posixpath.split(member)
    if base == OPAQUE:
        return Whiteout(parent, "", opaque=True)
    if base.startswith(PREFIX):
        return Whiteout(parent, base[len(PREFIX) :])
    return None


def whiteout_name(path: str) -> str:
    """The member name that deletes `path` (relative, normalised) from the layers below."""
    parent, base = posixpath.split(path)
    return posixpath.join(parent, PREFIX + base)
