"""`strata action CustomizationLayer @request.json`: an image's customisation layer.

dockerTools.buildLayeredImage's top layer: the `contents` store paths joined
at `/` the way nixpkgs' `symlinkJoin` (lndir) does it — real directories,
every file a symlink into its store path, the first path to provide a name
wins — then `extra_commands` run in the layer root, then
`fake_root_commands` under fakeroot, so their chown/chmod are what the tar
records. The store paths themselves are not in this layer (they have their
own, see StoreLayer / LayerGroups).

Request (keys sorted; `schema_version` 1):

    contents            list, joined in order:
                          {"store_path": "/nix/store/<hash>-<name>", "src": dir}
                              symlink-joined: links point into store_path, src is its content
                          {"info": F, "src": dir}
                              as the first form, the store path read from a StorePath info
                              file (rules cannot know it: it is a content hash)
                          {"src": dir}   copied into the root (copyToRoot-style), merged
                          {"info": F, "layer": L}
                              copied as {"src"}, read from the store path's own layer L:
                              symlinks and modes as the path has them (a tree input is staged
                              by Bazel as files only, so a `lib -> usr/lib` link would be lost)
    files               Layer-action `contents` items (plain files by destination), placed
                        after the contents, before the commands ([])
    keep_dirlinks       bool (keepContentsDirlinks, default false): a copied directory
                        arriving at a symlink to a directory goes into the link's target
                        (resolved inside the layer root, as in the image: `lib -> /` is /)
    extra_commands      shell text, run by /bin/sh -e with the layer root as cwd ("")
    fake_root_commands  shell text, run under fakeroot with the layer root as cwd ("")
    enable_fakechroot   bool (default false): run fake_root_commands chrooted in the
                        layer root with `proot -r ROOT -0`, each contents store path
                        bound at its store path; /bin/sh must then be in the layer
    compressor          "none" | "gzip" | "zstd" (default "gzip")
    output, descriptor  the layer blob and its descriptor JSON (the Layer action's contract)
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
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from strata.actions.layer import ownership, plan_tree
from strata.actions.request import field
from strata.actions.store_path import read_info
from strata.errors import UserError
from strata.oci.compress import check_compressor, open_decompressed
from strata.oci.layer import Ownership, write_descriptor, write_layer_from_entries
from strata.oci.rootfs import Rootfs
from strata.oci.tree import DIR, FILE, SYMLINK, Entry, normalize_dest, sort_key

COMMAND_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/homeless-shelter", "LC_ALL": "C"}
NOBODY = 65534
_KEYS = {
    "compressor",
    "contents",
    "descriptor",
    "enable_fakechroot",
    "extra_commands",
    "fake_root_commands",
    "files",
    "gid",
    "gname",
    "keep_dirlinks",
    "mtime",
    "output",
    "schema_version",
    "uid",
    "uname",
}
# find's view of each entry, NUL-separated: path, uid, gid, permission bits, type.
_LISTING_FORMAT = r"%P\0%U\0%G\0%m\0%y\0"


def _link_join(src: Path, dest: Path, target: str) -> None:
    """lndir: mirror directories, symlink everything else; an existing name is kept."""
    for child in sorted(os.listdir(src)):
        s = src / child
        d = dest / child
        if s.is_dir() and not s.is_symlink():
            if not d.exists() and not d.is_symlink():
                d.mkdir(mode=0o755)
            if d.is_dir() and not d.is_symlink():
                _link_join(s, d, f"{target}/{child}")
        elif not d.exists() and not d.is_symlink():
            os.symlink(f"{target}/{child}", d)


def _is_input_link(path: Path) -> bool:
    """A link Bazel's or strata's sandbox made for an input file (see strata.oci.tree)."""
    target = os.readlink(path)
    rel = os.path.relpath(os.path.abspath(path), os.getcwd())
    return target.startswith("/") and not rel.startswith("..") and target.endswith("/" + rel)


def _dirlink_target(root: Path, link: Path) -> Path | None:
    """The directory inside `root` a symlink points at, if it is one.

    Resolved as inside a chroot (strata.oci.rootfs): `lib -> /` is the root
    itself and `..` stops there, so the copy never leaves the layer root.
    """
    fs = Rootfs(root, "keep_dirlinks")
    rel = link.relative_to(root).as_posix()
    st = fs.lstat(rel, follow_last=True)
    if st is None or not stat.S_ISDIR(st.st_mode):
        return None
    return fs.path(fs.resolve(rel, follow_last=True))


def _copy_into(src: Path, dest: Path, root: Path, keep_dirlinks: bool) -> None:
    """Copy a tree, merging into existing directories and replacing files."""
    for child in sorted(os.listdir(src)):
        s = src / child
        d = dest / child
        s_link = s.is_symlink() and not _is_input_link(s)
        if s.is_dir() and not s_link:
            if keep_dirlinks and d.is_symlink():
                linked = _dirlink_target(root, d)
                if linked is not None:
                    _copy_into(s, linked, root, keep_dirlinks)
                    continue
            if d.is_symlink() or (d.exists() and not d.is_dir()):
                d.unlink()
            d.mkdir(mode=0o755, exist_ok=True)
            _copy_into(s, d, root, keep_dirlinks)
            os.chmod(d, stat.S_IMODE(os.stat(s).st_mode) | 0o200)
            continue
        if d.is_dir() and not d.is_symlink():
            shutil.rmtree(d)
        elif d.exists() or d.is_symlink():
            d.unlink()
        if s_link:
            os.symlink(os.readlink(s), d)
        else:
            shutil.copyfile(s, d)
            os.chmod(d, stat.S_IMODE(os.stat(s).st_mode) | 0o200)


def _place_files(req: dict[str, Any], where: str, root: Path) -> None:
    """`files`: plain files (Layer-action contents items) at their destinations.

    Their parents are resolved inside the root (strata.oci.rootfs): a content
    link `etc -> /etc` makes `etc/motd` land in the layer's /etc.
    """
    items = field(req, "files", list, where, [])
    if not items:
        return
    fs = Rootfs(root, f"{where}: files")
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
            with open(e.source, "rb") as src:
                fs.write(e.name, src, e.mode)
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


def _unpack_store_layer(layer: str, store_path: str, dest: Path, where: str) -> None:
    """The content of `store_path` from its own layer, symlinks and modes kept."""
    prefix = store_path.strip("/")
    fs = Rootfs(dest, where)
    dirs: list[tuple[str, int]] = []
    found = False
    with open_decompressed(layer) as f, tarfile.open(fileobj=f, mode="r|") as tar:
        for member in tar:
            name = member.name.strip("/")
            if name != prefix and not name.startswith(prefix + "/"):
                continue
            rel = name[len(prefix) + 1 :]
            found = True
            if not rel:
                if not member.isdir():
                    raise _single_file(store_path, where)
                continue
            if ".." in rel.split("/"):
                raise UserError(f"layer member escapes its store path (got {name!r})", where=where)
            if member.isdir():
                fs.mkdir(rel)
                dirs.append((rel, member.mode & 0o7777))
            elif member.issym():
                fs.symlink(rel, member.linkname)
            elif member.isfile():
                src = tar.extractfile(member)
                if src is None:  # pragma: no cover - isfile() members have data
                    raise UserError(f"unreadable layer member (got {name!r})", where=where)
                fs.write(rel, src, member.mode & 0o7777)
            else:
                raise UserError(
                    f"unsupported member in a store path layer (got {name!r}); store paths "
                    "hold files, directories and symlinks",
                    where=where,
                )
    if not found:
        raise UserError(
            f"the layer does not hold the store path (got {store_path} not in {layer}); pass "
            "the path's own layer (StorePathInfo.layer)",
            where=where,
        )
    for d, mode in reversed(dirs):
        fs.chmod(d, mode | 0o700)


def _contents(req: dict[str, Any], where: str, work: Path) -> list[tuple[str | None, Path]]:
    items: list[tuple[str | None, Path]] = []
    for i, item in enumerate(field(req, "contents", list, where, [])):
        at = f"{where}: contents[{i}]"
        keys = set(item) if isinstance(item, dict) else set()
        if not isinstance(item, dict) or not (
            keys <= {"src", "store_path"} or keys in ({"src", "info"}, {"info", "layer"})
        ):
            raise UserError(
                f'must be {{"store_path": P, "src": DIR}}, {{"info": F, "src": DIR}}, '
                f'{{"info": F, "layer": L}} or {{"src": DIR}} (got {item!r:.80})',
                where=at,
            )
        if "layer" in item:
            path = read_info(field(item, "info", str, at), at)["path"]
            copy = work / "layers" / str(i)
            copy.mkdir(parents=True)
            _unpack_store_layer(field(item, "layer", str, at), path, copy, at)
            items.append((None, copy))
            continue
        src = Path(field(item, "src", str, at))
        store_path = field(item, "store_path", (str, type(None)), at, None)
        if "info" in item:
            store_path = read_info(field(item, "info", str, at), at)["path"]
        if store_path is not None and not store_path.startswith("/"):
            raise UserError(
                f"store_path must be absolute (got {store_path!r}); "
                "write <store_dir>/<hash>-<name>",
                where=at,
            )
        if src.is_file():
            raise _single_file(store_path or src.name, at)
        if not src.is_dir():
            raise UserError(
                f"src is not a directory (got {str(src)!r}); pass the store path's content",
                where=at,
            )
        items.append((store_path.rstrip("/") if store_path else None, src))
    return items


def _need(tool: str, package: str, why: str, where: str) -> None:
    if shutil.which(tool) is None:
        raise UserError(
            f"{why} needs {tool}, which is not on PATH (got PATH={os.environ.get('PATH', '')!r});"
            f" install the Debian package {package}",
            where=where,
        )


def _run(argv: list[str], cwd: Path, what: str, where: str) -> None:
    env = {**COMMAND_ENV, "out": str(cwd)}
    res = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        tail = " | ".join((res.stderr or res.stdout).strip().splitlines()[-3:])
        raise UserError(
            f"{what} failed (got exit status {res.returncode}: {tail[-300:]!r}); fix {what}",
            where=where,
        )


def _drop_privileges(root: Path) -> list[str]:
    """As root, hand the work tree to nobody and return the setpriv prefix; else nothing."""
    if os.geteuid() != 0:
        return []
    for dirpath, dirnames, filenames in os.walk(root):
        os.lchown(dirpath, NOBODY, NOBODY)
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), NOBODY, NOBODY)
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def _fake_root(
    work: Path, root: Path, commands: str, chroot_binds: list[str] | None, where: str
) -> dict[str, tuple[int, int, int]]:
    """Run `commands` under fakeroot; return {name: (uid, gid, mode)} as fakeroot saw them."""
    listing = work / "listing"
    script = work / "commands.sh"
    script.write_text(commands)
    os.chmod(script, 0o644)
    prefix = _drop_privileges(work)
    if chroot_binds is not None:
        run_cmds = ["proot", "-r", str(root), "-0", "-w", "/", *chroot_binds]
        run_cmds += ["/bin/sh", "-ec", commands]
    else:
        run_cmds = ["/bin/sh", "-e", str(script)]
    shell = '"$@" && find "$ROOT" -fprintf "$LISTING" "$FORMAT"'
    argv = [*prefix, "fakeroot", "-s", str(work / "state"), "--", "/bin/sh", "-c", shell, "sh"]
    extra_env = {"ROOT": str(root), "LISTING": str(listing), "FORMAT": _LISTING_FORMAT}
    env = {**COMMAND_ENV, "out": str(root), **extra_env}
    res = subprocess.run([*argv, *run_cmds], cwd=root, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        tail = " | ".join((res.stderr or res.stdout).strip().splitlines()[-3:])
        raise UserError(
            f"fake_root_commands failed (got exit status {res.returncode}: {tail[-300:]!r}); "
            "fix fake_root_commands",
            where=where,
        )
    fields = listing.read_bytes().split(b"\0")
    seen: dict[str, tuple[int, int, int]] = {}
    for i in range(0, len(fields) - 4, 5):
        name = os.fsdecode(fields[i])
        seen[name] = (int(fields[i + 1]), int(fields[i + 2]), int(fields[i + 3], 8))
    return seen


def _entries(
    root: Path, owner: Ownership, faked: dict[str, tuple[int, int, int]] | None
) -> list[Entry]:
    """The layer's entries from the tree on disk, with faked ownership where there is some."""
    out: list[Entry] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            mode = stat.S_IMODE(st.st_mode)
            uid = gid = None
            if faked is not None and rel in faked:
                f_uid, f_gid, mode = faked[rel]
                if (f_uid, f_gid) != (0, 0):
                    uid, gid = f_uid, f_gid
            if stat.S_ISDIR(st.st_mode):
                out.append(Entry(rel, DIR, mode, uid=uid, gid=gid))
            elif stat.S_ISREG(st.st_mode):
                out.append(Entry(rel, FILE, mode, size=st.st_size, source=path, uid=uid, gid=gid))
            elif stat.S_ISLNK(st.st_mode):
                out.append(Entry(rel, SYMLINK, 0o777, target=os.readlink(path), uid=uid, gid=gid))
            else:
                raise UserError(
                    f"the commands left a special file in the layer (got {rel!r}, mode "
                    f"{oct(st.st_mode)}); create only files, directories and symlinks",
                    where="customization layer",
                )
    return sorted(out, key=lambda e: sort_key(e.name))


