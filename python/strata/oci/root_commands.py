"""Shell commands run in a layer's root directory, and the layer entries they leave.

What a customisation layer's `extra_commands` and `fake_root_commands` need
(strata.actions.customization_layer): the commands see `PATH=/usr/bin:/bin`,
`HOME=/homeless-shelter`, `LC_ALL=C` and `out` = the root, as Nix builders do.
fake_root_commands run under fakeroot, whose view of ownership and modes is
read back with `find -printf` in the same session; as real root they run as
nobody (setpriv), since fakeroot fakes only for a caller that is not root.
The tree on disk then becomes sorted layer entries, with the faked owners.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
from pathlib import Path

from strata.errors import UserError
from strata.oci.layer import Ownership
from strata.oci.tree import DIR, FILE, SYMLINK, Entry, sort_key

COMMAND_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/homeless-shelter", "LC_ALL": "C"}


NOBODY = 65534


# find's view of each entry, NUL-separated: path, uid, gid, permission bits, type.
_LISTING_FORMAT = r"%P\0%U\0%G\0%m\0%y\0"


def need_tool(tool: str, package: str, why: str, where: str) -> None:
    if shutil.which(tool) is None:
        raise UserError(
            f"{why} needs {tool}, which is not on PATH (got PATH={os.environ.get('PATH', '')!r});"
            f" install the Debian package {package}",
            where=where,
        )


def run_commands(argv: list[str], cwd: Path, what: str, where: str) -> None:
    env = {**COMMAND_ENV, "out": str(cwd)}
    res = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        tail = " | ".join((res.stderr or res.stdout).strip().splitlines()[-3:])
        raise UserError(
            f"{what} failed (got exit status {res.returncode}: {tail[-300:]!r}); fix {what}",
            where=where,
        )


def _drop_privileges(root: Path) -> tuple[list[str], dict[str, str]]:
    """As root, a prefix (and environment) that runs the commands as a user fakeroot fakes for.

    Real root hands the work tree to nobody and runs them under `setpriv`. Root
    in a user namespace that maps no other id (Bazel's linux-sandbox run as
    root) cannot chown to nobody (EINVAL): the commands then run in a nested
    user namespace of their own (`unshare --user`), where they are an unmapped
    user owning the tree, and fakeroot is told not to try the real chown,
    which would fail there for the same reason.
    """
    if os.geteuid() != 0:
        return [], {}
    try:
        for dirpath, dirnames, filenames in os.walk(root):
            os.lchown(dirpath, NOBODY, NOBODY)
            for name in dirnames + filenames:
                os.lchown(os.path.join(dirpath, name), NOBODY, NOBODY)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        return ["unshare", "--user"], {"FAKEROOTDONTTRYCHOWN": "1"}
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"], {}


def run_fake_root(
    work: Path, root: Path, commands: str, chroot_binds: list[str] | None, where: str
) -> dict[str, tuple[int, int, int]]:
    """Run `commands` under fakeroot; return {name: (uid, gid, mode)} as fakeroot saw them."""
    listing = work / "listing"
    script = work / "commands.sh"
    script.write_text(commands)
    os.chmod(script, 0o644)
    prefix, drop_env = _drop_privileges(work)
    if chroot_binds is not None:
        run_cmds = ["proot", "-r", str(root), "-0", "-w", "/", *chroot_binds]
        run_cmds += ["/bin/sh", "-ec", commands]
    else:
        run_cmds = ["/bin/sh", "-e", str(script)]
    shell = '"$@" && find "$ROOT" -fprintf "$LISTING" "$FORMAT"'
    argv = [*prefix, "fakeroot", "-s", str(work / "state"), "--", "/bin/sh", "-c", shell, "sh"]
    extra_env = {"ROOT": str(root), "LISTING": str(listing), "FORMAT": _LISTING_FORMAT}
    env = {**COMMAND_ENV, "out": str(root), **extra_env, **drop_env}
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


def tree_entries(
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
