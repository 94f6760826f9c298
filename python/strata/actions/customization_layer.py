"""`strata action CustomizationLayer @request.json`: an image's customisation layer.

The top layer of dockerTools' images: the `contents` store paths placed at
`/`, then `extra_commands` run in the layer root, then `fake_root_commands`
under fakeroot, so their chown/chmod are what the tar records. The store
paths themselves are not in this layer (they have their own, see StorePath
/ LayerGroups). buildLayeredImage joins its contents with nixpkgs'
symlinkJoin, one `lndir -silent` a path (strata.store.join); buildImage
copies its copyToRoot with one `rsync -ak` (`-aK` with keepContentsDirlinks)
a path (strata.store.root_copy). Both read a store path from its own layer
(strata.store.listing), so both engines feed this action the same bytes.

Request (`CustomizationLayerRequest`; keys sorted, `schema_version` 1):

    contents            list, placed in order:
                          {"info": F, "layer": L, "join": "link"}
                              joined as lndir does, from the listing of the path's own layer
                              L (StorePathInfo.layer; uncompressed); F is its StorePath info
                              file (rules cannot know the path: it is a content hash); with
                              "listing": S (StorePathInfo.listing) the names are read from S
                              instead of L's headers (L is still read for the fakechroot copy)
                          {"store_path": "/nix/store/<hash>-<name>", "src": dir}
                              joined the same way, the path's content given as a directory
                          {"info": F, "layer": L}
                              copied as buildImage's rsync copies, from the layer L
    closure             [{"info": F, "layer": L}]: further store paths a copied path's links
                        may lead into (rsync -k copies a link to a directory as the
                        directory, through the store) ([]); "listing" as in contents
    files               path mapping items (strata.actions.request), plain files by
                        destination, placed after the contents, before the commands ([])
    keep_dirlinks       bool (keepContentsDirlinks, default false): rsync -K instead of -k
    extra_commands      shell text, run by /bin/sh -e with the layer root as cwd ("")
    fake_root_commands  shell text, run under fakeroot with the layer root as cwd ("")
    enable_fakechroot   bool (default false): run fake_root_commands chrooted in the
                        layer root with `proot -r ROOT -0`, each joined store path
                        bound at its store path; /bin/sh must then be in the layer
    compressor          "none" | "gzip" | "zstd" (default "gzip")
    output, descriptor  the layer blob and its descriptor JSON (what ImageAssemble's layers take)
    uid, gid, uname, gname, mtime
                        owner of every entry whose (faked) owner is root, and the
                        time of every entry (0, 0, "", "", 1)

Why fakeroot and not real root: fakeroot only fakes for a caller that is not
root (as root it really chowns, and the result would depend on who ran the
build). So when strata runs as root, the commands run as uid/gid 65534
(`setpriv`) on a work tree it owns. The ownership and modes fakeroot reports
are read, inside the same fakeroot session, with `find -printf`; the layer
is then written from those, so the tar holds the faked ownership and the
real files are never chowned. `enable_fakechroot` uses proot, which fakes
root to the commands but does not remember chown: in that mode ownership
changes are not recorded (modes are).

The commands see `PATH=/usr/bin:/bin`, `HOME=/homeless-shelter`, `LC_ALL=C`,
`out` = the layer root (as Nix builders do) and umask 022, so their results
do not depend on the caller's environment. Entries are sorted and have a
fixed mtime: the same request gives the same bytes.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

from strata.actions.request import (
    OWNERSHIP_KEYS,
    Request,
    compressor_field,
    field,
    ownership,
    plan_tree,
    read_info,
    read_with,
)
from strata.errors import UserError
from strata.oci.layer import Ownership, write_descriptor, write_layer_from_entries
from strata.oci.memroot import MemoryRoot
from strata.oci.root_commands import need_tool, run_commands, run_fake_root, tree_entries
from strata.oci.rootfs import Rootfs, RootTree
from strata.oci.tree import DIR, FILE, SYMLINK, FileSlice, normalize_dest
from strata.store.join import link_join
from strata.store.listing import Member, StoreView
from strata.store.root_copy import RootCopy


@dataclass(frozen=True, kw_only=True)
class CustomizationLayerRequest(Request):
    """The keys, as the module docstring describes them."""

    compressor: str = compressor_field("gzip")
    output: str
    descriptor: str
    owner: Ownership = read_with(ownership, keys=OWNERSHIP_KEYS)
    extra_commands: str = ""
    fake_root_commands: str = ""
    closure: list[Any] = dataclass_field(default_factory=list)
    contents: list[Any] = dataclass_field(default_factory=list)
    keep_dirlinks: bool = False
    files: list[Any] = dataclass_field(default_factory=list)
    enable_fakechroot: bool = False


def _is_input_link(path: Path) -> bool:
    """A link Bazel's or strata's sandbox made for an input file (see strata.oci.tree)."""
    target = os.readlink(path)
    rel = os.path.relpath(os.path.abspath(path), os.getcwd())
    return target.startswith("/") and not rel.startswith("..") and target.endswith("/" + rel)


def _tree_members(src: Path) -> dict[str, Member]:
    """A directory's listing for the join; a link a sandbox made for an input is read through."""
    out = {"": Member("", DIR, 0o555)}
    todo = [(src, "")]
    while todo:
        here, rel = todo.pop()
        for entry in os.scandir(here):
            name = f"{rel}/{entry.name}" if rel else entry.name
            path = Path(entry.path)
            if entry.is_symlink() and _is_input_link(path):
                staged = os.readlink(path)
                if os.path.islink(staged):
                    out[name] = Member(name, SYMLINK, 0o777, target=os.readlink(staged))
                    continue
                path = Path(staged)
            if path.is_symlink():
                out[name] = Member(name, SYMLINK, 0o777, target=os.readlink(path))
            elif path.is_dir():
                out[name] = Member(name, DIR, 0o555)
                todo.append((path, name))
            else:
                out[name] = Member(name, FILE, 0o444)
    return out


