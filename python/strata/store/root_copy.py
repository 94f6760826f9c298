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
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from strata.errors import UserError
from strata.oci.tree import DIR, SYMLINK
from strata.store.listing import MAX_LINK_HOPS, Member, StoreView

_OWNER_WRITE = 0o200


class RootCopy:
    """Copies store paths onto `root` one after the other, as the rsync loop does."""

    def __init__(self, root: Path, view: StoreView, keep_dirlinks: bool) -> None:
        self.root = root
        self.view = view
        self.keep_dirlinks = keep_dirlinks
        self._children: dict[str, dict[str, list[Member]]] = {}

    def copy(self, store_path: str, where: str) -> None:
        """`rsync -a{K|k} <store_path>/ <root>/`."""
        store_path = store_path.rstrip("/")
        self._send(self.root, store_path, "", (store_path,), where)

    def _children_of(self, store_path: str, rel: str) -> list[Member]:
        if store_path not in self._children:
            by_parent: dict[str, list[Member]] = {}
            for m in sorted(self.view.members(store_path).values(), key=lambda m: m.name):
                if m.name:
                    by_parent.setdefault(posixpath.dirname(m.name), []).append(m)
            self._children[store_path] = by_parent
        return self._children[store_path].get(rel, [])

    def _send(
        self, dest: Path, store_path: str, rel: str, stack: tuple[str, ...], where: str
    ) -> None:
        """Send the directory `rel` of `store_path` into `dest`; `stack`: directories being sent."""
        for m in self._children_of(store_path, rel):
            d = dest / posixpath.basename(m.name)
            if m.kind == SYMLINK and not self.keep_dirlinks:
                found = self._dir_behind(store_path, m, stack, where)
                if found is not None:
                    to, to_rel, mode = found
                    inner = self._receive_dir(d, mode, where)
                    physical = f"{to}/{to_rel}".rstrip("/")
                    self._send(inner, to, to_rel, (*stack, physical), where)
                    continue
            if m.kind == DIR:
                inner = self._receive_dir(d, m.mode, where)
                self._send(inner, store_path, m.name, (*stack, f"{store_path}/{m.name}"), where)
            else:
                self._receive_leaf(d, store_path, m, where)

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

    def _receive_dir(self, d: Path, mode: int, where: str) -> Path:
        if d.is_symlink():
            if self.keep_dirlinks:
                into = self._dirlink_target(d, where)
                if into is not None:
                    os.chmod(into, mode | _OWNER_WRITE)
                    return into
            d.unlink()
        elif d.exists() and not d.is_dir():
            d.unlink()
        if not d.exists():
            d.mkdir()
        os.chmod(d, mode | _OWNER_WRITE)
        return d

    def _receive_leaf(self, d: Path, store_path: str, m: Member, where: str) -> None:
        if m.kind != SYMLINK and not d.is_symlink() and d.is_file() and d.stat().st_size == m.size:
            os.chmod(d, m.mode | _OWNER_WRITE)  # rsync's quick check: same size, same mtime
            return
        if d.is_symlink() or (d.exists() and not d.is_dir()):
            d.unlink()
        elif d.is_dir():
            if any(d.iterdir()):
                raise UserError(
                    f"{store_path} has a {'symlink' if m.kind == SYMLINK else 'file'} where an "
                    f"earlier path has a directory with content (got /{m.name}); buildImage's "
                    "rsync fails here too: rename one of them or drop one path",
                    where=where,
                )
            d.rmdir()
        if m.kind == SYMLINK:
            os.symlink(m.target, d)
        else:
            self.view.copy_data(store_path, m, d)
            os.chmod(d, m.mode | _OWNER_WRITE)

    def _dirlink_target(self, link: Path, where: str) -> Path | None:
        """--keep-dirlinks: the directory in the root that `link` leads to, if it does."""
        cur = list(link.parent.relative_to(self.root).parts)
        first = os.readlink(link)
        if first.startswith("/"):
            self._refuse_store_dir(link, first, where)
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
            p = self.root.joinpath(*cur, part)
            if p.is_symlink():
                hops += 1
                target = os.readlink(p)
                if hops > MAX_LINK_HOPS:
                    return None
                if target.startswith("/"):
                    self._refuse_store_dir(link, "/".join([target, *reversed(todo)]), where)
                    return None
                todo.extend(target.split("/")[::-1])
                continue
            if not p.is_dir():
                return None
            cur.append(part)
        return self.root.joinpath(*cur)

    def _refuse_store_dir(self, link: Path, target: str, where: str) -> None:
        """A link out of the root: rsync -K cannot write through it into a store directory."""
        physical = self.view.resolve(target)
        m = None if physical is None else self.view.lookup(physical)
        if m is not None and m.kind == DIR:
            name = link.relative_to(self.root).as_posix()
            raise UserError(
                f"keep_contents_dirlinks would copy a directory through a link into the store "
                f"(got /{name} -> {os.readlink(link)}), which rsync -K cannot write to; copy "
                "that path without keep_contents_dirlinks, or drop the link",
                where=where,
            )
