"""`strata action Customisation @request.json`: an image's own top layer.

dockerTools' customisation layer: the `contents` store paths joined at `/`
(symlinks into the store, like `buildEnv`; or copied, as buildImage's
`copyToRoot` does), plain files placed by path, then `extra_commands` run by
`/bin/sh` in the layer root. What the root holds afterwards is the layer.

Request (keys sorted; `schema_version` 1):

    contents        [{"info": StorePath info, "tree": StorePath tree}] joined at /
    copy_contents   bool: copy the store paths' files instead of symlinking (default false)
    files           Layer-action `contents` items, placed after the join
    extra_commands  shell text run with the root as working directory ("" for none)
    keep_dirlinks, compressor, output, descriptor, uid, gid, uname, gname, mtime
                    as for the Layer action

The commands run with umask 022, `PATH=/usr/bin:/bin`, `HOME=/homeless-shelter`
(as Nix builders do) and `out` set to the root, so their results do not depend
on the caller's environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from strata.actions.layer import ownership, plan_tree
from strata.actions.request import field
from strata.actions.store_path import deref_inputs, read_info
from strata.canonical import json_bytes
from strata.errors import UserError
from strata.fsutil import write_bytes_atomic
from strata.oci.compress import check_compressor
from strata.oci.layer import write_layer_from_entries
from strata.oci.tree import LayerTree

COMMAND_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/homeless-shelter", "LC_ALL": "C"}


def _input_link(path: Path, suffix: str) -> bool:
    """Is `path` the engine's link to an input file (not a symlink inside the store path)?

    Bazel's sandbox and strata's execroot present each input file as an
    absolute symlink to the real file, whose path ends like the entry's own.
    """
    target = os.readlink(path)
    name = suffix.split("/", 1)[1] if "/" in suffix else suffix
    return os.path.isabs(target) and os.path.realpath(path).endswith("/" + name)


def _join(src: Path, dest: Path, store_path: str, rel: str, copy: bool, where: str) -> None:
    """buildEnv: symlink files, merge directories (later paths never replace earlier files)."""
    for child in sorted(os.listdir(src)):
        s = src / child
        d = dest / child
        target = f"{store_path}/{rel}{child}"
        if s.is_dir() and not s.is_symlink():
            if d.is_symlink():
                continue
            d.mkdir(exist_ok=True)
            _join(s, d, store_path, f"{rel}{child}/", copy, where)
        elif d.exists() or d.is_symlink():
            continue
        elif copy:
            if s.is_symlink() and not _input_link(
                s, f"{store_path.rsplit('/', 1)[1]}/{rel}{child}"
            ):
                os.symlink(os.readlink(s), d)
            else:
                shutil.copyfile(s, d)
                os.chmod(d, 0o755 if os.stat(s).st_mode & 0o111 else 0o644)
        else:
            os.symlink(target, d)


def build_root(req: dict[str, Any], where: str, root: Path) -> None:
    copy = field(req, "copy_contents", bool, where, False)
    for i, item in enumerate(field(req, "contents", list, where, [])):
        at = f"{where}: contents[{i}]"
        info = read_info(field(item, "info", str, at), at)
        name = info["path"].rsplit("/", 1)[1].split("-", 1)[1]
        content = Path(field(item, "tree", str, at)) / name
        if content.is_dir():
            _join(content, root, info["path"], "", copy, at)
    files = deref_inputs(field(req, "files", list, where, []))
    if files:
        tree = plan_tree({"contents": files}, where)
        for e in tree.entries():
            dest = root / e.name
            if e.kind == "dir":
                dest.mkdir(parents=True, exist_ok=True)
                os.chmod(dest, e.mode)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.is_symlink() or dest.is_file():
                dest.unlink()
            if e.kind == "symlink":
                os.symlink(e.target, dest)
            elif e.kind == "file":
                shutil.copyfile(e.source, dest)
                os.chmod(dest, e.mode)
            else:
                dest.write_bytes(e.data)
                os.chmod(dest, e.mode)
    commands = field(req, "extra_commands", str, where, "")
    if commands:
        env = {**COMMAND_ENV, "out": str(root)}
        res = subprocess.run(
            ["/bin/sh", "-ec", commands], cwd=root, env=env, capture_output=True, text=True
        )
        if res.returncode != 0:
            raise UserError(
                f"extra_commands failed (got exit {res.returncode}: "
                f"{(res.stderr or res.stdout).strip()[-400:]}); fix the commands",
                where=where,
            )


def run(req: dict[str, Any], where: str) -> None:
    compressor = check_compressor(field(req, "compressor", str, where, "gzip"), where)
    output = field(req, "output", str, where)
    descriptor_path = field(req, "descriptor", str, where)
    owner = ownership(req, where)
    parent = Path(output).parent
    parent.mkdir(parents=True, exist_ok=True)
    old = os.umask(0o022)
    try:
        with tempfile.TemporaryDirectory(prefix=".customisation-", dir=parent) as tmp:
            root = Path(tmp) / "root"
            root.mkdir()
            build_root(req, where, root)
            tree = LayerTree(keep_dirlinks=field(req, "keep_dirlinks", bool, where, False))
            for child in sorted(os.listdir(root)):
                tree.add_path(root / child, child)
            descriptor = write_layer_from_entries(output, compressor, tree.entries(), owner)
    finally:
        os.umask(old)
    try:
        write_bytes_atomic(descriptor_path, json_bytes(descriptor.to_json()))
    except BaseException:
        os.unlink(output)
        raise
