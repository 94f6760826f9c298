"""buildImage's copyToRoot: each path copied onto the layer root with rsync, in order.

nixpkgs' buildImage copies every `copyToRoot` path with
`rsync -a${if keepContentsDirlinks then "K" else "k"} --chown=0:0 $item/ layer/`
(pkgs/build-support/docker/default.nix). What that does, each rule checked
against the real rsync in tests/test_store_root_copy.py:

Sending a path:
- without keep_dirlinks (`-k`, --copy-dirlinks) a symlink that leads to a
  directory is sent as that directory, whose content follows the same rule:
  a relative link inside the path, or a link (absolute, or relative out of
  the path) into a store path of the image, as the links resolve in Nix's
  build sandbox, which holds the image's closure. A link to a file, a
  dangling link and a link out of the store are sent as links. A link to a
  directory that holds it would make rsync recurse for ever: an error.
- with keep_dirlinks (`-K`) every link is sent as a link.

Receiving a name the root already has:
- a directory onto a directory merges into it;
- a directory onto a symlink: with keep_dirlinks (--keep-dirlinks), when
  the link leads by relative links inside the root to a directory, merges
  into that directory; when it leads into a store path's directory, an error
  (rsync would write into the read-only store); otherwise, and always
  without keep_dirlinks, the directory replaces the link;
- a directory onto a file replaces it;
- a file onto a file of the same size keeps the earlier content and takes
  the later mode: rsync's quick check skips a file whose size and mtime
  match, and every file in the Nix store has mtime 1;
- otherwise a file or link onto a file or link replaces it;
- a file or link onto an empty directory replaces it; onto a directory with
  anything in it, an error (rsync: "cannot delete non-empty directory", so
  buildImage's build fails).

Modes: each entry has its mode in the store path plus owner-write (0444 ->
0644, 0555 -> 0755; rsync -a would keep the store's read-only modes, strata
has always added u+w), and a directory copied twice takes the later path's.

Every look and write into the layer root (directories, links, files, modes,
removals) goes through strata.oci.rootfs (or its in-memory twin,
strata.oci.memroot), by names relative to the root, so no link (copied
earlier, or a hostile one) is ever followed out of the root. A file's
content is named as a slice of its store path's layer, and copied from
there only if the root is on disk.
"""

from __future__ import annotations

import posixpath
import stat
from pathlib import Path

from strata.errors import UserError
from strata.oci.rootfs import Rootfs, RootTree
from strata.oci.tree import DIR, SYMLINK
from strata.store.listing import MAX_LINK_HOPS, Member, StoreView

_OWNER_WRITE = 0o200


