"""The HTTP cache client, REAPI messages and the tiered policy, against an in-process server.

The server here records every request (method, path, headers, body) so the
tests can check what goes on the wire: Content-Length and no chunking, the
order of uploads, auth headers, and what a 204/404/500 or a slow answer does.
The same behaviour against real nginx is in test_remote_cache.py.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fault_server import POLL
from strata.engine.action import Action
from strata.engine.cache import ActionResult, InvalidEntry, OutputFile, OutputTree, reapi
from strata.engine.cache.http import HttpCache, RemoteOptions, parse_remote_cache
from strata.engine.cache.local import LocalDiskCache
from strata.engine.cache.result_check import validate_result
from strata.engine.cache.tiered import TieredCache, from_reapi, to_reapi
from strata.errors import UserError

# The action `_result_with_blobs` is a result of, and the check the scheduler would pass.
_ACTION = Action(
    owner="//p:p",
    mnemonic="Genrule",
    progress_message="",
    outputs=("bazel-out/k8-fastbuild/bin/p/out",),
    output_dirs=("bazel-out/k8-fastbuild/bin/p/dir",),
)


def _check(result: ActionResult) -> str | None:
    return validate_result(_ACTION, result)


class _Store(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.data: dict[str, bytes] = {}
        self.log: list[tuple[str, str, dict[str, str], bytes]] = []
        self.miss_status = 404
        self.miss_headers: dict[str, str] = {}
        self.put_status = 200
        self.delay = 0.0
        self.on_get: Callable[[str, bytes], bytes] = lambda _path, data: data
        """What a GET answers instead of the stored bytes (a server that garbles)."""
        self.on_put: Callable[[str, bytes], bytes | None] = lambda _path, data: data
        """What a PUT stores (None: nothing, though the answer is 200)."""


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Store

    def log_message(self, *args: object) -> None:
        pass

    def _record(self, body: bytes = b"") -> None:
        self.server.log.append((self.command, self.path, dict(self.headers), body))
        if self.server.delay:
            time.sleep(self.server.delay)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._record()
        data = self.server.data.get(self.path)
        if data is None:
            self.send_response(self.server.miss_status)
            for name, value in self.server.miss_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = self.server.on_get(self.path, data)
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_HEAD(self) -> None:  # noqa: N802
        self._record()
        data = self.server.data.get(self.path)
        self.send_response(200 if data is not None else 404)
        self.send_header("Content-Length", str(len(data or b"")))
        self.end_headers()

    def do_PUT(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", "-1"))
        body = self.rfile.read(length) if length >= 0 else b""
        self._record(body)
        stored = self.server.on_put(self.path, body)
        if self.server.put_status < 300 and stored is not None:
            self.server.data[self.path] = stored
        self.send_response(self.server.put_status)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def server() -> Iterator[_Store]:
    srv = _Store()
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": POLL}, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _url(srv: _Store, prefix: str = "/team") -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}{prefix}"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def warnings() -> list[str]:
    return []


def _tiered(tmp_path: Path, srv_url: str, warnings: list[str], **kw: object) -> TieredCache:
    opts = RemoteOptions(url=srv_url, **kw)  # type: ignore[arg-type]
    return TieredCache(LocalDiskCache(tmp_path / "local"), HttpCache(opts, warnings.append), opts)


def _result_with_blobs(tmp_path: Path) -> tuple[ActionResult, dict[str, bytes]]:
    blobs = {"out": b"layer bytes\n", "t1": b"one\n", "t2": b"two\n"}
    files = (OutputFile("bazel-out/k8-fastbuild/bin/p/out", _sha(blobs["out"]), 12, False),)
    tree = OutputTree(
        "bazel-out/k8-fastbuild/bin/p/dir",
        (
            OutputFile("a/one", _sha(blobs["t1"]), 4, True),
            OutputFile("two", _sha(blobs["t2"]), 4, False),
        ),
    )
    return ActionResult(files, (tree,)), blobs


def _put_local(cache: TieredCache, tmp_path: Path, blobs: dict[str, bytes]) -> None:
    for name, data in blobs.items():
        src = tmp_path / f"src-{name}"
        src.write_bytes(data)
        cache.put_blob(_sha(data), src)


def _uploaded(
    server: _Store, tmp_path: Path, warnings: list[str]
) -> tuple[ActionResult, dict[str, bytes], TieredCache]:
    """A result and its blobs put (so uploaded) through one cache, and a second cache with
    an empty local disk on the same server."""
    result, blobs = _result_with_blobs(tmp_path)
    a = _tiered(tmp_path / "a", _url(server), warnings)
    _put_local(a, tmp_path, blobs)
    a.put_action_result("k" * 64, result)
    return result, blobs, _tiered(tmp_path / "b", _url(server), warnings)


# -- URLs and messages -----------------------------------------------------------


def test_url_credentials_become_basic_auth_and_prefix_is_kept() -> None:
    ep = parse_remote_cache("http://al%40x:s3cret@cache.example:8080/team/a/", (("X-T", "1"),))
    assert ep.base == "http://cache.example:8080/team/a"
    assert ("Authorization", "Basic YWxAeDpzM2NyZXQ=") in ep.headers  # al@x:s3cret
    assert ("X-T", "1") in ep.headers


@pytest.mark.parametrize("url", ["grpc://host:9092", "cache.example", "http://h/x?y=1"])
def test_bad_remote_cache_urls_are_user_errors(url: str) -> None:
    with pytest.raises(UserError, match="--remote_cache .*got"):
        parse_remote_cache(url)


def test_reapi_field_numbers_on_the_wire() -> None:
    msg = reapi.ActionResult()
    msg.output_files.add(path="a", digest=reapi.Digest(hash="h", size_bytes=3), is_executable=True)
    msg.output_directories.add(path="d", tree_digest=reapi.Digest(hash="t", size_bytes=1))
    # output_files = 2 (0x12), output_directories = 3 (0x1a); inside OutputFile: path 1,
    # digest 2, is_executable 4 (0x20); inside OutputDirectory: tree_digest 3 (0x1a).
    wire = "120c 0a0161 1205 0a0168 1003 2001 1a0a 0a0164 1a05 0a0174 1001"
    assert reapi.encode(msg).hex() == wire.replace(" ", "")


def test_result_round_trips_through_reapi_with_trees() -> None:
    result, _ = _result_with_blobs(Path("."))
    msg, trees = to_reapi(result)
    back = from_reapi(reapi.ActionResult.FromString(reapi.encode(msg)), trees.get)
    assert back == result
    with pytest.raises(ValueError, match="tree blob .* is missing"):
        from_reapi(msg, lambda _sha: None)
    with pytest.raises(ValueError, match="failed run"):
        from_reapi(reapi.ActionResult(exit_code=1), trees.get)
    bad = reapi.ActionResult()
    bad.output_directories.add(path="d", tree_digest=reapi.Digest(hash="../../x", size_bytes=1))
    with pytest.raises(ValueError, match="invalid tree digest"):
        from_reapi(bad, trees.get)


def test_command_and_action_digest_match_bazel_4_2_3() -> None:
    """Digests Bazel 4.2.3 stored for a ctx.actions.run action (see test_remote_cache.py)."""
    out = "bazel-out/k8-fastbuild/bin/pkg/cat.out"
    gen = "bazel-out/k8-fastbuild/bin/pkg/gen.txt"
    cmd = reapi.command_of(
        ["pkg/tool.sh", out, "pkg/a.txt", gen], [("B", "2"), ("A", "1")], [out], []
    )
    inputs = [
        (gen, "cba5243834a58801d5f3460c1d21fe28c33b1e1c1bb8ce7513e1948eed3a19e4", 12, False),
        ("pkg/a.txt", "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03", 6, False),
        (
            "pkg/tool.sh",
            "d7f4fb9af21ba8868c0744ca104253ff41bc9e2a7402f08b3ec7635793b421ed",
            43,
            True,
        ),
    ]
    action = reapi.action_of(cmd, inputs)
    assert reapi.message_digest(cmd).hash == (
        "c67df59e8a26e1d94e58ff79578d21e8772792ee1cc5aa348c50b1e14f26d555"
    )
    assert action.input_root_digest.hash.startswith("7ceca973bb27")
    assert reapi.message_digest(action).hash == (
        "dc18fbd8dae69420bbd7d849b4aa11fbf3189a03070cd68e3136841f1cf268e6"
    )


# -- the wire --------------------------------------------------------------------


def test_upload_order_content_length_and_headers(
    server: _Store, tmp_path: Path, warnings: list[str]
) -> None:
    cache = _tiered(
        tmp_path, _url(server).replace("//", "//u:p@"), warnings, headers=(("X-Token", "t"),)
    )
    result, blobs = _result_with_blobs(tmp_path)
    _put_local(cache, tmp_path, blobs)
    assert not [r for r in server.log if r[0] == "PUT"]  # put_blob alone stays local
    cache.put_action_result("k" * 64, result)
    puts = [(path, headers, body) for method, path, headers, body in server.log if method == "PUT"]
    assert [p for p, _h, _b in puts][-1] == "/team/ac/" + "k" * 64
    assert {p for p, _h, _b in puts[:-1]} >= {f"/team/cas/{_sha(b)}" for b in blobs.values()}
    for _path, headers, body in puts:
        assert headers["Content-Length"] == str(len(body))
        assert "Transfer-Encoding" not in headers
        assert headers["Authorization"] == "Basic dTpw"
        assert headers["X-Token"] == "t"
    stored = reapi.ActionResult.FromString(server.data["/team/ac/" + "k" * 64])
    assert [f.path for f in stored.output_files] == ["bazel-out/k8-fastbuild/bin/p/out"]
    tree_sha = stored.output_directories[0].tree_digest.hash
    assert _sha(server.data[f"/team/cas/{tree_sha}"]) == tree_sha
    assert warnings == []


def test_fresh_cache_gets_result_and_blobs_then_writes_local_entry(
    server: _Store, tmp_path: Path, warnings: list[str]
) -> None:
    result, blobs, b = _uploaded(server, tmp_path, warnings)
    assert b.local.get_action_result("k" * 64, _check) is None
    assert b.get_action_result("k" * 64, _check) == result
    assert b.local.get_action_result("k" * 64, _check) == result
    for data in blobs.values():
        assert b.local.has_blob(_sha(data))
    out = tmp_path / "materialised"
    assert b.get_blob(_sha(blobs["out"]), out) and out.read_bytes() == blobs["out"]
    assert b.remote_hits == 1 and b.remote.stats.downloaded > 0


@pytest.mark.parametrize("status", [404, 204])
def test_404_and_204_are_misses(
    server: _Store, tmp_path: Path, warnings: list[str], status: int
) -> None:
    server.miss_status = status
    cache = _tiered(tmp_path, _url(server), warnings)
    assert cache.get_action_result("0" * 64, _check) is None
    assert not cache.get_blob("0" * 64, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert warnings == [] and not cache.remote.disabled


def test_result_with_a_missing_blob_is_invalid_and_leaves_no_local_entry(
    server: _Store, tmp_path: Path, warnings: list[str]
) -> None:
    result, blobs, b = _uploaded(server, tmp_path, warnings)
    del server.data[f"/team/cas/{_sha(blobs['t2'])}"]
    with pytest.raises(InvalidEntry, match=f"blob {_sha(blobs['t2'])} could not be down"):
        b.get_action_result("k" * 64, _check)
    assert b.local.get_action_result("k" * 64, _check) is None


def test_wrong_blob_is_rejected(server: _Store, tmp_path: Path, warnings: list[str]) -> None:
    result, blobs, b = _uploaded(server, tmp_path, warnings)
    server.data[f"/team/cas/{_sha(blobs['out'])}"] = b"evil bytes!\n"
    with pytest.raises(InvalidEntry, match="does not match its sha256") as err:
        b.get_action_result("k" * 64, _check)
    assert err.value.cache == f"remote cache {_url(server)}"
    assert not b.local.has_blob(_sha(blobs["out"]))
    assert b.local.get_action_result("k" * 64, _check) is None
    leftovers = [p for p in (tmp_path / "b").rglob("*") if p.is_file()]
    assert all(p.name != _sha(blobs["out"]) and not p.name.endswith(".tmp") for p in leftovers)


def test_remote_result_failing_the_check_is_never_fetched_or_stored(
    server: _Store, tmp_path: Path, warnings: list[str]
) -> None:
    result, blobs, b = _uploaded(server, tmp_path, warnings)
    before = len(server.log)
    with pytest.raises(InvalidEntry, match="^remote cache .*: nope$"):
        b.get_action_result("k" * 64, lambda _r: "nope")
    assert [p for _m, p, _h, _b in server.log[before:] if "/cas/" in p] == [
        f"/team/cas/{to_reapi(result)[0].output_directories[0].tree_digest.hash}"
    ]  # only the tree listing, no blob
    assert not [p for p in (tmp_path / "b").rglob("*") if p.is_file()]
    assert warnings == []


@pytest.mark.parametrize("body", [b"\x20\x00", b"{}", b"\xff" * 40, b"\x12\x03abc"])
def test_garbage_remote_entry_is_invalid_or_fails_the_check(
    server: _Store, tmp_path: Path, warnings: list[str], body: bytes
) -> None:
    server.data["/team/ac/" + "k" * 64] = body
    b = _tiered(tmp_path, _url(server), warnings)
    with pytest.raises(InvalidEntry, match="not an ActionResult message|lacks declared output"):
        b.get_action_result("k" * 64, _check)
    assert b.local.get_action_result("k" * 64, _check) is None
    assert warnings == [] and not b.remote.disabled


def test_server_down_warns_once_and_turns_remote_off(tmp_path: Path, warnings: list[str]) -> None:
    from nginx_server import free_port

    cache = _tiered(tmp_path, f"http://127.0.0.1:{free_port()}", warnings, timeout=2)
    result, blobs = _result_with_blobs(tmp_path)
    _put_local(cache, tmp_path, blobs)
    assert cache.get_action_result("1" * 64, _check) is None
    cache.put_action_result("2" * 64, result)
    assert cache.get_action_result("3" * 64, _check) is None
    assert len(warnings) == 1 and "continuing without the remote cache" in warnings[0]
    assert cache.remote.disabled
    assert cache.get_action_result("2" * 64, _check) == result  # the local half still works


def test_timeout_warns_once_and_turns_remote_off(
    server: _Store, tmp_path: Path, warnings: list[str]
) -> None:
    server.delay = 2.0
    cache = _tiered(tmp_path, _url(server), warnings, timeout=0.3)
    assert cache.get_action_result("1" * 64, _check) is None
    assert cache.get_action_result("2" * 64, _check) is None
    assert len(warnings) == 1 and "Timeout" in warnings[0]
    assert len(server.log) == 1


def test_refused_upload_warns_once_and_no_result_is_stored(
    server: _Store, tmp_path: Path, warnings: list[str]
) -> None:
    server.put_status = 401
    cache = _tiered(tmp_path, _url(server), warnings)
    result, blobs = _result_with_blobs(tmp_path)
    _put_local(cache, tmp_path, blobs)
    cache.put_action_result("k" * 64, result)
    cache.put_action_result("j" * 64, result)
    assert len(warnings) == 1 and "got HTTP 401" in warnings[0]
    assert not any(p.startswith("/team/ac/") for _m, p, _h, _b in server.log)


def test_policy_flags_and_tags(server: _Store, tmp_path: Path, warnings: list[str]) -> None:
    result, blobs = _result_with_blobs(tmp_path)
    no_upload = _tiered(tmp_path / "a", _url(server), warnings, upload_local_results=False)
    _put_local(no_upload, tmp_path, blobs)
    no_upload.put_action_result("k" * 64, result)
    assert server.log == []
    full = _tiered(tmp_path / "b", _url(server), warnings)
    _put_local(full, tmp_path, blobs)
    full.put_action_result("k" * 64, result)
    no_accept = _tiered(tmp_path / "c", _url(server), warnings, accept_cached=False)
    before = len(server.log)
    assert no_accept.get_action_result("k" * 64, _check) is None
    assert len(server.log) == before
    image = Action(
        owner="//img:app", mnemonic="ImageAssemble", progress_message="", tags=("no-remote-cache",)
    )
    layer = Action(owner="//img:layer", mnemonic="StoreLayer", progress_message="")
    assert full.for_action(image) is full.local
    assert full.for_action(layer) is full
    assert full.local.for_action(image) is full.local


def test_tree_order_and_stats_are_deterministic() -> None:
    files = [("z/b", "1" * 64, 1, False), ("a", "2" * 64, 2, True), ("z/a/c", "3" * 64, 3, False)]
    one = reapi.encode(reapi.tree_of(files))
    two = reapi.encode(reapi.tree_of(list(reversed(files))))
    assert one == two
    assert reapi.tree_files(reapi.Tree.FromString(one)) == (sorted(files), [])
    assert io.BytesIO(one).read(1) == b"\x0a"  # root first


def test_tree_that_expands_exponentially_is_rejected_without_expanding() -> None:
    leaf = reapi.Directory()
    leaf.files.add(name="f", digest=reapi.Digest(hash="1" * 64, size_bytes=1))
    children, below = [leaf], leaf
    for i in range(40):  # each level names the one below twice: 2**40 files
        d = reapi.Directory()
        for name in ("a", "b"):
            d.directories.add(name=f"{name}{i}", digest=reapi.message_digest(below))
        children.append(d)
        below = d
    tree = reapi.Tree(root=below, children=children[:-1])
    start = time.monotonic()
    with pytest.raises(ValueError, match="more than"):
        reapi.tree_files(tree)
    assert time.monotonic() - start < 2


def test_tree_deep_through_shared_directories_is_rejected() -> None:
    chain = [reapi.Directory()]
    for i in range(300):
        d = reapi.Directory()
        d.directories.add(name=f"n{i}", digest=reapi.message_digest(chain[-1]))
        chain.append(d)
    root = reapi.Directory()
    for i, d in enumerate(chain):  # every level reachable at depth 1 too, shallowest first
        root.directories.add(name=f"s{i}", digest=reapi.message_digest(d))
    with pytest.raises(ValueError, match="levels|too deep"):
        reapi.tree_files(reapi.Tree(root=root, children=chain))


# -- a server that lies, end to end: each a miss with one warning a build ------------


def _flip(data: bytes) -> bytes:
    return bytes([data[0] ^ 1]) + data[1:] if data else b"\x01"


BAD_SERVERS: dict[str, tuple[dict[str, Callable[[str, bytes], Any]], tuple[str, ...]]] = {
    # name: (server behaviour, warnings of the build that uploads, then of the one that reads)
    "returns garbage for everything": (
        {"on_get": lambda _p, _d: b"\x00\xffgarbage\x13"},
        ("but sends other bytes back when read back", "ignored an invalid action result for "),
    ),
    "flips a byte of every blob": (
        {"on_get": lambda p, d: _flip(d) if "/cas/" in p else d},
        ("", "does not match its sha256"),
    ),
    "flips a byte of every action result it stores": (
        {"on_put": lambda p, d: _flip(d) if "/ac/" in p else d},
        ("but sends other bytes back when read back", "ignored an invalid action result for "),
    ),
    "loses every PUT (answering 200)": (
        {"on_put": lambda _p, _d: None},
        ("but does not have it when read back", "but does not have it when read back"),
    ),
    "loses the blobs it is sent": (
        {"on_put": lambda p, d: None if "/cas/" in p else d},
        ("", "could not be downloaded (a lost upload?)"),
    ),
}


def _engine_build(tmp: Path, name: str, url: str) -> tuple[dict[str, bytes], list[str]]:
    """A build in a fresh output base and local cache; its outputs and warnings."""
    from enginekit import BIN, sh
    from strata.engine.build import ExecutionConfig, execute
    from strata.engine.execution.report import Reporter
    from strata.engine.execution.scheduler import BuildOptions
    from strata.engine.outputbase import OutputBase

    ws = tmp / "ws"
    (ws / "pkg").mkdir(parents=True, exist_ok=True)
    (ws / "WORKSPACE").write_text("")
    (ws / "pkg" / "a.txt").write_text("alpha\n")
    f, tree, use = f"{BIN}/pkg/f", f"{BIN}/pkg/tree", f"{BIN}/pkg/use"
    actions = [
        sh("//pkg:f", f"tr a-z A-Z < pkg/a.txt > {f}", ["pkg/a.txt"], [f]),
        sh("//pkg:tree", f"mkdir -p {tree} && echo y > {tree}/y", [], [], output_dirs=(tree,)),
        sh("//pkg:use", f"cat {f} {tree}/y > {use}", [f, tree], [use]),
    ]
    stream = io.StringIO()
    base = OutputBase(tmp / name, ws)
    config = ExecutionConfig(
        BuildOptions(jobs=2), disk_cache=tmp / f"{name}-disk", remote=RemoteOptions(url=url)
    )
    execute(base, actions, [f, tree, use], config, Reporter(stream, tty=False))
    outputs = {p: (base.execroot / p).read_bytes() for p in (f, use, f"{tree}/y")}
    return outputs, [line for line in stream.getvalue().splitlines() if "warning" in line]


@pytest.mark.parametrize("case", sorted(BAD_SERVERS))
def test_a_server_that_lies_costs_one_warning_and_never_a_wrong_byte(
    server: _Store, tmp_path: Path, case: str
) -> None:
    behaviour, expected = BAD_SERVERS[case]
    for attr, fn in behaviour.items():
        setattr(server, attr, fn)
    url = _url(server)
    first, warned_first = _engine_build(tmp_path, "ob-a", url)
    second, warned_second = _engine_build(tmp_path, "ob-b", url)
    server.on_get = lambda _p, d: d
    server.on_put = lambda _p, d: d
    server.data.clear()
    clean, _ = _engine_build(tmp_path, "ob-clean", url)
    assert first == second == clean
    for warned, text in zip((warned_first, warned_second), expected, strict=True):
        if text:
            assert len(warned) == 1 and text in warned[0], warned
            assert warned[0].startswith(f"warning: remote cache {url}: "), warned
        else:
            assert warned == [], warned


@pytest.mark.parametrize(("status", "moved"), [(500, ""), (503, ""), (302, "http://elsewhere/x")])
def test_an_action_result_answered_with_an_error_or_a_redirect_warns_once(
    server: _Store, tmp_path: Path, warnings: list[str], status: int, moved: str
) -> None:
    # It was a silent miss: a cache that fails every read looked like an empty one.
    server.miss_status = status
    server.miss_headers = {"Location": moved} if moved else {}
    cache = _tiered(tmp_path, _url(server), warnings)
    assert cache.get_action_result("1" * 64, _check) is None
    assert cache.get_action_result("2" * 64, _check) is None
    assert len(warnings) == 1, warnings
    assert (f" to {moved}, which is not followed" in warnings[0]) == bool(moved)
    assert warnings[0].startswith(
        f"remote cache {_url(server)}: GET {_url(server)}/ac/{'1' * 64} failed (got HTTP {status}"
    )
    assert "such entries count as misses" in warnings[0] and not cache.remote.disabled


def test_only_blobs_worth_asking_about_are_asked_about(
    server: _Store, tmp_path: Path, warnings: list[str]
) -> None:
    """A HEAD before each PUT doubled the requests of small blobs (a store path's info,
    descriptor and listing) for nothing: only a large blob is asked about first."""
    from strata.engine.cache.tiered import ASK_BEFORE_SENDING

    cache = _tiered(tmp_path, _url(server), warnings)
    big = os.urandom(ASK_BEFORE_SENDING + 1)
    result, blobs = _result_with_blobs(tmp_path)
    blobs["out"] = big
    files = (OutputFile("bazel-out/k8-fastbuild/bin/p/out", _sha(big), len(big), False),)
    result = ActionResult(files, result.trees)
    _put_local(cache, tmp_path, blobs)
    cache.put_action_result("k" * 64, result)
    heads = [p for m, p, _h, _b in server.log if m == "HEAD"]
    assert heads == [f"/team/cas/{_sha(big)}"]
    puts = {p for m, p, _h, _b in server.log if m == "PUT"}
    assert {f"/team/cas/{_sha(b)}" for b in blobs.values()} <= puts
    before = len(server.log)
    cache.put_action_result("j" * 64, result)  # the big blob is there now: asked, not sent
    again = [(m, p) for m, p, _h, _b in server.log[before:] if p == f"/team/cas/{_sha(big)}"]
    assert again == [("HEAD", f"/team/cas/{_sha(big)}")]
    assert warnings == []


def test_lookups_in_a_remote_cache_overlap_and_are_handled_in_the_order_asked(
    server: _Store, tmp_path: Path
) -> None:
    """Two independent actions in the remote cache, one output blob each, `--jobs=2`:
    both blobs are downloaded at the same time (a lookup waits on a thread, holding a job
    slot), and the first action asked is handled first though its blob comes last."""
    from enginekit import BIN, sh
    from strata.engine.build import ExecutionConfig, execute
    from strata.engine.execution.report import Reporter
    from strata.engine.execution.scheduler import BuildOptions
    from strata.engine.outputbase import OutputBase

    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "WORKSPACE").write_text("")
    outs = [f"{BIN}/pkg/one", f"{BIN}/pkg/two"]
    actions = [
        sh(f"//pkg:{n}", f"echo {n} > {out}", [], [out])
        for n, out in zip(("one", "two"), outs, strict=True)
    ]
    url = _url(server)

    def build(name: str) -> list[str]:
        """The actions' owners in the order the build handled them (cache hits)."""
        base = OutputBase(tmp_path / name, ws)
        config = ExecutionConfig(
            BuildOptions(jobs=2), disk_cache=tmp_path / f"{name}-disk", remote=RemoteOptions(url)
        )
        reporter = Reporter(io.StringIO(), tty=False)
        order: list[str] = []
        real = reporter.action_finished

        def finished(action_id: int, action: Action, how: str, output: str = "") -> None:
            order.append(f"{action.owner} {how}")
            real(action_id, action, how, output)

        reporter.action_finished = finished  # type: ignore[method-assign]
        execute(base, actions, outs, config, reporter)
        assert [(base.execroot / o).read_text() for o in outs] == ["one\n", "two\n"]
        return order

    assert sorted(build("ob-a")) == ["//pkg:one executed", "//pkg:two executed"]
    first_blob = f"/team/cas/{_sha(b'one' + bytes([10]))}"
    in_flight, most = [0], [0]
    lock = threading.Lock()

    def slow_get(path: str, data: bytes) -> bytes:
        if "/cas/" in path:
            with lock:
                in_flight[0] += 1
                most[0] = max(most[0], in_flight[0])
            time.sleep(0.6 if path == first_blob else 0.2)
            with lock:
                in_flight[0] -= 1
        return data

    server.on_get = slow_get
    assert build("ob-b") == ["//pkg:one cache_hit", "//pkg:two cache_hit"]
    assert most[0] == 2


