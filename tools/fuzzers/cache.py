"""Cache entries: REAPI ActionResult/Tree messages from a remote cache, JSON from a disk cache.

Both go through the real backends (`TieredCache` over a `HttpCache` whose
transport answers from the input, `LocalDiskCache` over a directory) and the
real check (`result_check.validate_result`) for an action with one declared
file and one declared tree. The documented outcomes are a result, a miss
(None) or `InvalidEntry`.
"""

from __future__ import annotations

import base64
import hashlib
import random
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from fuzzers.gen import ONE_IN_TEN, damage, json_doc, seeded
from fuzzers.harness import Files, Target
from strata.engine.action import Action
from strata.engine.cache import InvalidEntry, reapi
from strata.engine.cache.http import HttpCache, RemoteOptions
from strata.engine.cache.local import LocalDiskCache
from strata.engine.cache.result_check import validate_result
from strata.engine.cache.tiered import TieredCache

OUT = "bazel-out/k8-fastbuild/bin/p/a.out"
TREE = "bazel-out/k8-fastbuild/bin/p/tree"
ACTION = Action(
    owner="//p:a", mnemonic="Fuzz", progress_message="", outputs=(OUT,), output_dirs=(TREE,)
)
KEY = "ab" * 32
NAMES = ["a", "b", "", ".", "..", "a/b", "/etc", "x\x00", OUT, TREE, "../../x"]
_EXIT_CODES = st.sampled_from([0, 0, 0, 1, -1])
_FILES = st.integers(0, 3)
_TREES = st.integers(0, 2)


def _hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _name(rng: random.Random) -> str:
    return rng.choice(NAMES) if rng.random() < 0.9 else rng.choice(["ab", "é", "a\\b", " "])


def _hash(rng: random.Random, good: str) -> str:
    if rng.random() < 0.7:
        return good
    return rng.choice(["", "0" * 64, "zz", "A" * 64, good[:63], good + "0"])


def _size(rng: random.Random, good: int) -> int:
    return good if rng.random() < 0.8 else rng.choice([-1, 0, 2**63 - 1, -(2**63), good + 1])


def directory(
    rng: random.Random, blobs: dict[str, bytes], children: list[Any], depth: int = 0
) -> Any:
    d = reapi.Directory()
    for _ in range(rng.randint(0, 3)):
        content = rng.randbytes(rng.randint(0, 8))
        h = _hash(rng, _hex(content))
        blobs[h] = content
        d.files.add(
            name=_name(rng),
            digest=reapi.Digest(hash=h, size_bytes=_size(rng, len(content))),
            is_executable=rng.random() < 0.5,
        )
    for _ in range(rng.randint(0, 2)):
        d.symlinks.add(name=_name(rng), target=_name(rng))
    if depth < 3:
        for _ in range(rng.randint(0, 2)):
            child = directory(rng, blobs, children, depth + 1)
            digest = reapi.message_digest(child)
            digest = reapi.Digest(hash=_hash(rng, digest.hash), size_bytes=digest.size_bytes)
            d.directories.add(name=_name(rng), digest=digest)
            if rng.random() < 0.9:
                children.append(child)
    return d


@st.composite
def remote_entries(draw: Any) -> Files:
    """`ac`: the ActionResult bytes; `cas/<b64 of the name>`: blobs the server holds."""
    rng = draw(seeded())
    blobs: dict[str, bytes] = {}
    msg = reapi.ActionResult()
    msg.exit_code = draw(_EXIT_CODES)
    for _ in range(draw(_FILES)):
        content = rng.randbytes(rng.randint(0, 8))
        h = _hash(rng, _hex(content))
        blobs[h] = content
        msg.output_files.add(
            path=OUT if rng.random() < 0.7 else _name(rng),
            digest=reapi.Digest(hash=h, size_bytes=_size(rng, len(content))),
            is_executable=rng.random() < 0.5,
        )
    for _ in range(draw(_TREES)):
        children: list[Any] = []
        root = directory(rng, blobs, children)
        rng.shuffle(children)
        tree = reapi.Tree(root=root, children=children)
        data = damage(rng, reapi.encode(tree), 0.15)
        blobs[_hex(data)] = data
        digest = reapi.Digest(hash=_hash(rng, _hex(data)), size_bytes=len(data))
        msg.output_directories.add(
            path=TREE if rng.random() < 0.7 else _name(rng), tree_digest=digest
        )
    if draw(ONE_IN_TEN) == 0:
        msg.output_symlinks.add(path=OUT, target="/etc/passwd")
    files = {"ac": damage(rng, reapi.encode(msg), 0.15)}
    for h, data in blobs.items():
        if rng.random() < 0.9:  # some are lost
            files["cas/" + base64.urlsafe_b64encode(h.encode()).decode()] = data
    return files


class _Answer:
    def __init__(self, status: int, data: bytes) -> None:
        self.status = status
        self.data = data

    def stream(self, n: int) -> Any:
        for i in range(0, len(self.data), n):
            yield self.data[i : i + n]

    def release_conn(self) -> None:
        pass


class _Server(HttpCache):
    """An HttpCache whose server is a dict: `/ac/<key>` and `/cas/<hex>` from the input."""

    def __init__(self, files: Files) -> None:
        super().__init__(RemoteOptions("http://cache.invalid:1"), warn=lambda _m: None)
        self.answers = {"/ac/" + KEY: files.get("ac", b"")}
        for name, data in files.items():
            if name.startswith("cas/"):
                h = base64.urlsafe_b64decode(name[4:]).decode()
                self.answers["/cas/" + h] = data

    def _request(self, method: str, url: str, **kw: Any) -> Any:
        path = url[len(self.endpoint.base) :]
        data = self.answers.get(path)
        return _Answer(404, b"") if data is None else _Answer(200, data)


def run_remote(files: Files, scratch: Path) -> str:
    local = LocalDiskCache(scratch / "cache")
    remote = _Server(files)
    cache = TieredCache(local, remote, remote.options)
    result = cache.get_action_result(KEY, lambda r: validate_result(ACTION, r))
    if result is None:
        return "miss"
    again = local.get_action_result(KEY, lambda r: validate_result(ACTION, r))
    if again != result:
        raise AssertionError("the local copy of an accepted remote result differs")
    return "hit"


def _good_result() -> dict[str, Any]:
    f = {"path": OUT, "sha256": "0" * 64, "size": 1, "executable": False}
    t = {"path": TREE, "files": [{**f, "path": "a/b"}], "symlinks": [{"path": "l", "target": "a"}]}
    return {"files": [f], "trees": [t]}


@st.composite
def disk_entries(draw: Any) -> Files:
    return {"entry": json_doc(draw(seeded()), _good_result(), max_edits=4)}


def run_disk(files: Files, scratch: Path) -> str:
    local = LocalDiskCache(scratch / "cache")
    path = scratch / "cache" / "ac" / KEY[:2] / KEY
    path.parent.mkdir(parents=True)
    path.write_bytes(files["entry"])
    result = local.get_action_result(KEY, lambda r: validate_result(ACTION, r))
    return "miss" if result is None else "hit"


TARGETS = [
    Target(
        "reapi-result",
        "remote cache entries: engine/cache/reapi.py messages, tiered.from_reapi, result_check",
        remote_entries(),
        run_remote,
        expected=(InvalidEntry,),
    ),
    Target(
        "disk-cache-result",
        "disk cache entries: engine/cache ActionResult.from_json, result_check",
        disk_entries(),
        run_disk,
        expected=(InvalidEntry,),
    ),
]
