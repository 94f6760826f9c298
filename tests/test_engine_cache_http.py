"""The HTTP cache client and the tiered policy, against an in-process server.

The server (cache_server.py) records every request (method, path, headers,
body) so the tests can check what goes on the wire: Content-Length and no
chunking, the order of uploads, auth headers, and what a 204/404/500 or a slow
answer does. Whole builds through it are in test_engine_cache_builds.py, the
REAPI messages alone in test_engine_cache_reapi.py; the same behaviour against
real nginx is in test_remote_cache.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cache_server import CacheServer, cache_url, serving, sha_hex
from strata.engine.action import Action
from strata.engine.cache import (
    ActionResult,
    InvalidEntry,
    OutputFile,
    OutputTree,
    RemoteResult,
    reapi,
)
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


@pytest.fixture
def server() -> Iterator[CacheServer]:
    with serving() as srv:
        yield srv


@pytest.fixture
def warnings() -> list[str]:
    return []


def _tiered(tmp_path: Path, srv_url: str, warnings: list[str], **kw: object) -> TieredCache:
    opts = RemoteOptions(url=srv_url, **kw)  # type: ignore[arg-type]
    return TieredCache(LocalDiskCache(tmp_path / "local"), HttpCache(opts, warnings.append), opts)


def _result_with_blobs(tmp_path: Path) -> tuple[ActionResult, dict[str, bytes]]:
    blobs = {"out": b"layer bytes\n", "t1": b"one\n", "t2": b"two\n"}
    files = (OutputFile("bazel-out/k8-fastbuild/bin/p/out", sha_hex(blobs["out"]), 12, False),)
    tree = OutputTree(
        "bazel-out/k8-fastbuild/bin/p/dir",
        (
            OutputFile("a/one", sha_hex(blobs["t1"]), 4, True),
            OutputFile("two", sha_hex(blobs["t2"]), 4, False),
        ),
    )
    return ActionResult(files, (tree,)), blobs


def _put_local(cache: TieredCache, tmp_path: Path, blobs: dict[str, bytes]) -> None:
    for name, data in blobs.items():
        src = tmp_path / f"src-{name}"
        src.write_bytes(data)
        cache.put_blob(sha_hex(data), src)


def _uploaded(
    server: CacheServer, tmp_path: Path, warnings: list[str], download: str = "all"
) -> tuple[ActionResult, dict[str, bytes], TieredCache]:
    """A result and its blobs put (so uploaded) through one cache, and a second cache with
    an empty local disk on the same server (downloading outputs as `download` says)."""
    result, blobs = _result_with_blobs(tmp_path)
    a = _tiered(tmp_path / "a", cache_url(server), warnings)
    _put_local(a, tmp_path, blobs)
    a.put_action_result("k" * 64, result)
    return result, blobs, _tiered(tmp_path / "b", cache_url(server), warnings,
                                  download_outputs=download)  # fmt: skip


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


def test_result_round_trips_through_reapi_with_trees() -> None:
    result, _ = _result_with_blobs(Path("."))
    msg, trees = to_reapi(result)
    back = from_reapi(reapi.ActionResult.FromString(reapi.encode(msg)), trees.get)
    assert back == result
    with pytest.raises(ValueError, match="tree blob .* could not be downloaded"):
        from_reapi(msg, lambda _sha: None)
    with pytest.raises(ValueError, match="failed run"):
        from_reapi(reapi.ActionResult(exit_code=1), trees.get)
    bad = reapi.ActionResult()
    bad.output_directories.add(path="d", tree_digest=reapi.Digest(hash="../../x", size_bytes=1))
    with pytest.raises(ValueError, match="invalid tree digest"):
        from_reapi(bad, trees.get)


# -- the wire --------------------------------------------------------------------


def test_upload_order_content_length_and_headers(
    server: CacheServer, tmp_path: Path, warnings: list[str]
) -> None:
    cache = _tiered(
        tmp_path, cache_url(server).replace("//", "//u:p@"), warnings, headers=(("X-Token", "t"),)
    )
    result, blobs = _result_with_blobs(tmp_path)
    _put_local(cache, tmp_path, blobs)
    assert not [r for r in server.log if r[0] == "PUT"]  # put_blob alone stays local
    cache.put_action_result("k" * 64, result)
    puts = [(path, headers, body) for method, path, headers, body in server.log if method == "PUT"]
    assert [p for p, _h, _b in puts][-1] == "/team/ac/" + "k" * 64
    assert {p for p, _h, _b in puts[:-1]} >= {f"/team/cas/{sha_hex(b)}" for b in blobs.values()}
    for _path, headers, body in puts:
        assert headers["Content-Length"] == str(len(body))
        assert "Transfer-Encoding" not in headers
        assert headers["Authorization"] == "Basic dTpw"
        assert headers["X-Token"] == "t"
    stored = reapi.ActionResult.FromString(server.data["/team/ac/" + "k" * 64])
    assert [f.path for f in stored.output_files] == ["bazel-out/k8-fastbuild/bin/p/out"]
    tree_sha = stored.output_directories[0].tree_digest.hash
    assert sha_hex(server.data[f"/team/cas/{tree_sha}"]) == tree_sha
    assert warnings == []


def test_fresh_cache_gets_result_and_blobs_then_writes_local_entry(
    server: CacheServer, tmp_path: Path, warnings: list[str]
) -> None:
    result, blobs, b = _uploaded(server, tmp_path, warnings)
    assert b.local.get_action_result("k" * 64, _check) is None
    assert b.get_action_result("k" * 64, _check) == result
    assert b.local.get_action_result("k" * 64, _check) == result
    for data in blobs.values():
        assert b.local.has_blob(sha_hex(data))
    out = tmp_path / "materialised"
    assert b.get_blob(sha_hex(blobs["out"]), out) and out.read_bytes() == blobs["out"]
    assert b.remote_hits == 1 and b.remote.stats.downloaded > 0


def test_a_hit_that_leaves_outputs_remote_downloads_them_only_when_asked(
    server: CacheServer, tmp_path: Path, warnings: list[str]
) -> None:
    result, blobs, b = _uploaded(server, tmp_path, warnings, download="toplevel")
    before = len(server.log)
    assert b.get_action_result("k" * 64, _check) == RemoteResult(result)
    assert [p for _m, p, _h, _b in server.log[before:] if "/cas/" in p] == [
        f"/team/cas/{to_reapi(result)[0].output_directories[0].tree_digest.hash}"
    ]  # the tree's listing, which its digests need; no output's bytes
    assert b.local.get_action_result("k" * 64, _check) is None  # nothing local to prove it
    assert not any(b.local.has_blob(sha_hex(data)) for data in blobs.values())
    assert b.remote_hits == 1
    out = tmp_path / "materialised"
    assert b.get_blob(sha_hex(blobs["out"]), out) and out.read_bytes() == blobs["out"]
    # a blob the server spoils is caught when it comes down, and nothing is kept
    server.data[f"/team/cas/{sha_hex(blobs['t1'])}"] = b"evil\n"
    with pytest.raises(InvalidEntry, match="does not match its sha256"):
        b.get_blob(sha_hex(blobs["t1"]), tmp_path / "t1")
    assert not (tmp_path / "t1").exists() and not b.local.has_blob(sha_hex(blobs["t1"]))


@pytest.mark.parametrize("status", [404, 204])
def test_404_and_204_are_misses(
    server: CacheServer, tmp_path: Path, warnings: list[str], status: int
) -> None:
    server.miss_status = status
    cache = _tiered(tmp_path, cache_url(server), warnings)
    assert cache.get_action_result("0" * 64, _check) is None
    assert not cache.get_blob("0" * 64, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert warnings == [] and not cache.remote.disabled


def test_result_with_a_missing_blob_is_invalid_and_leaves_no_local_entry(
    server: CacheServer, tmp_path: Path, warnings: list[str]
) -> None:
    result, blobs, b = _uploaded(server, tmp_path, warnings)
    del server.data[f"/team/cas/{sha_hex(blobs['t2'])}"]
    with pytest.raises(InvalidEntry, match=f"blob {sha_hex(blobs['t2'])} could not be down"):
        b.get_action_result("k" * 64, _check)
    assert b.local.get_action_result("k" * 64, _check) is None


def test_wrong_blob_is_rejected(server: CacheServer, tmp_path: Path, warnings: list[str]) -> None:
    result, blobs, b = _uploaded(server, tmp_path, warnings)
    server.data[f"/team/cas/{sha_hex(blobs['out'])}"] = b"evil bytes!\n"
    with pytest.raises(InvalidEntry, match="does not match its sha256") as err:
        b.get_action_result("k" * 64, _check)
    assert err.value.cache == f"remote cache {cache_url(server)}"
    assert not b.local.has_blob(sha_hex(blobs["out"]))
    assert b.local.get_action_result("k" * 64, _check) is None
    leftovers = [p for p in (tmp_path / "b").rglob("*") if p.is_file()]
    assert all(p.name != sha_hex(blobs["out"]) and not p.name.endswith(".tmp") for p in leftovers)


def test_remote_result_failing_the_check_is_never_fetched_or_stored(
    server: CacheServer, tmp_path: Path, warnings: list[str]
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
    server: CacheServer, tmp_path: Path, warnings: list[str], body: bytes
) -> None:
    server.data["/team/ac/" + "k" * 64] = body
    b = _tiered(tmp_path, cache_url(server), warnings)
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
    server: CacheServer, tmp_path: Path, warnings: list[str]
) -> None:
    server.delay = 2.0
    cache = _tiered(tmp_path, cache_url(server), warnings, timeout=0.3)
    assert cache.get_action_result("1" * 64, _check) is None
    assert cache.get_action_result("2" * 64, _check) is None
    assert len(warnings) == 1 and "Timeout" in warnings[0]
    assert len(server.log) == 1


def test_refused_upload_warns_once_and_no_result_is_stored(
    server: CacheServer, tmp_path: Path, warnings: list[str]
) -> None:
    server.put_status = 401
    cache = _tiered(tmp_path, cache_url(server), warnings)
    result, blobs = _result_with_blobs(tmp_path)
    _put_local(cache, tmp_path, blobs)
    cache.put_action_result("k" * 64, result)
    cache.put_action_result("j" * 64, result)
    assert len(warnings) == 1 and "got HTTP 401" in warnings[0]
    assert not any(p.startswith("/team/ac/") for _m, p, _h, _b in server.log)


def test_policy_flags_and_tags(server: CacheServer, tmp_path: Path, warnings: list[str]) -> None:
    result, blobs = _result_with_blobs(tmp_path)
    no_upload = _tiered(tmp_path / "a", cache_url(server), warnings, upload_local_results=False)
    _put_local(no_upload, tmp_path, blobs)
    no_upload.put_action_result("k" * 64, result)
    assert server.log == []
    full = _tiered(tmp_path / "b", cache_url(server), warnings)
    _put_local(full, tmp_path, blobs)
    full.put_action_result("k" * 64, result)
    no_accept = _tiered(tmp_path / "c", cache_url(server), warnings, accept_cached=False)
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


# -- errors, redirects and what is worth asking ----------------------------------


@pytest.mark.parametrize(("status", "moved"), [(500, ""), (503, ""), (302, "http://elsewhere/x")])
def test_an_action_result_answered_with_an_error_or_a_redirect_warns_once(
    server: CacheServer, tmp_path: Path, warnings: list[str], status: int, moved: str
) -> None:
    # It was a silent miss: a cache that fails every read looked like an empty one.
    server.miss_status = status
    server.miss_headers = {"Location": moved} if moved else {}
    cache = _tiered(tmp_path, cache_url(server), warnings)
    assert cache.get_action_result("1" * 64, _check) is None
    assert cache.get_action_result("2" * 64, _check) is None
    assert len(warnings) == 1, warnings
    assert (f" to {moved}, which is not followed" in warnings[0]) == bool(moved)
    url = cache_url(server)
    assert warnings[0].startswith(
        f"remote cache {url}: GET {url}/ac/{'1' * 64} failed (got HTTP {status}"
    )
    assert "such entries count as misses" in warnings[0] and not cache.remote.disabled


def test_only_blobs_worth_asking_about_are_asked_about(
    server: CacheServer, tmp_path: Path, warnings: list[str]
) -> None:
    """A HEAD before each PUT doubled the requests of small blobs (a store path's info,
    descriptor and listing) for nothing: only a large blob is asked about first."""
    from strata.engine.cache.tiered import ASK_BEFORE_SENDING

    cache = _tiered(tmp_path, cache_url(server), warnings)
    big = os.urandom(ASK_BEFORE_SENDING + 1)
    result, blobs = _result_with_blobs(tmp_path)
    blobs["out"] = big
    files = (OutputFile("bazel-out/k8-fastbuild/bin/p/out", sha_hex(big), len(big), False),)
    result = ActionResult(files, result.trees)
    _put_local(cache, tmp_path, blobs)
    cache.put_action_result("k" * 64, result)
    heads = [p for m, p, _h, _b in server.log if m == "HEAD"]
    assert heads == [f"/team/cas/{sha_hex(big)}"]
    puts = {p for m, p, _h, _b in server.log if m == "PUT"}
    assert {f"/team/cas/{sha_hex(b)}" for b in blobs.values()} <= puts
    before = len(server.log)
    cache.put_action_result("j" * 64, result)  # the big blob is there now: asked, not sent
    again = [(m, p) for m, p, _h, _b in server.log[before:] if p == f"/team/cas/{sha_hex(big)}"]
    assert again == [("HEAD", f"/team/cas/{sha_hex(big)}")]
    assert warnings == []
