"""An executable's runfiles tree, laid out as Bazel 4.2.3 lays it out for `bazel run`.

    <exe>.runfiles/
      MANIFEST                           "<runfiles path> <real path>" lines, sorted
      <workspace>/<pkg>/<file>           files of the main repository (and its outputs)
      <repo>/<pkg>/<file>                files of external repository <repo>
      <workspace>/external/<repo>/...    the same again (Bazel 4's --legacy_external_runfiles)
    <exe>.runfiles_manifest              a copy of MANIFEST

Every entry is a symlink to the real file: a source file where it lives (the
workspace, a `local_repository` directory, a repository rule's output in the
output base) or an output in the execroot. The program runs with its working
directory at `<exe>.runfiles/<workspace>`, so `File.short_path` resolves
(`../<repo>/...` for external files). See
https://bazel.build/extending/rules#runfiles_location.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from strata.engine.analysis.graph import is_generated

MANIFEST = "MANIFEST"


def root_relative(execroot_path: str) -> str:
    """An execroot path without its output root (`bazel-out/<config>/bin/`), if any.

    Any configuration's: a tool built in the host configuration lives under
    `bazel-out/host/bin`, and its runfiles paths drop that root as well.
    """
    parts = execroot_path.split("/", 3)
    if len(parts) == 4 and parts[0] == "bazel-out" and parts[2] == "bin":
        return parts[3]
    return execroot_path


def runfiles_paths(execroot_path: str, workspace_name: str, bin_dir: str = "") -> list[str]:
    """Where an execroot file appears under `<exe>.runfiles/` (two places for external files).

    `bin_dir` is accepted for old callers; the output root of any configuration is dropped.
    """
    p = root_relative(execroot_path)
    if p.startswith("external/"):
        return [p[len("external/") :], f"{workspace_name}/{p}"]
    return [f"{workspace_name}/{p}"]


def runfiles_entries(
    files: Iterable[str],
    workspace_name: str,
    bin_dir: str,
    execroot: Path,
    source_path: Callable[[str], Path],
) -> dict[str, Path]:
    """{runfiles path: real file} for execroot paths `files`."""
    entries: dict[str, Path] = {}
    for f in sorted(set(files)):
        real = execroot / f if is_generated(f) else source_path(f)
        for rel in runfiles_paths(f, workspace_name, bin_dir):
            entries[rel] = real
    return entries


def lay_out_runfiles(
    execroot: Path,
    executable: str,
    runfiles: Iterable[str],
    workspace_name: str,
    bin_dir: str,
    source_path: Callable[[str], Path],
) -> Path:
    """Lay out the runfiles tree of `executable` (execroot path) and return the tree.

    The executable is part of its own runfiles, as in Bazel. `build` and `run`
    both call this: Bazel's `--build_runfile_links` (on by default) makes the
    tree of every requested executable.
    """
    files = sorted(set(runfiles) | {executable})
    exe = execroot / executable
    tree = exe.parent / (exe.name + ".runfiles")
    lay_out(tree, runfiles_entries(files, workspace_name, bin_dir, execroot, source_path))
    (tree / workspace_name).mkdir(parents=True, exist_ok=True)
    return tree


def lay_out(tree: Path, entries: dict[str, Path]) -> None:
    """Make `tree` hold exactly `entries` (as symlinks) and the MANIFEST files.

    Links that are already right stay; anything else in the tree is removed,
    so a file dropped from the runfiles does not linger from an earlier run.
    """
    wanted = {tree / rel: str(real) for rel, real in entries.items()}
    dirs: set[str] = set()
    for rel in entries:
        parent = rel.rpartition("/")[0]
        while parent and parent not in dirs:
            dirs.add(parent)
            parent = parent.rpartition("/")[0]
    wanted_dirs = {tree / d for d in dirs}
    if tree.is_dir() and not tree.is_symlink():
        for dirpath, dirnames, filenames in os.walk(tree, topdown=True):
            here = Path(dirpath)
            for name in list(dirnames):
                p = here / name
                if p.is_symlink() or p not in wanted_dirs:
                    dirnames.remove(name)
                    _remove(p, keep=wanted.get(p))
            for name in filenames:
                p = here / name
                if p.parent == tree and name == MANIFEST:
                    continue
                _remove(p, keep=wanted.get(p))
    elif tree.exists() or tree.is_symlink():
        tree.unlink()
    for link, real in sorted(wanted.items()):
        if link.is_symlink() and os.readlink(link) == real:
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_dir() and not link.is_symlink():
            shutil.rmtree(link)
        elif link.exists() or link.is_symlink():
            link.unlink()
        os.symlink(real, link)
    manifest = "".join(f"{rel} {real}\n" for rel, real in sorted(entries.items()))
    tree.mkdir(parents=True, exist_ok=True)
    _write_if_changed(tree / MANIFEST, manifest)
    _write_if_changed(tree.with_name(tree.name + "_manifest"), manifest)


def _remove(p: Path, *, keep: str | None) -> None:
    """Remove `p` unless it is already the symlink to `keep`."""
    if p.is_symlink():
        if keep is not None and os.readlink(p) == keep:
            return
        p.unlink()
    elif p.is_dir():
        shutil.rmtree(p)
    elif p.exists():
        p.unlink()


def _write_if_changed(path: Path, text: str) -> None:
    try:
        if not path.is_symlink() and path.read_text() == text:
            return
    except OSError:
        pass
    if path.is_symlink() or path.exists():
        path.unlink()
    path.write_text(text)
