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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

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
    link_to: PathSpec | None = None
    """The path STORE_LINK entries point into (a reference of this one)."""

    @property
    def rule(self) -> str:
        """store_path has executables; helper_store_path has empty dirs and store links."""
        kinds = {e.kind for e in self.entries.values()}
        return "helper" if kinds & {DIR, STORE_LINK} else "store_path"

    def closure(self) -> list[PathSpec]:
        """This path after the paths it links into."""
        return [*(self.link_to.closure() if self.link_to else []), self]


@dataclass(frozen=True)
class SetSpec:
    name: str
    paths: tuple[PathSpec, ...]
    max_layers: int = 100
    keep_dirlinks: bool = False

    def size(self) -> int:
        return sum(len(p.entries) + 1 for p in self.paths)

    def closure(self) -> list[PathSpec]:
        """The set's paths and those they link into, each once, dependencies first."""
        seen: dict[str, PathSpec] = {}
        for p in self.paths:
            for q in p.closure():
                seen.setdefault(q.name, q)
        return list(seen.values())


@dataclass
class _Builder:
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
    b = _Builder()
    helper = rng.random() < 0.5
    link_to: PathSpec | None = None
    for _ in range(rng.randint(1, 4)):
        rel = _name(rng)
        if not b.free(rel):
            continue
        roll = rng.random()
        if helper and roll < 0.2:
            b.entries[rel] = Entry(DIR)
        elif helper and others and roll < 0.35:
            other = link_to = link_to or rng.choice(others)
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
            # dangling, but inside the path: store_path refuses a relative link out of it
            up = posixpath.relpath("nowhere/x", posixpath.dirname(rel) or ".")
            b.entries[rel] = Entry(LINK, target=rng.choice(["missing", up]))
    if not b.entries:
        b.entries["x"] = Entry(FILE, b"x\n")
    return PathSpec(name, dict(sorted(b.entries.items())), link_to)


def issue_set() -> SetSpec:
    """The shape that first made the engines differ: five paths, lib64 -> lib, dir/file links.

    Bazel staged the `lib64` link of a tree input as a link, strata as a directory,
    so every layered_image's customisation layer differed.
    """
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