def _place_files(req: CustomizationLayerRequest, where: str, root: RootTree) -> None:
    """`files`: plain files (path mapping items, strata.actions.request) at their destinations.

    Their parents are resolved inside the root (strata.oci.rootfs): a content
    link `etc -> /etc` makes `etc/motd` land in the layer's /etc.
    """
    items = req.files
    if not items:
        return
    fs = root.at(f"{where}: files")
    for e in plan_tree({"contents": items}, f"{where}: files").entries():
        if e.kind == DIR:
            # a directory already there through a link is the one meant
            st = fs.lstat(e.name, follow_last=True)
            is_dir = st is not None and stat.S_ISDIR(st.st_mode)
            name = "/".join(fs.resolve(e.name, follow_last=is_dir))
            if name:  # not a link to the root itself, whose mode is not the layer's
                fs.mkdir(name, e.mode)
        elif e.kind == SYMLINK:
            fs.symlink(e.name, e.target)
        elif e.kind == FILE:
            fs.write(e.name, FileSlice(e.source, 0, e.size), e.mode)
        else:
            fs.write(e.name, e.data, e.mode)


def _single_file(name: str, where: str) -> UserError:
    # As Nix's buildEnv: "is a file and can't be merged into an environment".
    return UserError(
        f"a single-file store path has no tree to copy or link to / (got {name}); put the "
        'file at a path inside a store path (store_path(srcs = {...: "bin/NAME"})), or let '
        "another path reference it",
        where=where,
    )


@dataclass(frozen=True)
class _Content:
    """One `contents` item: a store path joined (lndir) or copied (rsync) at /."""

    store_path: str
    join: bool
    where: str
    src: Path | None = None
    """The `src` form: the path's content as a directory (else it is read from its layer)."""


_FORMS = (
    '{"store_path": P, "src": DIR}, {"info": F, "layer": L, "join": "link"} or '
    '{"info": F, "layer": L}'
)


def _contents(req: CustomizationLayerRequest, where: str) -> tuple[list[_Content], StoreView]:
    """The contents items, and the store paths they (and `closure`) read from their layers."""
    items: list[_Content] = []
    layers: dict[str, str] = {}
    listings: dict[str, str] = {}

    def add_layer(entry: dict[str, Any], at: str) -> str:
        path: str = read_info(field(entry, "info", str, at), at)["path"]
        layers[path] = field(entry, "layer", str, at)
        if "listing" in entry:
            listings[path] = field(entry, "listing", str, at)
        return path

    for i, entry in enumerate(req.closure):
        at = f"{where}: closure[{i}]"
        if not isinstance(entry, dict) or set(entry) - {"listing"} != {"info", "layer"}:
            raise UserError(f'must be {{"info": F, "layer": L}} (got {entry!r:.80})', where=at)
        add_layer(entry, at)
    for i, item in enumerate(req.contents):
        at = f"{where}: contents[{i}]"
        keys = set(item) - {"listing"} if isinstance(item, dict) else set()
        if keys == {"info", "layer", "join"} and item["join"] != "link":
            raise UserError(f'join must be "link" (got {item["join"]!r})', where=at)
        if keys not in ({"store_path", "src"}, {"info", "layer"}, {"info", "layer", "join"}):
            raise UserError(f"must be {_FORMS} (got {item!r:.80})", where=at)
        if "layer" in item:
            path = add_layer(item, at)
            items.append(_Content(path.rstrip("/"), "join" in item, at))
            continue
        if "listing" in item:
            raise UserError(f"must be {_FORMS} (got {item!r:.80})", where=at)
        src = Path(field(item, "src", str, at))
        store_path = field(item, "store_path", str, at)
        if not store_path.startswith("/"):
            raise UserError(
                f"store_path must be absolute (got {store_path!r}); "
                "write <store_dir>/<hash>-<name>",
                where=at,
            )
        if src.is_file():
            raise _single_file(store_path, at)
        if not src.is_dir():
            raise UserError(
                f"src is not a directory (got {str(src)!r}); pass the store path's content",
                where=at,
            )
        items.append(_Content(store_path.rstrip("/"), True, at, src))
    view = StoreView(layers, where, listings)
    for c in items:
        if c.src is None and view.members(c.store_path)[""].kind != DIR:
            raise _single_file(c.store_path, c.where)
    return items, view


