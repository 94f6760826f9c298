"""`glob()`: the files of a package that match a pattern, found with as little walking as can be.

Patterns are Bazel's: `*` and `?` within one path segment, `**` for any number
of segments. A glob never enters a subpackage or a symlinked directory, and
every name it finds is recorded (`Package.listed`) so the analysis cache sees
the listing and the name needs no `stat` to become a source file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from strata.engine.loading.reads import Reads
from strata.engine.loading.targets import BUILD_NAMES, Package
from strata.errors import UserError


def glob(
    pkg: Package, reads: Reads, include: Any, exclude: Any, exclude_directories: Any
) -> list[str]:
    """`glob()` in package `pkg`: the names its includes match less its excludes, sorted."""
    inc = [(p, glob_regex(p, pkg)) for p in _strings(include, "glob include")]
    excludes = _strings(exclude, "glob exclude")
    exc = [glob_regex(p, pkg) for p in excludes]
    # `dir/**` excludes all below a directory `dir` matches: the walk need not enter it
    pruned = [glob_regex(p[:-3], pkg) for p in excludes if p.endswith("/**")]
    found: set[str] = set()
    for pattern, rx in inc:
        found.update(_glob_one(reads, pkg, pattern, rx, bool(exclude_directories), pruned))
    return sorted(f for f in found if not any(r.match(f) for r in exc))


def _glob_one(
    reads: Reads,
    pkg: Package,
    pattern: str,
    rx: re.Pattern[str],
    exclude_directories: bool,
    pruned: list[re.Pattern[str]],
) -> list[str]:
    """One include pattern, walking only the directories it can match below.

    The walk starts at the pattern's literal leading directories and, without
    `**`, stops at the pattern's depth: a BUILD file with hundreds of globs
    over a large tree costs each glob its own subtree, not the whole package.
    Like a whole walk, it never enters a subpackage or a symlinked directory,
    nor a directory whose whole contents an exclude (`**/__pycache__/**`)
    removes: what changes in there (Python writing bytecode beside the
    sources, say) is no reason to analyse again.
    """
    segments = pattern.split("/")
    prefix: list[str] = []
    for seg in segments[:-1]:
        if "*" in seg or "?" in seg:
            break
        prefix.append(seg)
    start = pkg.directory
    for seg in prefix:
        if reads.entry(start / seg) != "d":
            return []  # missing, a file, or a symlink to a directory: not walked
        start = start / seg
        if any(reads.is_file(start / b) for b in BUILD_NAMES):
            return []  # a subpackage's files belong to it
    max_depth = None if "**" in segments else len(segments) - 1 - len(prefix)
    found: list[str] = []
    for dirpath, dirnames, filenames in reads.walk(start):
        rel_dir = dirpath.relative_to(pkg.directory).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        depth = len(dirpath.relative_to(start).parts)
        descend = max_depth is None or depth < max_depth
        prefix_dir = f"{rel_dir}/" if rel_dir else ""
        entered: set[str] = set()
        if descend:
            kinds = dict(reads.listdir(dirpath))  # the walk's own listing, read again
            entered = {
                d
                for d in dirnames
                if kinds.get(d) == "d" and not any(r.match(prefix_dir + d) for r in pruned)
            }
        keep = [d for d in sorted(dirnames) if not _subpackage(reads, dirpath / d, d in entered)]
        dirnames[:] = [d for d in keep if d in entered]
        names = list(filenames) + ([] if exclude_directories else keep)
        for n in names:
            rel = f"{rel_dir}/{n}" if rel_dir else n
            if rx.match(rel):
                found.append(rel)
    pkg.listed.update(found)
    return found


def _subpackage(reads: Reads, d: Path, entered: bool) -> bool:
    """Whether directory `d` holds a BUILD file. One the walk enters next is asked through
    its listing, which the walk reads anyway (two `stat`s a directory were 7% of analysing
    a 3,000-directory closure); any other through `stat`, so that a change inside a
    directory the glob does not enter is no reason to analyse again."""
    if entered:
        names = dict(reads.listdir(d))
        return any(names.get(b) == "f" and reads.is_file(d / b) for b in BUILD_NAMES)
    return any(reads.is_file(d / b) for b in BUILD_NAMES)


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(f'{what} must be a list of strings (got {value!r}); e.g. ["*.txt"]')
    return value


def glob_regex(pattern: str, pkg: Package) -> re.Pattern[str]:
    if pattern.startswith("/") or "//" in pattern or ".." in pattern.split("/"):
        raise UserError(
            f"glob pattern is not a relative path (got {pattern!r}) in "
            f"package '{pkg.name}'; write paths relative to the package"
        )
    parts = []
    segments = pattern.split("/")
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == "**":
            parts.append("(?:.*/)?" if not last else ".*")
            continue
        rx = "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in seg)
        parts.append(rx + ("" if last else "/"))
    return re.compile("^" + "".join(parts) + "$")