def generate(seed: int, count: int, *, dangling: bool, big: int = 2) -> list[SetSpec]:
    """`count` sets from `seed`, the issue's shape first.

    The sets draw their 1-4 paths, in random order, from a pool of about 3/4
    as many paths, so that a path meets different neighbours (and a cached
    layer is built once); `big` paths of the pool get a 3 MiB file.
    """
    rng = random.Random(seed)
    pool: list[PathSpec] = []
    for i in range(max(4, count * 3 // 4)):
        p = _path(rng, f"p{i:03d}", pool, dangling)
        if i < big:
            blob = Entry(FILE, rng.randbytes(3 * MIB + i), executable=p.rule == "store_path")
            p = replace(p, entries={**p.entries, f"big{i}/blob": blob})
        pool.append(p)
    sets = [issue_set()]
    while len(sets) < count:
        paths = rng.sample(pool, rng.choice([1, 2, 2, 3, 4]))
        if big and len(sets) <= 2 * big:  # a handful of sets with a big file, no more
            first = pool[len(sets) % big]
            paths = [first, *(p for p in paths if p is not first)]
        sets.append(
            SetSpec(
                f"s{len(sets):03d}",
                tuple(paths[:4]),
                max_layers=rng.choice([100, 100, 3, 2]),
                keep_dirlinks=rng.random() < 0.5,
            )
        )
    return sets


# -- shrinking a set that fails -----------------------------------------------------------------


def smaller(spec: SetSpec) -> Iterator[SetSpec]:
    """Every set one step smaller: a path, an entry, a file's bytes or an attribute less."""
    if spec.max_layers != 100 or spec.keep_dirlinks:
        yield replace(spec, max_layers=100, keep_dirlinks=False)
    for i, p in enumerate(spec.paths):
        if len(spec.paths) > 1:
            yield replace(spec, paths=tuple(q for q in spec.paths if q is not p))
        for rel, e in p.entries.items():
            fewer = {k: v for k, v in p.entries.items() if k != rel and v.same_file_as != rel}
            if fewer:
                yield _with_path(spec, i, replace(p, entries=fewer))
            if e.kind == FILE and e.data and not e.same_file_as:
                emptied = {**p.entries, rel: replace(e, data=b"")}
                emptied = {
                    k: (replace(v, data=b"") if v.same_file_as == rel else v)
                    for k, v in emptied.items()
                }
                yield _with_path(spec, i, replace(p, entries=emptied))


def _with_path(spec: SetSpec, i: int, path: PathSpec) -> SetSpec:
    """The set with its i-th path replaced, also where another path links into it."""
    paths = [*spec.paths[:i], path, *spec.paths[i + 1 :]]
    paths = [
        replace(q, link_to=path) if q.link_to and q.link_to.name == path.name else q for q in paths
    ]
    return replace(spec, paths=tuple(paths))


def shrink(
    spec: SetSpec, differing: Callable[[list[SetSpec]], list[SetSpec]], rounds: int
) -> SetSpec:
    """Greedily the smallest one-step-smaller set that still differs, until none does.

    `differing` gets all candidates of a round at once (one build of them all).
    """
    for n in range(rounds):
        candidates = [replace(c, name=f"c{n:02d}_{i:03d}") for i, c in enumerate(smaller(spec))]
        still = differing(candidates)
        if not still:
            break
        spec = min(still, key=lambda s: s.size())
    return spec


# -- on disk: directories at their store paths, for the real lndir and rsync ---------------


def write_store(spec: SetSpec, store: Path) -> list[str]:
    """The set's closure under `store` (a made-up hash each); the set's paths, in order."""
    paths: dict[str, str] = {}
    for p in spec.closure():
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
                assert p.link_to is not None
                os.symlink(posixpath.join(paths[p.link_to.name], e.target).rstrip("/"), dest)
        for dirpath, dirnames, filenames in os.walk(root):  # as in the Nix store: mtime 1
            for name in [".", *dirnames, *filenames]:
                os.utime(os.path.join(dirpath, name), (1, 1), follow_symlinks=False)
    return [paths[p.name] for p in spec.paths]


def _hash(name: str) -> str:
    alphabet = "0123456789abcdfghijklmnpqrsvwxyz"
    rng = random.Random(name)
    return "".join(rng.choice(alphabet) for _ in range(32))


# -- as Bazel packages ---------------------------------------------------------------------------

_LOAD = (
    'load("@strata//rules:defs.bzl", "docker_image", "helper_store_path", "layered_image", '
    '"store_path", "stream_layered_image")'
)


def pool_file(paths: list[PathSpec], package: Path) -> None:
    """A package defining store paths (and their source files) for other packages to use."""
    package.mkdir(parents=True)
    rules = [_path_rule(p, package, "//visibility:public") for p in paths]
    (package / "BUILD").write_text("\n\n".join([_LOAD, *rules]) + "\n", encoding="utf-8")


def build_file(spec: SetSpec, package: Path, pool: str = "") -> None:
    """A set's three images; its paths from package `pool`, or defined here when none."""
    package.mkdir(parents=True)
    rules = [] if pool else [_path_rule(p, package, "") for p in spec.closure()]
    contents = [f"//{pool}:{p.name}" if pool else f":{p.name}" for p in spec.paths]
    layered = {"contents": contents, "max_layers": spec.max_layers}
    rules.append(_call("layered_image", {"name": "layered", **layered}))
    # Uncompressed, so its grouped layers are recipes (LayerGroups' joins) the stream reads.
    rules.append(_call("stream_layered_image", {"name": "stream", **layered, "compressor": "none"}))
    docker = {"copy_to_root": contents, "keep_contents_dirlinks": spec.keep_dirlinks}
    rules.append(_call("docker_image", {"name": "docker", **docker}))
    (package / "BUILD").write_text("\n\n".join([_LOAD, *rules]) + "\n", encoding="utf-8")


def _path_rule(p: PathSpec, package: Path, visibility: str) -> str:
    srcs: dict[str, str] = {}
    files = [(i, rel, e) for i, (rel, e) in enumerate(p.entries.items()) if e.kind == FILE]
    for i, rel, e in sorted(files, key=lambda f: bool(f[2].same_file_as)):
        src = f"{p.name}_{i}.bin"
        if e.same_file_as:  # a hard link of another source file
            os.link(
                package / f"{p.name}_{list(p.entries).index(e.same_file_as)}.bin", package / src
            )
        else:
            (package / src).write_bytes(e.data)
        srcs[src] = rel
    args: dict[str, object] = {"name": p.name, "srcs": srcs}
    args["symlinks"] = {r: e.target for r, e in p.entries.items() if e.kind == LINK}
    if p.rule == "store_path":
        args["executables"] = [r for r, e in p.entries.items() if e.executable]
    else:
        args["dirs"] = [r for r, e in p.entries.items() if e.kind == DIR]
        links = {r: e.target for r, e in p.entries.items() if e.kind == STORE_LINK}
        if links and p.link_to is not None:
            args["links"] = links
            args["link_to"] = f":{p.link_to.name}"
    if visibility:
        args["visibility"] = [visibility]
    return _call("store_path" if p.rule == "store_path" else "helper_store_path", args)


def _call(rule: str, args: dict[str, object]) -> str:
    body = "".join(f"    {k} = {json.dumps(v, ensure_ascii=False)},\n" for k, v in args.items())
    return f"{rule}(\n{body})".replace("true,", "True,").replace("false,", "False,")


# -- as StorePath plans them -----------------------------------------------------------------


def planned(root: Path, file_mode: int = 0o444) -> list[Any]:
    """A path on disk as StorePath's planned entries (a one-file path: one FILE named "")."""
    from strata.oci.tree import FILE, Entry, LayerTree

    if root.is_file():
        return [Entry("", FILE, file_mode, size=root.stat().st_size, source=str(root))]
    tree = LayerTree()
    tree.add_path(root, "")
    return tree.entries()  # type: ignore[no-any-return]


def nar_chunks(entries: list[Any], contents: Any = None) -> Iterator[bytes]:
    """The NAR of `entries`, each file's bytes asked of `contents` (a StoreLayerWriter's)."""
    from strata.store.nar import MAGIC, dump_entries, dump_planned, nar_string

    kw = {} if contents is None else {"contents": contents}
    if len(entries) == 1 and not entries[0].name:
        return iter([nar_string(MAGIC), *dump_planned(entries[0], **kw)])
    return iter(dump_entries(entries, **kw))