def build_root(
    req: dict[str, Any], where: str, work: Path
) -> dict[str, tuple[int, int, int]] | None:
    """Lay out the layer root at `work/root`; return fakeroot's ownership view, if any."""
    root = work / "root"
    root.mkdir(mode=0o755)
    contents = _contents(req, where, work)
    keep_dirlinks = field(req, "keep_dirlinks", bool, where, False)
    for store_path, src in contents:
        if store_path is None:
            _copy_into(src, root, root, keep_dirlinks)
        else:
            _link_join(src, root, store_path)
    _place_files(req, where, root)
    extra = field(req, "extra_commands", str, where, "")
    if extra:
        _run(["/bin/sh", "-ec", extra], root, "extra_commands", where)
    fake = field(req, "fake_root_commands", str, where, "")
    chroot = field(req, "enable_fakechroot", bool, where, False)
    if not fake:
        return None
    _need("fakeroot", "fakeroot", "fake_root_commands", where)
    if os.geteuid() == 0:
        _need("setpriv", "util-linux", "fake_root_commands as root", where)
    if chroot:
        _need("proot", "proot", "enable_fakechroot", where)
    binds = None
    if chroot:
        # Copies under `work`: the unprivileged uid may not be able to reach the inputs.
        binds = []
        for i, (store_path, src) in enumerate(contents):
            if store_path is not None:
                normalize_dest(store_path, where)
                copy = work / "store" / str(i)
                shutil.copytree(src, copy, symlinks=True)
                binds += ["-b", f"{copy}:{store_path}"]
    return _fake_root(work, root, fake, binds, where)


def run(req: dict[str, Any], where: str) -> None:
    for key in req:
        if key not in _KEYS:
            raise UserError(
                f"unknown request key (got {key!r}); allowed keys: {', '.join(sorted(_KEYS))}",
                where=where,
            )
    compressor = check_compressor(field(req, "compressor", str, where, "gzip"), where)
    output = field(req, "output", str, where)
    descriptor_path = field(req, "descriptor", str, where)
    owner = ownership(req, where)
    old_umask = os.umask(0o022)
    try:
        # Under the system temp dir, not beside the output: an unprivileged uid must reach it.
        with tempfile.TemporaryDirectory(prefix="strata-customization-") as tmp:
            work = Path(tmp)
            faked = build_root(req, where, work)
            entries = _entries(work / "root", owner, faked)
            descriptor = write_layer_from_entries(output, compressor, entries, owner)
    finally:
        os.umask(old_umask)
    write_descriptor(descriptor_path, descriptor, output)
