"""`strata action RunAsRoot @request.json`: dockerTools' runAsRoot without a VM.

nixpkgs runs `runAsRoot` in a KVM guest with the image's root filesystem
mounted, then diffs the result into one more layer. Here the root
filesystem (the base image's layers, then the given layers, whiteouts
applied) is unpacked into a private directory, the script runs in it under
`proot -r ROOT -0` (an unprivileged chroot: paths are translated by ptrace,
nothing is mounted), and the difference before/after becomes the layer:
new and changed entries (content, mode, owner, link target) with their
parent directories, deletions as `.wh.<name>` whiteouts. Applied on top of
the base, it gives what the script left.

The layers are untrusted: every member path is resolved inside ROOT as a
chroot would and written through directory descriptors that follow no link
(strata.oci.rootfs), so `x -> /` then `x/etc/passwd` writes the image's file
and a whiteout through a link deletes inside the image, never on the host.

Ownership: the unpacked tree carries the layers' real owners, and the
script's `chown` must stick so it can be recorded. proot's `-0` only
pretends for an unprivileged caller (chown becomes a no-op), and fakeroot's
LD_PRELOAD cannot reach programs inside the guest (static busybox, or a libc
that is not the host's), so the tree is written with real ownership, which
needs strata to run as root (as the Docker-based CI and Bazel's sandbox on
it do). The script still never runs with the host's root directory: it sees
only the private tree. Without root the action fails with that explanation
rather than silently dropping owners.

The request is `RunAsRootRequest` below.

Determinism: the script sees `PATH=/usr/sbin:/usr/bin:/sbin:/bin`,
`HOME=/root`, `LC_ALL=C`, umask 022; entries are sorted and stamped with
`mtime`; content is compared by hash, not by time.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import stat
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

from strata.actions.request import (
    Request,
    base_blobs,
    compressor_field,
    field,
    ownership,
    read_with,
)
from strata.errors import UserError
from strata.layering.plan_io import read_layers_dir
from strata.oci.base import Selector, load_base
from strata.oci.compress import open_decompressed, reading_layer
from strata.oci.layer import Ownership, write_descriptor, write_layer_from_entries
from strata.oci.rootfs import Rootfs
from strata.oci.tarwriter import check_id
from strata.oci.tree import BYTES, DIR, FILE, SYMLINK, Entry, sort_key
from strata.oci.whiteout import parse as parse_whiteout
from strata.oci.whiteout import whiteout_name

SCRIPT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LC_ALL": "C"}


@dataclass(frozen=True, kw_only=True)
class RunAsRootRequest(Request):
    compressor: str = compressor_field("gzip")
    """"none" | "gzip" | "zstd" (default "gzip")."""
    output: str
    """The layer blob."""
    descriptor: str
    """The layer's descriptor JSON."""
    script: str
    """Shell text, run as `/bin/sh -ec SCRIPT` inside the root filesystem."""
    owner: Ownership = read_with(ownership, keys=("mtime",))
    """`mtime`: time of every entry of the layer (default 1); owners are the script's."""
    base: dict[str, Any] | None = None
    """{"path": docker-archive or OCI layout, "name": "repo:tag"}."""
    layers: list[Any] = dataclass_field(default_factory=list)
    """[{"blob": path, "descriptor": path} or {"dir": LayerGroups output}] unpacked
    after the base, in order (docker_image's `run_as_root` passes its store path
    layers, customisation and Nix DB layers this way)."""
    base_blobs: list[Path] = read_with(base_blobs)
    """A shallow base's layer blobs (BaseBlobs outputs)."""


@dataclass(frozen=True)
class State:
    """What the diff compares for one entry."""

    kind: str
    mode: int
    uid: int
    gid: int
    content: str  # sha256 of a file, target of a symlink, "" for a directory
    size: int = 0


