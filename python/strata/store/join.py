"""nixpkgs' symlinkJoin: `lndir -silent <path> $out` for each path, in order.

buildLayeredImage's customisation layer is `symlinkJoin { paths = contents; }`
(nixpkgs pkgs/build-support/docker/default.nix), and symlinkJoin runs X.Org's
lndir (util/lndir, lndir(1); 1.0.3 in Debian's xutils-dev) once per path
into the same `$out`. What lndir does, each rule checked against the real
lndir in tests/test_store_join.py:

- a directory becomes a real directory (0777 less Nix's umask 022: 0755),
  an empty one too;
- a file becomes a symlink to `<store path>/<its name in the path>`;
- a symlink is made again with the same target text (`lib64 -> lib` stays
  relative, a dangling link stays dangling): lndir copies links, it does not
  link to them;
- a name ending in `~` is never joined, and directories named BitKeeper,
  CVS, CVS.adm, .git, .hg, RCS, SCCS or .svn are skipped (symlinkJoin does
  not pass -withrevinfo);
- the first path to claim a name keeps it. A directory arriving at a
  directory merges into it; a directory arriving at anything else (a link to
  a directory, to a file, a dangling link) is not joined, nor anything under
  it; a file or link arriving at a name that exists is not joined. lndir
  only warns about these, and symlinkJoin goes on.

lndir looks at names, kinds and link targets only, so the join is computed
from a listing (strata.store.listing): no file is read. Every look and write
in the layer root goes through strata.oci.rootfs (or its in-memory twin,
strata.oci.memroot), so no link (one joined earlier, or a hostile one) is
ever followed out of the root.
"""

from __future__ import annotations

import posixpath
import stat
from collections.abc import Mapping
from pathlib import Path

from strata.oci.rootfs import Rootfs, RootTree
from strata.oci.tree import DIR, SYMLINK
from strata.store.listing import Member

REVISION_DIRS = frozenset({"BitKeeper", "CVS", "CVS.adm", ".git", ".hg", "RCS", "SCCS", ".svn"})
"""Directories lndir skips unless given -withrevinfo."""
DIR_MODE = 0o755


def link_join(
    root: Path | RootTree, store_path: str, members: Mapping[str, Member], where: str = "join"
) -> None:
    """`lndir -silent <store_path> <root>`, with the path's content given by `members`.

    `root` is a directory, or a tree (`Rootfs`, `MemoryRoot`) to join into.
    """
    store_path = store_path.rstrip("/")
    fs = Rootfs(root, where) if isinstance(root, Path) else root.at(where)
    children: dict[str, list[Member]] = {}
    for m in members.values():
        if m.name:
            children.setdefault(posixpath.dirname(m.name), []).append(m)
    todo = [""]
    while todo:
        for m in children.get(todo.pop(), ()):
            base = posixpath.basename(m.name)
            if base.endswith("~"):
                continue
            st = fs.lstat(m.name)
            if m.kind == DIR:
                if base in REVISION_DIRS:
                    continue
                if st is None:
                    fs.mkdir(m.name, DIR_MODE)
                elif not stat.S_ISDIR(st.st_mode):
                    continue  # a link or a file holds the name: lndir skips the directory
                todo.append(m.name)
            elif st is None:
                fs.symlink(m.name, m.target if m.kind == SYMLINK else f"{store_path}/{m.name}")
