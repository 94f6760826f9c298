"""Outputs on disk: read-only as Bazel leaves them, and the entries a tree artifact may hold.

Bazel makes every output read-only and executable, and stages a tree artifact
for a consumer as its files and symlinks, one link each (`tree_children`); the
checks here refuse what a tree may not hold, naming the action that wrote it.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from strata.engine.action import Action
from strata.engine.cache.result_check import link_leaves_tree
from strata.errors import UserError, shorten
from strata.fsutil import kind_of

# Bazel makes every output read-only and executable (files and tree directories
# alike, whatever the action wrote); actions that read modes see the same thing
# under both engines only if we do the same.
OUTPUT_MODE = 0o555


def remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        make_writable(p)
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def make_writable(root: Path) -> None:
    """Outputs are read-only; their directories must be writable again to change them."""
    for dirpath, dirnames, _files in os.walk(root):
        os.chmod(dirpath, 0o755)
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]


def seal(root: Path) -> None:
    for dirpath, _dirs, _files in os.walk(root, topdown=False):
        os.chmod(dirpath, OUTPUT_MODE)


def seal_file(path: Path) -> os.stat_result:
    """Make a fresh output file a read-only regular file (a copy of what a symlink output
    points to); its stat."""
    if path.is_symlink():
        real = path.resolve()
        path.unlink()
        shutil.copyfile(real, path)
        shutil.copymode(real, path)
    os.chmod(path, OUTPUT_MODE)
    return os.stat(path)


def check_tree_entry(path: Path, rel: str, tree: str, action: Action) -> int:
    """The lstat mode of a tree artifact entry, if it is one a tree may hold.

    A FIFO would hang whoever reads it (the engine hashing the tree first), a
    device or socket has no bytes to cache; and the cache protocol names
    files in UTF-8. Each is the action's mistake, refused with its name.
    """
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(
            f"{action.mnemonic} wrote a file name that is not UTF-8 in tree artifact {tree} "
            f"(got {shorten(repr(os.fsencode(rel)))}); name the files of outputs in UTF-8",
            where=action.owner,
        ) from None
    mode = os.lstat(path).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
        raise UserError(
            f"{action.mnemonic} wrote {kind_of(mode)} in tree artifact {tree} (got "
            f"{shorten(rel)}); a tree artifact holds only regular files, directories and "
            "symlinks: remove it, or write a file instead",
            where=action.owner,
        )
    return mode


def check_tree_link(link: Path, rel: str, tree: str, action: Action) -> str:
    """Bazel's rule for symlinks in a tree artifact: they must resolve, relative ones inside it."""
    target = os.readlink(link)
    if link_leaves_tree(rel, target):
        raise UserError(
            f"{action.mnemonic} wrote a symlink in tree artifact {tree} that points outside "
            f"it (got {rel} -> {target}); point it inside the directory or copy the file",
            where=action.owner,
        )
    if not link.exists():
        raise UserError(
            f"{action.mnemonic} wrote a dangling symlink in tree artifact {tree} "
            f"(got {rel} -> {target}); Bazel refuses these too: make the target exist "
            "or write a file instead",
            where=action.owner,
        )
    return target


def is_real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def tree_children(tree: Path) -> list[str]:
    """A tree artifact's children as Bazel 4.2.3 stages them for a consumer.

    Checked against real Bazel (processwrapper-sandbox; tests/fixtures/engine/
    conformance //lib:staged*): each file and each symlink (to a file, to a
    directory, relative, absolute, a chain of links) is one child, staged as a
    link to that entry's own path in the execroot, in directories made for it;
    a link is never followed, so a link to a directory reaches the action as a
    link. Directories are not children: an empty one is not staged, and a tree
    with no children at all is staged as one link to the whole directory (so
    its empty directories are then visible). A source directory is not a tree
    artifact: it is one link too.
    """
    children: list[str] = []
    for dirpath, dirnames, filenames in os.walk(tree):
        here = Path(dirpath)
        rel = here.relative_to(tree)
        links = [d for d in dirnames if (here / d).is_symlink()]
        children.extend((rel / name).as_posix() for name in filenames + links)
        dirnames[:] = [d for d in dirnames if d not in links]
    return children