def apply_layer(root: Path, blob: str, where: str) -> None:
    """Unpack one layer blob over `root` as a container runtime does (whiteouts, owners).

    Every path is resolved inside `root` as a chroot would (strata.oci.rootfs):
    a layer's `x -> /` followed by `x/etc/passwd` writes the image's file.
    """
    fs = Rootfs(root, where)
    with (
        reading_layer(where),
        open_decompressed(blob) as f,
        tarfile.open(fileobj=f, mode="r|") as tar,
    ):
        for member in tar:
            parts = [p for p in member.name.split("/") if p not in ("", ".")]
            if ".." in parts:
                raise UserError(f"layer member escapes the root (got {member.name!r})", where=where)
            _check_member(member, where)
            name = "/".join(parts)
            wh = parse_whiteout(name) if parts else None
            if not parts or (wh is not None and wh.deletes_nothing):
                continue  # the root, or a whiteout of nothing
            at = f"{where}: {member.name}"
            owner = (check_id(member.uid, at), check_id(member.gid, at))
            mode = member.mode & 0o7777
            if wh is not None and wh.opaque:
                fs.clear(wh.parent)
            elif wh is not None:
                fs.remove(posixpath.join(wh.parent, wh.name))
            elif member.isdir():
                fs.mkdir(name, mode, owner)
            elif member.issym():
                fs.symlink(name, member.linkname, owner)
            elif member.islnk():
                fs.hardlink(name, member.linkname.lstrip("/"))
            elif member.isfile():
                src = tar.extractfile(member)
                if src is None:  # pragma: no cover - isfile() members have data
                    raise UserError(f"unreadable member (got {name!r})", where=where)
                fs.write(name, src, mode, owner)
            else:
                raise UserError(
                    f"special file in a layer (got {name!r}); "
                    "run_as_root unpacks only files, directories and links",
                    where=where,
                )


MAX_ID = 2**32 - 2
"""The largest uid/gid a file can have: (uid_t)-1 means "leave unchanged" to chown(2)."""


def _check_member(member: tarfile.TarInfo, where: str) -> None:
    """What the kernel cannot take: NUL in names, empty link targets, ids beyond uid_t."""
    if "\0" in member.name or "\0" in member.linkname:
        raise UserError(
            f"layer member name or link target holds a NUL byte (got {member.name!r}); "
            "the layer is malformed: rebuild it",
            where=where,
        )
    if member.issym() and not member.linkname:
        raise UserError(
            f"symlink with an empty target in a layer (got {member.name!r}); "
            "the layer is malformed: rebuild it",
            where=where,
        )
    for what, value in (("uid", member.uid), ("gid", member.gid)):
        if not 0 <= value <= MAX_ID:
            raise UserError(
                f"layer member {member.name!r} has a {what} out of range (got {value}); "
                f"ids go from 0 to {MAX_ID}: rebuild the layer",
                where=where,
            )


