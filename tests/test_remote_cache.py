"""Teams sharing action results through a real nginx WebDAV cache.

Team A builds with `--remote_cache`; team B, a copy of the workspace in
another directory with its own output base and an empty disk cache, builds
the same actions and runs none of them. Failure cases: server down, a hung
server, a corrupt blob, refused reads and uploads. Real Bazel on the same
server is test_remote_cache_bazel.py.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from enginekit import BIN, sh
from nginx_server import NginxCache, running_nginx
from realtools import need, run
from remote_kit import build as _build
from strata.engine.cache import reapi
from strata.engine.cache.http import RemoteOptions
from strata.engine.outputbase import OutputBase

pytestmark = pytest.mark.realtool


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[NginxCache]:
    with running_nginx(tmp_path / "nginx") as server:
        yield server


def _workspace(root: Path, text: str = "hello\n") -> Path:
    (root / "src").mkdir(parents=True)
    (root / "WORKSPACE").write_text("")
    (root / "src" / "a.txt").write_text(text)
    (root / "src" / "b.txt").write_text("world\n")
    return root


ACTIONS = [
    sh(
        "//src:layer_a",
        f"gzip -n -c src/a.txt > {BIN}/src/a.layer",
        ["src/a.txt"],
        [f"{BIN}/src/a.layer"],
        mnemonic="StoreLayer",
    ),
    sh(
        "//src:layer_b",
        f"gzip -n -c src/b.txt > {BIN}/src/b.layer",
        ["src/b.txt"],
        [f"{BIN}/src/b.layer"],
        mnemonic="StoreLayer",
    ),
    sh(
        "//src:tree",
        f"mkdir -p {BIN}/src/tree/sub && cp src/a.txt {BIN}/src/tree/sub/x && "
        f"cp src/b.txt {BIN}/src/tree/y",
        ["src/a.txt", "src/b.txt"],
        [],
        output_dirs=(f"{BIN}/src/tree",),
    ),
    sh(
        "//src:image",
        f"cat {BIN}/src/a.layer {BIN}/src/b.layer > {BIN}/src/image.tar",
        [f"{BIN}/src/a.layer", f"{BIN}/src/b.layer"],
        [f"{BIN}/src/image.tar"],
        mnemonic="ImageAssemble",
        tags=("no-remote-cache",),
    ),
]
OUTPUTS = [f"{BIN}/src/a.layer", f"{BIN}/src/b.layer", f"{BIN}/src/image.tar"]


def _tree_bytes(base: OutputBase) -> dict[str, bytes]:
    files = {p: (base.execroot / p).read_bytes() for p in OUTPUTS}
    tree = base.execroot / BIN / "src" / "tree"
    for p in sorted(tree.rglob("*")):
        if p.is_file():
            files[str(p.relative_to(base.execroot))] = p.read_bytes()
    return files


def test_team_b_fresh_clone_executes_nothing_it_may_share(
    nginx: NginxCache, tmp_path: Path
) -> None:
    remote = RemoteOptions(url=nginx.url + "/teams")
    ws_a, ws_b = _workspace(tmp_path / "a"), _workspace(tmp_path / "b")
    stats_a, log_a, base_a = _build(ws_a, tmp_path / "out-a", ACTIONS, remote)
    assert stats_a.executed == 4 and "warning" not in log_a
    ac = nginx.entries("ac")
    assert len(ac) == 3  # the image (no-remote-cache) is not uploaded
    for data in ac.values():
        reapi.ActionResult.FromString(data)  # real REAPI messages
    cas = nginx.entries("cas")
    image_sha = hashlib.sha256(base_a.execroot.joinpath(OUTPUTS[2]).read_bytes())
    assert image_sha.hexdigest() not in cas
    layer = base_a.execroot.joinpath(OUTPUTS[0]).read_bytes()
    assert hashlib.sha256(layer).hexdigest() in cas

    stats_b, log_b, base_b = _build(ws_b, tmp_path / "out-b", ACTIONS[:3], remote)
    assert (stats_b.executed, stats_b.cache_hits) == (0, 3)
    assert "remote cache: 3 hits" in log_b
    stats_b2, _log, base_b = _build(ws_b, tmp_path / "out-b", ACTIONS, remote)
    assert stats_b2.executed_labels == ["//src:image ImageAssemble"]
    assert _tree_bytes(base_b) == _tree_bytes(base_a)
    # Uploads went blobs first, action result last, each with a Content-Length.
    puts = [r for r in nginx.requests() if r.startswith("PUT ")]
    first_ac = next(i for i, r in enumerate(puts) if "/ac/" in r)
    assert any("/cas/" in r for r in puts[:first_ac])


def test_server_down_warns_once_and_builds_locally(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    remote = RemoteOptions(url=f"http://127.0.0.1:{port}", timeout=5)
    stats, log, base = _build(_workspace(tmp_path / "ws"), tmp_path / "out", ACTIONS, remote)
    assert stats.executed == 4
    assert log.count("warning:") == 1 and "continuing without the remote cache" in log
    assert (base.execroot / OUTPUTS[2]).read_bytes().startswith(b"\x1f\x8b")


def test_hung_server_times_out_once_and_builds_locally(tmp_path: Path) -> None:
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)  # accepts connections into the backlog, never answers
        port = hung.getsockname()[1]
        remote = RemoteOptions(url=f"http://127.0.0.1:{port}", timeout=0.5)
        stats, log, _base = _build(_workspace(tmp_path / "ws"), tmp_path / "out", ACTIONS, remote)
    assert stats.executed == 4
    assert log.count("warning:") == 1 and "Timeout" in log


def test_corrupt_blob_on_the_server_is_rejected_and_the_action_runs(
    nginx: NginxCache, tmp_path: Path
) -> None:
    remote = RemoteOptions(url=nginx.url)
    _build(_workspace(tmp_path / "a"), tmp_path / "out-a", ACTIONS[:1], remote)
    (blob,) = [p for p in nginx.cache_dir.joinpath("cas").iterdir()]
    good = blob.read_bytes()
    blob.write_bytes(b"not the layer")
    stats, log, base = _build(_workspace(tmp_path / "b"), tmp_path / "out-b", ACTIONS[:1], remote)
    assert stats.executed == 1 and stats.cache_hits == 0
    assert log.count("warning:") == 1 and f"blob {blob.name} does not match its sha256" in log
    assert blob.read_bytes() == good  # uploaded again by the run
    assert (base.execroot / OUTPUTS[0]).read_bytes() == good
    disk = tmp_path / "out-b" / "disk"
    assert not [p for p in disk.rglob("*") if p.name.endswith(".tmp")]
    # The local entry written is the one from the local run, with the right blob.
    assert (disk / "cas" / blob.name[:2] / blob.name).read_bytes() == good


def test_noremote_accept_cached_and_no_upload(nginx: NginxCache, tmp_path: Path) -> None:
    quiet = RemoteOptions(url=nginx.url, upload_local_results=False)
    _build(_workspace(tmp_path / "a"), tmp_path / "out-a", ACTIONS[:2], quiet)
    assert nginx.entries("ac") == {}
    _build(_workspace(tmp_path / "b"), tmp_path / "out-b", ACTIONS[:2], RemoteOptions(nginx.url))
    blind = RemoteOptions(url=nginx.url, accept_cached=False)
    stats, _log, _b = _build(_workspace(tmp_path / "c"), tmp_path / "out-c", ACTIONS[:2], blind)
    assert stats.executed == 2


def _auth_nginx(root: Path, *, reads_too: bool) -> NginxCache:
    """nginx asking for basic auth on writes, and on reads too when `reads_too`."""
    users = root / "htpasswd"
    root.mkdir(parents=True)
    users.write_text(run(need("htpasswd"), "-nb", "team", "cache-pw").stdout)
    auth = f'auth_basic "cache"; auth_basic_user_file {users};'
    server = NginxCache(root, extra=auth if reads_too else f"limit_except GET HEAD {{ {auth} }}")
    server.start(need("nginx"))
    return server


def test_cache_refusing_reads_warns_once_naming_the_fix(tmp_path: Path) -> None:
    """401 to every read is a miss, as 404 is, but worth saying (Bazel: 'Reading from
    Remote Cache: 401 Unauthorized'): otherwise a team never learns its cache is unused."""
    server = _auth_nginx(tmp_path / "nginx", reads_too=True)
    try:
        anonymous = RemoteOptions(url=server.url)
        stats, log, _b = _build(_workspace(tmp_path / "a"), tmp_path / "out-a", ACTIONS, anonymous)
        assert stats.executed == 4
        assert log.count("reading was refused") == 1, log
        assert (
            f"warning: remote cache {server.url}: reading was refused (GET {server.url}/ac/"
        ) in log
        assert "got HTTP 401 Unauthorized); every lookup misses and actions run locally; " in log
        assert "--remote_cache=http://user:password@host:port/..." in log
        assert log.count("warning:") == 2  # and one for the refused uploads
        assert server.entries("ac") == {} and server.entries("cas") == {}
        # The fix it names works: team B, with credentials, stores; team C hits.
        url = server.url.replace("http://", "http://team:cache-pw@")
        stats, log, _b = _build(
            _workspace(tmp_path / "b"), tmp_path / "out-b", ACTIONS, RemoteOptions(url=url)
        )
        assert stats.executed == 4 and "warning" not in log
        stats, log, _b = _build(
            _workspace(tmp_path / "c"), tmp_path / "out-c", ACTIONS[:3], RemoteOptions(url=url)
        )
        assert (stats.executed, stats.cache_hits) == (0, 3) and "warning" not in log
    finally:
        server.stop()


def test_refused_uploads_are_not_counted_as_uploaded(tmp_path: Path) -> None:
    server = _auth_nginx(tmp_path / "nginx", reads_too=False)
    try:
        remote = RemoteOptions(url=server.url)
        stats, log, _b = _build(_workspace(tmp_path / "a"), tmp_path / "out-a", ACTIONS, remote)
        assert stats.executed == 4
        assert server.entries("ac") == {} and server.entries("cas") == {}
        refused = [r for r in server.requests() if r.startswith("PUT ")]
        assert refused and all(r.endswith(" 401") for r in refused)
        assert log.count("warning:") == 1 and "was refused (got HTTP 401)" in log
        summary = next(line for line in log.splitlines() if line.startswith("remote cache:"))
        assert ", 0 bytes uploaded, " in summary, summary
        assert summary.endswith(f", {len(refused)} uploads refused"), summary
        assert "reads refused" not in summary  # anonymous reads are allowed here
    finally:
        server.stop()