def test_many_lookups_that_miss_and_end_out_of_order_run_every_action(
    server: _Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lookups that end out of order are handled in order; each that misses starts its
    action, whose pidfd may reuse the number of a lookup's closed pipe. No action may be
    lost that way (a lost one was once reported as up to date)."""
    import random

    from enginekit import BIN, sh
    from strata.engine.build import ExecutionConfig, execute
    from strata.engine.execution.report import Reporter
    from strata.engine.execution.scheduler import BuildOptions
    from strata.engine.outputbase import OutputBase

    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "WORKSPACE").write_text("")
    outs = [f"{BIN}/pkg/o{i}" for i in range(24)]
    actions = [sh(f"//pkg:o{i}", f"echo {i} > {out}", [], [out]) for i, out in enumerate(outs)]
    pause = random.Random(7)

    real_record = _Handler._record

    def record(self: _Handler, body: bytes = b"") -> None:
        real_record(self, body)
        if self.command == "GET" and "/ac/" in self.path:
            time.sleep(pause.choice((0.0, 0.01, 0.05)))

    monkeypatch.setattr(_Handler, "_record", record)
    for jobs in (2, 4):
        base = OutputBase(tmp_path / f"ob{jobs}", ws)
        config = ExecutionConfig(
            BuildOptions(jobs=jobs),
            disk_cache=tmp_path / f"disk{jobs}",
            remote=RemoteOptions(_url(server, f"/j{jobs}"), upload_local_results=False),
        )
        stats = execute(base, actions, outs, config, Reporter(io.StringIO(), tty=False))
        assert stats.executed == len(outs)
        assert [(base.execroot / o).read_text() for o in outs] == [f"{i}\n" for i in range(24)]