def snapshot(root: Path) -> dict[str, State]:
    out: dict[str, State] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                out[rel] = State(DIR, mode, st.st_uid, st.st_gid, "")
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = State(SYMLINK, 0o777, st.st_uid, st.st_gid, os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(path, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                out[rel] = State(FILE, mode, st.st_uid, st.st_gid, h.hexdigest(), st.st_size)
            else:
                out[rel] = State("special", mode, st.st_uid, st.st_gid, "")
    return out


def diff_entries(root: Path, before: dict[str, State], after: dict[str, State]) -> list[Entry]:
    """The layer that turns `before` into `after`: changes, their parents, whiteouts."""
    changed = {p for p, s in after.items() if before.get(p) != s}
    deleted = {p for p in before if p not in after or after[p].kind != before[p].kind}
    # below a deleted (or replaced) directory, one whiteout of the directory suffices
    top_deleted = {p for p in deleted if not any(p.startswith(d + "/") for d in deleted if d != p)}
    wanted = set(changed)
    for p in list(changed) + list(top_deleted):
        parent = posixpath.dirname(p)
        while parent:
            wanted.add(parent)
            parent = posixpath.dirname(parent)
    entries: list[Entry] = []
    for p in top_deleted:
        if p in after:  # replaced by another kind: the new entry hides the old one
            continue
        entries.append(Entry(whiteout_name(p), BYTES, 0o644))
    for p in wanted:
        s = after[p]
        if s.kind == "special":
            raise UserError(
                f"the script left a special file (got {p!r}); create only files, "
                "directories and symlinks",
                where="run_as_root",
            )
        if s.kind == DIR:
            entries.append(Entry(p, DIR, s.mode, uid=s.uid, gid=s.gid))
        elif s.kind == SYMLINK:
            entries.append(Entry(p, SYMLINK, 0o777, target=s.content, uid=s.uid, gid=s.gid))
        else:
            path = str(root / p)
            entries.append(Entry(p, FILE, s.mode, size=s.size, source=path, uid=s.uid, gid=s.gid))
    return sorted(entries, key=lambda e: sort_key(e.name))


def run_script(root: Path, script: str, where: str) -> None:
    if shutil.which("proot") is None:
        raise UserError(
            "run_as_root needs proot, which is not on PATH "
            f"(got PATH={os.environ.get('PATH', '')!r}); install the Debian package proot",
            where=where,
        )
    if Rootfs(root, where).lstat("bin/sh") is None:
        raise UserError(
            "the image has no /bin/sh to run the script with (got no bin/sh in the root "
            "filesystem); put a shell in the base or contents, e.g. bin_sh or busybox",
            where=where,
        )
    argv = ["proot", "-r", str(root), "-0", "-w", "/", "/bin/sh", "-ec", script]
    env = {**SCRIPT_ENV, "PROOT_NO_SECCOMP": "1"}
    res = subprocess.run(argv, env=env, capture_output=True, text=True, cwd="/")
    if res.returncode != 0:
        tail = " | ".join((res.stderr or res.stdout).strip().splitlines()[-3:])
        raise UserError(
            f"the run_as_root script failed (got exit status {res.returncode}: "
            f"{tail[-300:]!r}); fix the script",
            where=where,
        )


def run(req: dict[str, Any], where: str) -> None:
    request = RunAsRootRequest.from_json(req, where)
    compressor = request.compressor
    output = request.output
    script = request.script
    base_req = request.base
    layers = request.layers
    if os.geteuid() != 0:
        raise UserError(
            "run_as_root records the script's chown with real ownership in a private copy "
            f"of the root filesystem, which needs root (got uid {os.geteuid()}); run the build "
            "as root (e.g. in the CI container) or move ownership into fake_root_commands",
            where=where,
        )
    old_umask = os.umask(0o022)
    try:
        with tempfile.TemporaryDirectory(prefix="strata-run-as-root-") as tmp:
            work = Path(tmp)
            root = work / "root"
            root.mkdir(mode=0o755)
            blobs: list[str] = []
            if base_req is not None:
                selector = Selector(field(base_req, "name", str, where, ""))
                (work / "base").mkdir()
                base = load_base(
                    field(base_req, "path", str, where),
                    selector,
                    work / "base",
                    blob_dirs=request.base_blobs,
                )
                blobs += [str(b.path) for b in base.layers]
            for i, layer in enumerate(layers):
                if not isinstance(layer, dict):
                    raise UserError(
                        f"layers[{i}] must be an object (got {layer!r:.60}); "
                        'give {"blob": path} or {"dir": path}',
                        where=where,
                    )
                if "dir" in layer:
                    layers_dir = field(layer, "dir", str, f"{where}: layers[{i}]")
                    blobs += [str(f.blob) for f in read_layers_dir(layers_dir, where)]
                    continue
                blobs.append(field(layer, "blob", str, f"{where}: layers[{i}]"))
            for blob in blobs:
                apply_layer(root, blob, where)
            before = snapshot(root)
            run_script(root, script, where)
            entries = diff_entries(root, before, snapshot(root))
            descriptor = write_layer_from_entries(output, compressor, entries, request.owner)
    finally:
        os.umask(old_umask)
    write_descriptor(request.descriptor, descriptor, output)