class RootCopy:
    """Copies store paths onto `root` one after the other, as the rsync loop does.

    Names in the root are relative to it ("" is the root itself). `root` is a
    directory, or a tree (`Rootfs`, `MemoryRoot`) to copy into.
    """

    def __init__(self, root: Path | RootTree, view: StoreView, keep_dirlinks: bool) -> None:
        self.root: RootTree = Rootfs(root, "copy") if isinstance(root, Path) else root
        self.view = view
        self.keep_dirlinks = keep_dirlinks
        self._children: dict[str, dict[str, list[Member]]] = {}

    def copy(self, store_path: str, where: str) -> None:
        """`rsync -a{K|k} <store_path>/ <root>/`."""
        store_path = store_path.rstrip("/")
        self._send(self.root.at(where), "", store_path, "", (store_path,), where)

    def _children_of(self, store_path: str, rel: str) -> list[Member]:
        if store_path not in self._children:
            by_parent: dict[str, list[Member]] = {}
            for m in sorted(self.view.members(store_path).values(), key=lambda m: m.name):
                if m.name:
                    by_parent.setdefault(posixpath.dirname(m.name), []).append(m)
            self._children[store_path] = by_parent
        return self._children[store_path].get(rel, [])

    def _send(
        self, fs: RootTree, dest: str, store_path: str, rel: str, stack: tuple[str, ...], where: str
    ) -> None:
        """Send the directory `rel` of `store_path` into `dest`; `stack`: directories being sent."""
        for m in self._children_of(store_path, rel):
            d = posixpath.join(dest, posixpath.basename(m.name))
            if m.kind == SYMLINK and not self.keep_dirlinks:
                found = self._dir_behind(store_path, m, stack, where)
                if found is not None:
                    to, to_rel, mode = found
                    inner = self._receive_dir(fs, d, mode, where)
                    physical = f"{to}/{to_rel}".rstrip("/")
                    self._send(fs, inner, to, to_rel, (*stack, physical), where)
                    continue
            if m.kind == DIR:
                inner = self._receive_dir(fs, d, m.mode, where)
                stack_in = (*stack, f"{store_path}/{m.name}")
                self._send(fs, inner, store_path, m.name, stack_in, where)
            else:
                self._receive_leaf(fs, d, store_path, m, where)

    def _dir_behind(
        self, store_path: str, link: Member, stack: tuple[str, ...], where: str
    ) -> tuple[str, str, int] | None:
        """(store path, name inside it, mode) of the directory a link leads to, if it does."""
        parent = posixpath.dirname(f"{store_path}/{link.name}")
        target = link.target if link.target.startswith("/") else f"{parent}/{link.target}"
        physical = self.view.resolve(target)
        if physical is None:
            return None
        m = self.view.lookup(physical)
        if m is None or m.kind != DIR:
            return None
        located = self.view.locate(physical)
        loops = [s for s in stack if s == physical or s.startswith(physical.rstrip("/") + "/")]
        if located is None or loops:
            why = "a directory that holds it" if loops else "a directory outside every store path"
            raise UserError(
                f"a symlink leads to {why}, which rsync -k (copy-dirlinks) would copy without "
                f"end (got {link.name} -> {link.target} in {store_path}); point the link "
                "elsewhere, or set keep_contents_dirlinks to copy links as links",
                where=where,
            )
        return located[0], located[1], m.mode

    def _receive_dir(self, fs: RootTree, d: str, mode: int, where: str) -> str:
        st = fs.lstat(d)
        if st is not None and stat.S_ISLNK(st.st_mode) and self.keep_dirlinks:
            into = self._dirlink_target(fs, d, where)
            if into is not None:
                if into:
                    fs.chmod(into, mode | _OWNER_WRITE)
                else:  # the link leads to the root itself, a real directory of ours
                    fs.chmod_root(mode | _OWNER_WRITE)
                return into
        fs.mkdir(d, mode | _OWNER_WRITE)  # keeps a directory, replaces anything else
        return d

    def _receive_leaf(self, fs: RootTree, d: str, store_path: str, m: Member, where: str) -> None:
        st = fs.lstat(d)
        if st is None:
            pass
        elif m.kind != SYMLINK and stat.S_ISREG(st.st_mode) and st.st_size == m.size:
            fs.chmod(d, m.mode | _OWNER_WRITE)  # rsync's quick check: same size, same mtime
            return
        elif stat.S_ISDIR(st.st_mode) and fs.listdir(d):
            raise UserError(
                f"{store_path} has a {'symlink' if m.kind == SYMLINK else 'file'} where an "
                f"earlier path has a directory with content (got /{m.name}); buildImage's "
                "rsync fails here too: rename one of them or drop one path",
                where=where,
            )
        # Rootfs replaces whatever is at `d` (a file, a link, an empty directory).
        if m.kind == SYMLINK:
            fs.symlink(d, m.target)
        else:
            fs.write(d, self.view.data(store_path, m), m.mode | _OWNER_WRITE)

    def _dirlink_target(self, fs: RootTree, link: str, where: str) -> str | None:
        """--keep-dirlinks: the directory in the root that `link` leads to, if it does.

        Read only: each step is checked to be a real directory of the root
        before the next is looked at, so nothing is followed out of it.
        """
        parent = posixpath.dirname(link)
        cur = parent.split("/") if parent else []
        first = fs.readlink(link) or ""
        if first.startswith("/"):
            self._refuse_store_dir(link, first, first, where)
            return None
        todo = first.split("/")[::-1]
        hops = 1
        while todo:
            part = todo.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if not cur:
                    return None  # out of the root: not a directory of this layer
                cur.pop()
                continue
            p = "/".join([*cur, part])
            target = fs.readlink(p)
            if target is not None:
                hops += 1
                if hops > MAX_LINK_HOPS:
                    return None
                if target.startswith("/"):
                    rest = "/".join([target, *reversed(todo)])
                    self._refuse_store_dir(link, first, rest, where)
                    return None
                todo.extend(target.split("/")[::-1])
                continue
            st = fs.lstat(p)
            if st is None or not stat.S_ISDIR(st.st_mode):
                return None
            cur.append(part)
        return "/".join(cur)

    def _refuse_store_dir(self, link: str, written: str, target: str, where: str) -> None:
        """A link out of the root: rsync -K cannot write through it into a store directory."""
        physical = self.view.resolve(target)
        m = None if physical is None else self.view.lookup(physical)
        if m is not None and m.kind == DIR:
            raise UserError(
                f"keep_contents_dirlinks would copy a directory through a link into the store "
                f"(got /{link} -> {written}), which rsync -K cannot write "
                "to; copy that path without keep_contents_dirlinks, or drop the link",
                where=where,
            )
