"""Random store-path sets, from a seed, for the parity and join/copy tests.

A set is 1-4 store paths that go into one image together. Entry names come
from a small vocabulary, so paths collide (a directory in one, a file or a
link in another): that is where lndir's and rsync's rules show. A path has
files (some empty, some executable, some hard links of each other), empty
directories, links to files and to directories (relative, chains, to an
ancestor now and then), absolute links into an earlier path of the set, and
dangling links when the store-path rules allow them.

`write_store` lays a set out as directories (for the real lndir and rsync),
`build_file` as BUILD targets (for Bazel and strata).
"""

from __future__ import annotations

import json
import os
import posixpath
import random
from dataclasses import dataclass, field, replace
from pathlib import Path

FILE = "file"
DIR = "dir"
LINK = "link"
STORE_LINK = "store_link"
"""A link to `<the linked path>/<target>`: absolute, into another store path."""

NAMES = ["bin", "lib", "lib64", "share", "doc", "sub", "x", "é-ü名", "old~", "CVS", "l" * 200]
MIB = 1 << 20


@dataclass(frozen=True)
class Entry:
    kind: str
    data: bytes = b""
    executable: bool = False
    target: str = ""
    same_file_as: str = ""
    """FILE: a hard link of that entry's file in the workspace."""


@dataclass(frozen=True)
class PathSpec:
    name: str
    entries: dict[str, Entry]
    link_to: str = ""
    """The path of the set STORE_LINK entries point into."""

    @property
    def rule(self) -> str:
        """store_path has executables; helper_store_path has empty dirs and store links."""
        kinds = {e.kind for e in self.entries.values()}
        return "helper" if kinds & {DIR, STORE_LINK} else "store_path"


@dataclass(frozen=True)
class SetSpec:
    name: str
    paths: tuple[PathSpec, ...]
    max_layers: int = 100
    keep_dirlinks: bool = False

    def size(self) -> int:
        return sum(len(p.entries) + 1 for p in self.paths)


@dataclass
class _Builder:
    rng: random.Random
    dangling: bool
    entries: dict[str, Entry] = field(default_factory=dict)

    def free(self, rel: str) -> bool:
        """No entry at rel, under a non-directory, or above it."""
        parts = rel.split("/")
        for i in range(1, len(parts)):
            e = self.entries.get("/".join(parts[:i]))
            if e is not None and e.kind != DIR:
                return False
        return not any(k == rel or k.startswith(rel + "/") for k in self.entries)

    def dirs(self) -> list[str]:
        found = {posixpath.dirname(k) for k in self.entries} - {""}
        found |= {posixpath.dirname(d) for d in found} - {""}
        return sorted(found | {k for k, e in self.entries.items() if e.kind == DIR})


def _name(rng: random.Random) -> str:
    return "/".join(rng.choice(NAMES) for _ in range(rng.choice([1, 1, 2, 2, 3])))


def _path(rng: random.Random, name: str, others: list[PathSpec], dangling: bool) -> PathSpec:
    b = _Builder(rng, dangling)
    helper = rng.random() < 0.5
    for _ in range(rng.randint(1, 4)):
        rel = _name(rng)
        if not b.free(rel):
            continue
        roll = rng.random()
        if helper and roll < 0.2:
            b.entries[rel] = Entry(DIR)
        elif helper and others and roll < 0.35:
            other = others[-1]
            sub = rng.choice(["", *sorted(other.entries)])
            b.entries[rel] = Entry(STORE_LINK, target=sub)
        else:
            size = rng.choice([0, 1, 17, 300])
            data = bytes(rng.choice(b"abcdef\n") for _ in range(size))
            files = [k for k, e in b.entries.items() if e.kind == FILE and not e.same_file_as]
            same = rng.choice(files) if files and rng.random() < 0.15 else ""
            if same:
                data = b.entries[same].data
            exe = not helper and rng.random() < 0.3
            b.entries[rel] = Entry(FILE, data, exe, same_file_as=same)
    for _ in range(rng.choice([0, 1, 1, 2])):
        rel = _name(rng)
        if not b.free(rel):
            continue
        targets = [k for k in b.entries if k != rel] + b.dirs()
        roll = rng.random()
        if targets and roll < 0.9:
            to = rng.choice(targets)
            if rel.startswith(to + "/") and rng.random() < 0.8:
                continue  # a link to its own ancestor: rare, rsync -k cannot copy it
            b.entries[rel] = Entry(
                LINK, target=posixpath.relpath(to, posixpath.dirname(rel) or ".")
            )
        elif dangling:
            b.entries[rel] = Entry(LINK, target=rng.choice(["missing", "../../nowhere/x"]))
    if not b.entries:
        b.entries["x"] = Entry(FILE, b"x\n")
    link_to = others[-1].name if any(e.kind == STORE_LINK for e in b.entries.values()) else ""
    return PathSpec(name, dict(sorted(b.entries.items())), link_to)


