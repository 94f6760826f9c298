"""Hostile input: tar archives, JSON documents, byte-level damage.

Random bytes rarely get past a parser's first check, so inputs are mostly
*nearly valid*: a real tar whose members have awkward names, types, links and
sizes, a real JSON document with a few nodes replaced, dropped or retyped,
then sometimes damaged at the byte level (cut short, bytes flipped, a slice
repeated).

hypothesis draws a seed and the few top-level choices; the bulk is made by
`random.Random(seed)`, because a hypothesis draw costs about 0.1 ms and an
archive holds hundreds of choices (100,000 inputs a target must take minutes,
not hours). hypothesis shrinks the seed and the choices; `harness.minimise`
then cuts the crashing input's bytes down.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import tarfile
from typing import Any

import zstandard
from hypothesis import strategies as st

COMPONENTS = [
    "a",
    "b",
    "x",
    "etc",
    "lib",
    "bin",
    "..",
    ".",
    "",
    ".wh.a",
    ".wh..wh..opq",
    ".wh.",
    "manifest.json",
    "index.json",
    "blobs",
    "sha256",
    "layer.tar",
    "ü",
    "n" * 120,
    "a b",
]
TYPES = [
    tarfile.REGTYPE,
    tarfile.DIRTYPE,
    tarfile.SYMTYPE,
    tarfile.LNKTYPE,
    tarfile.FIFOTYPE,
    tarfile.CHRTYPE,
    tarfile.BLKTYPE,
    tarfile.CONTTYPE,
    b"7",
    b"Z",
    b"\x00",
]
FORMATS = [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def path(rng: random.Random, extra: list[str] | None = None) -> str:
    pick = rng.random()
    if extra and pick < 0.6:
        return rng.choice(extra)
    parts = [_component(rng) for _ in range(rng.randint(1, 4))]
    text = "/".join(parts)
    return "/" + text if pick > 0.85 else text


def _component(rng: random.Random) -> str:
    if rng.random() < 0.85:
        return rng.choice(COMPONENTS)
    return "".join(rng.choice("ab.\\:/\x00é ") for _ in range(rng.randint(1, 5)))


_IDS = [0, 1, 65534, 2**21 - 1, 2**31, 2**32 - 1, 2**32, 2**63]
_MODES = [0o644, 0o755, 0o4755, 0o7777, 0o40000, 2**21, 2**32]


def members(
    rng: random.Random, extra: list[str] | None = None, n: int = 6
) -> list[tuple[Any, ...]]:
    """(name, type, linkname, data, mode, uid, gid) tuples."""
    out = []
    for _ in range(rng.randint(0, n)):
        link = (
            rng.choice(["/", "..", "../../../..", "/etc/passwd", ""])
            if rng.random() < 0.3
            else path(rng, extra)
        )
        data = rng.randbytes(rng.randint(0, 40)) if rng.random() < 0.9 else b"x" * 1500
        out.append(
            (
                path(rng, extra),
                rng.choice(TYPES) if rng.random() < 0.5 else rng.choice(TYPES[:4]),
                link,
                data,
                rng.choice(_MODES) if rng.random() < 0.2 else 0o644,
                rng.choice(_IDS) if rng.random() < 0.2 else 0,
                rng.choice(_IDS) if rng.random() < 0.2 else 0,
            )
        )
    return out


def build_tar(items: list[tuple[Any, ...]], fmt: int) -> bytes:
    """A tar of `items`; members the tar module cannot write in `fmt` are left out.

    The bytes are those of `tarfile.TarFile.addfile` then `close` (a header, the data
    padded to a block, two zero blocks, padding to a record), written here so that each
    header is made once: addfile would make it again after the check."""
    out = []
    for name, kind, link, data, mode, uid, gid in items:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = link
        info.mode = mode
        info.uid, info.gid = uid, gid
        info.mtime = 1
        body = kind in _WITH_DATA
        info.size = len(data) if body else 0
        try:
            out.append(info.tobuf(fmt, tarfile.ENCODING, "surrogateescape"))
        except (ValueError, OverflowError, UnicodeError, tarfile.TarError):
            continue
        if body and data:
            out.append(data + bytes(-len(data) % tarfile.BLOCKSIZE))
    out.append(bytes(2 * tarfile.BLOCKSIZE))
    size = sum(len(b) for b in out)
    out.append(bytes(-size % tarfile.RECORDSIZE))
    return b"".join(out)


_WITH_DATA = (tarfile.REGTYPE, tarfile.CONTTYPE, b"7", b"Z", b"\x00")


def compress(data: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(data, mtime=0)
    if how == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    if how == "bad-gzip":
        return b"\x1f\x8b\x08\x00" + data[:40]
    if how == "bad-zstd":
        return b"\x28\xb5\x2f\xfd" + data[:40]
    return data


COMPRESSIONS = ["none", "none", "none", "gzip", "zstd", "bad-gzip", "bad-zstd"]


def layer(rng: random.Random, how: str = "", extra: list[str] | None = None) -> bytes:
    """A layer blob: a tar, maybe compressed, maybe damaged."""
    data = build_tar(members(rng, extra), rng.choice(FORMATS))
    data = compress(data, how or rng.choice(COMPRESSIONS))
    return damage(rng, data, 0.25)


def damage(rng: random.Random, data: bytes, chance: float) -> bytes:
    """`data`, or (with `chance`) cut, flipped, spliced, repeated or zeroed somewhere."""
    if rng.random() >= chance:
        return data
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(["cut", "flip", "insert", "repeat", "zero"])
        at = rng.randint(0, len(data))
        if kind == "cut":
            data = data[:at]
        elif kind == "flip" and data:
            i = min(at, len(data) - 1)
            data = data[:i] + bytes([data[i] ^ rng.randint(1, 255)]) + data[i + 1 :]
        elif kind == "insert":
            data = data[:at] + rng.randbytes(rng.randint(1, 16)) + data[at:]
        elif kind == "repeat":
            data = data[:at] + data[at : at + 512] + data[at:]
        else:
            data = data[:at] + bytes(min(512, len(data) - at)) + data[at + 512 :]
    return data


_SCALARS: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2**63,
    -(2**64),
    1.5,
    float("nan"),
    float("inf"),
    "",
    "x",
    "sha256:",
    "sha256:" + "0" * 64,
    "../x",
    "/etc/passwd",
    "a:b",
    "\x00",
    "é",
    "A" * 300,
]


def json_value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.random()
    if depth > 2 or pick < 0.7:
        return rng.choice(_SCALARS)
    if pick < 0.85:
        return [json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {
        rng.choice(["", "a", "size", "digest"]): json_value(rng, depth + 1)
        for _ in range(rng.randint(0, 2))
    }


def mutate_json(rng: random.Random, doc: Any, max_edits: int = 3) -> Any:
    """`doc` with up to `max_edits` nodes replaced, removed, or added (a deep copy)."""
    doc = json.loads(json.dumps(doc))
    for _ in range(rng.randint(0, max_edits)):
        doc = _edit(rng, doc, 0)
    return doc


def _edit(rng: random.Random, node: Any, depth: int) -> Any:
    keys: list[Any] = (
        sorted(node)
        if isinstance(node, dict)
        else list(range(len(node)))
        if isinstance(node, list)
        else []
    )
    action = rng.choice(["replace", "descend", "descend", "descend", "drop", "add"])
    if not keys or action == "replace" or depth > 8:
        return json_value(rng)
    key = rng.choice(keys)
    if action == "drop":
        del node[key]
    elif action == "add":
        if isinstance(node, dict):
            node[rng.choice(["x", "mediaType", "size", ""])] = json_value(rng)
        else:
            node.insert(key, json_value(rng))
    else:
        node[key] = _edit(rng, node[key], depth + 1)
    return node


def json_doc(rng: random.Random, doc: Any, max_edits: int = 3) -> bytes:
    """A JSON document near `doc`, serialised, sometimes damaged as bytes."""
    value = mutate_json(rng, doc, max_edits) if rng.random() < 0.6 else doc
    text = json.dumps(value, sort_keys=True, allow_nan=True).encode()
    return damage(rng, text, 0.1)


def tar_of(files: dict[str, bytes], extra: list[tuple[Any, ...]] = (), fmt: int = 0) -> bytes:  # type: ignore[assignment]
    """A tar holding `files` as regular members, then `extra` raw member tuples."""
    items: list[tuple[Any, ...]] = [
        (name, tarfile.REGTYPE, "", data, 0o644, 0, 0) for name, data in files.items()
    ]
    return build_tar(items + list(extra), FORMATS[fmt % len(FORMATS)])


_SEEDED = st.integers(0, 2**64 - 1).map(random.Random)

# Strategies are made once, at import, here and in each target's module: one made inside
# a composite is built and validated again for every input, which took an eighth of a
# registry-pull input's time.
BOOLS = st.booleans()
TAR_FORMAT = st.integers(0, len(FORMATS) - 1)
ONE_IN_TEN = st.integers(0, 9)


def seeded() -> st.SearchStrategy[random.Random]:
    """A `random.Random` from a seed hypothesis draws (and shrinks)."""
    return _SEEDED
