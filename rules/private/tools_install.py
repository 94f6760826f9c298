"""Installs the strata tool's pinned wheels into a repository, once per machine.

Run by `strata_dependencies()` (rules/repositories.bzl) with the interpreter
the tool will use, standard library only. `pip install --require-hashes` of
the lock file goes into a shared cache directory keyed by the lock file's
bytes and the interpreter, as Bazel's repository cache keys downloads by
their hash; every new output base or workspace then gets hard links to that
one install (a copy where links cannot be made) instead of a new pip run.

An entry is complete only when its MANIFEST (sha256, size and mode of every
file) is there: it is written inside a temporary directory that is then
renamed into place, so a crash or a concurrent install never leaves half an
entry under its key. Each use checks every file against the MANIFEST; an
entry that does not match (someone edited a file through a hard link, a disk
error) is moved aside and installed again.

    tools_install.py --lock LOCK --dest SITE [--cache DIR]

Exit 0: SITE holds the install; stdout says `hit`, `installed` or
`reinstalled`. Exit 1: one line on stderr, then pip's own output if pip failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FORMAT = "strata-tools-cache-1"
MANIFEST = "MANIFEST.json"


class Failed(Exception):
    """Install failed: the message, then what pip printed (may be empty)."""


def cache_key(lock: bytes) -> str:
    """The lock file's bytes and everything about the interpreter a wheel depends on."""
    h = hashlib.sha256()
    for part in (
        FORMAT.encode(),
        lock,
        sys.version.encode(),
        sys.implementation.cache_tag.encode(),
        platform.machine().encode(),
        os.path.realpath(sys.executable).encode(),
    ):
        h.update(len(part).to_bytes(8, "big") + part)
    return h.hexdigest()


def pip_install(lock: Path, site: Path) -> None:
    """`pip install --require-hashes` of every wheel of `lock` into `site` (a new directory)."""
    with tempfile.TemporaryDirectory(prefix="pip-", dir=site.parent) as tmp:
        venv = Path(tmp) / "pip"
        res = subprocess.run(
            [sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, check=False
        )
        if res.returncode != 0:
            raise Failed(f"'{sys.executable} -m venv' failed; install python3-venv", res.stderr)
        res = subprocess.run(
            [
                str(venv / "bin" / "python"),
                *("-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input"),
                *("--require-hashes", "--no-deps", "--only-binary=:all:"),
                *("--target", str(site), "-r", str(lock)),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if res.returncode != 0:
            raise Failed(
                f"pip install --require-hashes -r {lock} failed (got exit {res.returncode}); "
                "fix the package index configuration (pip config list) or the lock file",
                res.stderr,
            )
    shutil.rmtree(site / "bin", ignore_errors=True)


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest(site: Path) -> dict[str, list[object]]:
    """{relative path: [sha256, size, mode]} for files, {path: ["link", target]} for links."""
    out: dict[str, list[object]] = {}
    for dirpath, dirnames, filenames in os.walk(site):
        dirnames.sort()
        for name in sorted(filenames) + [d for d in dirnames if os.path.islink(f"{dirpath}/{d}")]:
            p = Path(dirpath, name)
            rel = p.relative_to(site).as_posix()
            if p.is_symlink():
                out[rel] = ["link", os.readlink(p)]
            else:
                st = p.stat()
                out[rel] = [file_digest(p), st.st_size, st.st_mode & 0o777]
    return out


def matches(entry: Path) -> bool:
    """Whether entry/site is exactly what entry's MANIFEST recorded."""
    try:
        recorded = json.loads((entry / MANIFEST).read_text())
        return recorded.get("format") == FORMAT and recorded["files"] == manifest(entry / "site")
    except (OSError, ValueError, KeyError, AttributeError):
        return False


def populate(cache: Path, key: str, lock: Path) -> tuple[Path, str]:
    """The complete, checked cache entry for `key`, installing it if needed."""
    entry = cache / key
    how = "installed"
    if entry.exists():
        if matches(entry):
            return entry, "hit"
        # Moved aside first: renaming is atomic, removing a tree is not.
        aside = Path(tempfile.mkdtemp(prefix=f".bad-{key[:12]}-", dir=cache))
        os.rename(entry, aside / "entry")
        shutil.rmtree(aside, ignore_errors=True)
        how = "reinstalled"
    tmp = Path(tempfile.mkdtemp(prefix=f".new-{key[:12]}-", dir=cache))
    try:
        pip_install(lock, tmp / "site")
        files = manifest(tmp / "site")
        (tmp / MANIFEST).write_text(json.dumps({"format": FORMAT, "files": files}, sort_keys=True))
        try:
            os.rename(tmp, entry)
        except OSError:
            if not matches(entry):  # a concurrent install won only if its entry is whole
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return entry, how


def link_tree(src: Path, dest: Path) -> None:
    """dest as a copy of src made of hard links (copies across file systems)."""
    for dirpath, dirnames, filenames in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        (dest / rel).mkdir(parents=True, exist_ok=True)
        for name in filenames + [d for d in dirnames if os.path.islink(f"{dirpath}/{d}")]:
            s, d = Path(dirpath, name), dest / rel / name
            if s.is_symlink():
                os.symlink(os.readlink(s), d)
                continue
            try:
                os.link(s, d)
            except OSError:
                shutil.copy2(s, d)
        dirnames[:] = [d for d in dirnames if not os.path.islink(f"{dirpath}/{d}")]


def install(lock: Path, dest: Path, cache: Path | None) -> str:
    if dest.exists():
        shutil.rmtree(dest)
    if cache is None:
        pip_install(lock, dest)
        return "installed"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(prefix=".probe-", dir=cache)
        os.rmdir(probe)
    except OSError:  # a read-only or foreign cache directory: install here, share nothing
        pip_install(lock, dest)
        return "installed"
    entry, how = populate(cache, cache_key(lock.read_bytes()), lock)
    link_tree(entry / "site", dest)
    return how


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lock", type=Path, required=True)
    ap.add_argument("--dest", type=Path, required=True)
    ap.add_argument("--cache", default="", help="shared cache directory ('' shares nothing)")
    args = ap.parse_args(argv)
    try:
        how = install(args.lock, args.dest, Path(args.cache) if args.cache else None)
    except Failed as e:
        message, output = e.args
        print(message, file=sys.stderr)
        if output.strip():
            print(output.rstrip(), file=sys.stderr)
        return 1
    print(how)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