def issue_set() -> SetSpec:
    """The shape issue 11 was found with: five paths with lib64 -> lib and dir/file links."""
    paths = []
    for i in range(5):
        entries = {
            "lib/libx.so": Entry(FILE, f"lib of {i}\n".encode()),
            "lib/sub/data": Entry(FILE, f"data of {i}\n".encode()),
            "lib64": Entry(LINK, target="lib"),
            f"bin/tool{i}": Entry(FILE, f"tool {i}\n".encode(), executable=True),
            "bin/current": Entry(LINK, target=f"tool{i}"),
            "share/doc": Entry(LINK, target="../lib/sub"),
        }
        paths.append(PathSpec(f"issue{i}", entries))
    return SetSpec("issue", tuple(paths))


def generate(seed: int, count: int, *, dangling: bool, big: int = 4) -> list[SetSpec]:
    """`count` sets from `seed` (the issue's shape first); `big` of them get a 3 MiB file."""
    rng = random.Random(seed)
    sets = [issue_set()]
    while len(sets) < count:
        n = len(sets)
        paths: list[PathSpec] = []
        for i in range(rng.choice([1, 2, 2, 3, 4])):
            paths.append(_path(rng, f"s{n:03d}p{i}", paths, dangling))
        if n <= big:
            first = paths[0]
            blob = Entry(FILE, rng.randbytes(3 * MIB + n), executable=first.rule == "store_path")
            paths[0] = replace(first, entries={**first.entries, f"big{n}/blob": blob})
        sets.append(
            SetSpec(
                f"s{n:03d}",
                tuple(paths),
                max_layers=rng.choice([100, 100, 3, 2]),
                keep_dirlinks=rng.random() < 0.5,
            )
        )
    return sets


# -- on disk: directories at their store paths, for the real lndir and rsync ---------------


def write_store(spec: SetSpec, store: Path) -> list[str]:
    """The set's paths under `store` (a made-up hash each); their absolute paths, in order."""
    paths: dict[str, str] = {}
    for p in spec.paths:
        root = store / f"{_hash(p.name)}-{p.name}"
        paths[p.name] = str(root)
        root.mkdir(parents=True)
        for rel, e in p.entries.items():
            dest = root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if e.kind == DIR:
                dest.mkdir(exist_ok=True)
            elif e.kind == FILE:
                dest.write_bytes(e.data)
                os.chmod(dest, 0o755 if e.executable else 0o644)
            elif e.kind == LINK:
                os.symlink(e.target, dest)
            else:
                os.symlink(posixpath.join(paths[p.link_to], e.target).rstrip("/"), dest)
        for dirpath, dirnames, filenames in os.walk(root):  # as in the Nix store: mtime 1
            for name in [".", *dirnames, *filenames]:
                os.utime(os.path.join(dirpath, name), (1, 1), follow_symlinks=False)
    return list(paths.values())


def _hash(name: str) -> str:
    alphabet = "0123456789abcdfghijklmnpqrsvwxyz"
    rng = random.Random(name)
    return "".join(rng.choice(alphabet) for _ in range(32))


# -- as a Bazel package ------------------------------------------------------------------------


def build_file(spec: SetSpec, package: Path) -> None:
    """BUILD and source files of one set: its paths, and the three images of them."""
    package.mkdir(parents=True)
    lines = [
        'load("@strata//rules:defs.bzl", "docker_image", "helper_store_path", "layered_image", '
        '"store_path", "stream_layered_image")',
    ]
    for p in spec.paths:
        srcs: dict[str, str] = {}
        for i, (rel, e) in enumerate(p.entries.items()):
            if e.kind != FILE:
                continue
            src = f"{p.name}_{i}.bin"
            if e.same_file_as:
                first = list(p.entries).index(e.same_file_as)
                os.link(package / f"{p.name}_{first}.bin", package / src)
            else:
                (package / src).write_bytes(e.data)
            srcs[src] = rel
        symlinks = {r: e.target for r, e in p.entries.items() if e.kind == LINK}
        args = {"name": p.name, "srcs": srcs, "symlinks": symlinks}
        if p.rule == "store_path":
            args["executables"] = [r for r, e in p.entries.items() if e.executable]
        else:
            args["dirs"] = [r for r, e in p.entries.items() if e.kind == DIR]
            links = {r: e.target for r, e in p.entries.items() if e.kind == STORE_LINK}
            if links:
                args["links"] = links
                args["link_to"] = f":{p.link_to}"
        lines.append(_call(p.rule if p.rule == "store_path" else "helper_store_path", args))
    contents = [f":{p.name}" for p in spec.paths]
    lines.append(
        _call(
            "layered_image",
            {"name": "layered", "contents": contents, "max_layers": spec.max_layers},
        )
    )
    lines.append(
        _call(
            "stream_layered_image",
            {"name": "stream", "contents": contents, "max_layers": spec.max_layers},
        )
    )
    lines.append(
        _call(
            "docker_image",
            {
                "name": "docker",
                "copy_to_root": contents,
                "keep_contents_dirlinks": spec.keep_dirlinks,
            },
        )
    )
    (package / "BUILD").write_text("\n\n".join(lines) + "\n", encoding="utf-8")


def _call(rule: str, args: dict[str, object]) -> str:
    body = "".join(f"    {k} = {json.dumps(v, ensure_ascii=False)},\n" for k, v in args.items())
    return f"{rule}(\n{body})".replace("true,", "True,").replace("false,", "False,")