def needs_directory(req: CustomizationLayerRequest) -> bool:
    """Whether commands run in the layer root, so that it must be a real directory."""
    return bool(req.extra_commands or req.fake_root_commands)


def _lay_out(
    req: CustomizationLayerRequest, where: str, fs: RootTree
) -> tuple[list[_Content], StoreView]:
    """The contents joined or copied at /, then `files`; the contents and their store view."""
    contents, view = _contents(req, where)
    copier = RootCopy(fs, view, req.keep_dirlinks)
    for c in contents:
        if not c.join:
            copier.copy(c.store_path, c.where)
        else:
            members = _tree_members(c.src) if c.src else view.members(c.store_path)
            link_join(fs, c.store_path, members, c.where)
    _place_files(req, where, fs)
    return contents, view


def plan_root(req: CustomizationLayerRequest, where: str) -> MemoryRoot:
    """The layer root in memory, for a request whose root needs no directory (no commands)."""
    fs = MemoryRoot(where)
    _lay_out(req, where, fs)
    return fs


def build_root(
    req: CustomizationLayerRequest, where: str, work: Path
) -> dict[str, tuple[int, int, int]] | None:
    """Lay out the layer root at `work/root`; return fakeroot's ownership view, if any."""
    root = work / "root"
    root.mkdir(mode=0o755)
    contents, view = _lay_out(req, where, Rootfs(root, where))
    extra = req.extra_commands
    if extra:
        run_commands(["/bin/sh", "-ec", extra], root, "extra_commands", where)
    fake = req.fake_root_commands
    chroot = req.enable_fakechroot
    if not fake:
        return None
    need_tool("fakeroot", "fakeroot", "fake_root_commands", where)
    if os.geteuid() == 0:
        need_tool("setpriv", "util-linux", "fake_root_commands as root", where)
    if chroot:
        need_tool("proot", "proot", "enable_fakechroot", where)
    binds = None
    if chroot:
        # Copies under `work`: the unprivileged uid may not be able to reach the inputs.
        binds = []
        for i, c in enumerate(contents):
            if c.join:
                normalize_dest(c.store_path, where)
                copy = work / "store" / str(i)
                if c.src is not None:
                    shutil.copytree(c.src, copy, symlinks=True)
                else:
                    copy.mkdir(parents=True)
                    RootCopy(copy, view, keep_dirlinks=True).copy(c.store_path, c.where)
                binds += ["-b", f"{copy}:{c.store_path}"]
    return run_fake_root(work, root, fake, binds, where)


def run(req: dict[str, Any], where: str) -> None:
    request = CustomizationLayerRequest.from_json(req, where)
    compressor = request.compressor
    output = request.output
    descriptor_path = request.descriptor
    owner = request.owner
    if not needs_directory(request):
        # Nothing runs in the root: join it in memory and write the layer from the plan,
        # content read where it lies (no tree of links made on disk and deleted).
        entries = plan_root(request, where).entries()
        descriptor = write_layer_from_entries(output, compressor, entries, owner)
        write_descriptor(descriptor_path, descriptor, output)
        return
    old_umask = os.umask(0o022)
    try:
        # Under the system temp dir, not beside the output: an unprivileged uid must reach it.
        with tempfile.TemporaryDirectory(prefix="strata-customization-") as tmp:
            work = Path(tmp)
            faked = build_root(request, where, work)
            entries = tree_entries(work / "root", owner, faked)
            descriptor = write_layer_from_entries(output, compressor, entries, owner)
    finally:
        os.umask(old_umask)
    write_descriptor(descriptor_path, descriptor, output)
