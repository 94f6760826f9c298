"""CustomizationLayer through the action CLI: join, extra_commands, fake_root_commands."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest

import storegen
from realtools import need, unavailable
from strata.cli import main
from strata.store.layer import write_store_layer

STORE = "/nix/store"
BUSYBOX_PATH = f"{STORE}/0c8w9s1iy6mbmn8xl9wn3m2d8cg1zc6q-busybox"
TOOLS_PATH = f"{STORE}/1bfwg64jzs1pzh4x0jj7lyw5cy5hs0pv-tools"


def action(tmp: Path, mnemonic: str, req: dict[str, Any]) -> int:
    path = tmp / f"{mnemonic}.json"
    path.write_text(json.dumps({"schema_version": 1, **req}, sort_keys=True))
    return main(["action", mnemonic, f"@{path}"])


def store_content(tmp: Path) -> tuple[Path, Path]:
    busybox = tmp / "busybox"
    (busybox / "bin").mkdir(parents=True)
    (busybox / "bin" / "busybox").write_bytes(b"not really busybox\n")
    os.symlink("busybox", busybox / "bin" / "sh")
    tools = tmp / "tools"
    (tools / "bin").mkdir(parents=True)
    (tools / "bin" / "sh").write_text("tools' sh loses: busybox comes first\n")
    (tools / "bin" / "tool").write_text("#!/bin/sh\n")
    (tools / "etc").mkdir()
    (tools / "etc" / "tool.conf").write_text("x=1\n")
    return busybox, tools


def layer_request(tmp: Path, **extra: Any) -> dict[str, Any]:
    busybox, tools = store_content(tmp)
    return {
        "contents": [
            {"store_path": BUSYBOX_PATH, "src": str(busybox)},
            {"store_path": TOOLS_PATH, "src": str(tools)},
        ],
        "compressor": "none",
        "output": str(tmp / "out" / "layer.tar"),
        "descriptor": str(tmp / "out" / "layer.json"),
        **extra,
    }


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_contents_are_symlink_joined_first_wins(tmp_path: Path) -> None:
    assert action(tmp_path, "CustomizationLayer", layer_request(tmp_path)) == 0
    m = members(tmp_path / "out" / "layer.tar")
    assert sorted(m) == ["bin", "bin/busybox", "bin/sh", "bin/tool", "etc", "etc/tool.conf"]
    assert m["bin"].isdir() and m["bin"].mode == 0o755
    # lndir makes a link again with its own target; only files are linked into the path
    assert m["bin/sh"].issym() and m["bin/sh"].linkname == "busybox"
    assert m["bin/busybox"].linkname == f"{BUSYBOX_PATH}/bin/busybox"
    assert m["bin/tool"].linkname == f"{TOOLS_PATH}/bin/tool"
    assert m["etc/tool.conf"].linkname == f"{TOOLS_PATH}/etc/tool.conf"
    assert all(x.mtime == 1 and x.uid == 0 and x.gid == 0 for x in m.values())
    desc = json.loads((tmp_path / "out" / "layer.json").read_text())
    assert desc["size"] == (tmp_path / "out" / "layer.tar").stat().st_size


def test_extra_commands_make_world_writable_dir(tmp_path: Path) -> None:
    req = layer_request(tmp_path, extra_commands="mkdir -m 1777 tmp && echo hi > etc/motd")
    assert action(tmp_path, "CustomizationLayer", req) == 0
    m = members(tmp_path / "out" / "layer.tar")
    assert m["tmp"].isdir() and m["tmp"].mode == 0o1777
    assert m["etc/motd"].isfile() and m["etc/motd"].mode == 0o644
    with tarfile.open(tmp_path / "out" / "layer.tar") as tar:
        f = tar.extractfile("etc/motd")
        assert f is not None and f.read() == b"hi\n"


@pytest.mark.realtool
def test_fake_root_commands_ownership_lands_in_tar(tmp_path: Path) -> None:
    need("fakeroot")
    if os.geteuid() == 0:
        need("setpriv")
    req = layer_request(
        tmp_path,
        extra_commands="mkdir data && echo s > data/secret",
        fake_root_commands="chown 1000:1000 ./data && chmod 0700 ./data && chown 7:8 data/secret",
    )
    assert action(tmp_path, "CustomizationLayer", req) == 0
    m = members(tmp_path / "out" / "layer.tar")
    assert (m["data"].uid, m["data"].gid, m["data"].mode) == (1000, 1000, 0o700)
    assert (m["data/secret"].uid, m["data/secret"].gid) == (7, 8)
    # Untouched entries stay root-owned (the request's uid/gid), nothing was really chowned.
    assert (m["bin"].uid, m["bin"].gid, m["bin/sh"].uid) == (0, 0, 0)


@pytest.mark.realtool
def test_fake_root_owner_defaults_come_from_request(tmp_path: Path) -> None:
    need("fakeroot")
    req = layer_request(tmp_path, fake_root_commands="chown 5:6 etc", uid=42, gid=43)
    assert action(tmp_path, "CustomizationLayer", req) == 0
    m = members(tmp_path / "out" / "layer.tar")
    assert (m["etc"].uid, m["etc"].gid) == (5, 6)
    assert (m["bin"].uid, m["bin"].gid) == (42, 43)


@pytest.mark.realtool
def test_same_request_same_bytes(tmp_path: Path) -> None:
    need("fakeroot")
    outs = []
    for i in range(2):
        d = tmp_path / str(i)
        d.mkdir()
        req = layer_request(
            d,
            compressor="gzip",
            extra_commands="mkdir -m 1777 tmp",
            fake_root_commands="chown 1:1 tmp",
        )
        req["output"] = str(tmp_path / f"layer{i}.tgz")
        req["descriptor"] = str(tmp_path / f"layer{i}.json")
        assert action(d, "CustomizationLayer", req) == 0
        outs.append((tmp_path / f"layer{i}.tgz").read_bytes())
    assert outs[0] == outs[1]


@pytest.mark.realtool
@pytest.mark.parametrize("form", ["src", "layer"])
def test_fakechroot_runs_commands_in_the_layer_root(tmp_path: Path, form: str) -> None:
    need("fakeroot")
    need("proot")
    busybox = need("busybox")
    content = tmp_path / "bb"
    (content / "bin").mkdir(parents=True)
    (content / "bin" / "busybox").write_bytes(Path(busybox).read_bytes())
    os.chmod(content / "bin" / "busybox", 0o755)
    os.symlink("busybox", content / "bin" / "sh")
    os.symlink("busybox", content / "bin" / "mkdir")
    os.symlink("busybox", content / "bin" / "chmod")
    item: dict[str, str] = {"store_path": BUSYBOX_PATH, "src": str(content)}
    if form == "layer":  # the store path bound for proot is unpacked from its layer
        write_store_layer(tmp_path / "bb.tar", content, BUSYBOX_PATH)
        (tmp_path / "bb.json").write_text(json.dumps({"path": BUSYBOX_PATH, "closure": []}))
        item = {
            "info": str(tmp_path / "bb.json"),
            "layer": str(tmp_path / "bb.tar"),
            "join": "link",
        }
    req = {
        "contents": [item],
        "compressor": "none",
        "enable_fakechroot": True,
        "fake_root_commands": "mkdir /srv && chmod 0750 /srv && echo $(pwd) > /srv/where",
        "output": str(tmp_path / "layer.tar"),
        "descriptor": str(tmp_path / "layer.json"),
    }
    assert action(tmp_path, "CustomizationLayer", req) == 0
    m = members(tmp_path / "layer.tar")
    assert m["srv"].isdir() and m["srv"].mode == 0o750
    with tarfile.open(tmp_path / "layer.tar") as tar:
        f = tar.extractfile("srv/where")
        assert f is not None and f.read() == b"/\n"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"extra_commands": "echo broken >&2; exit 3"},
            "extra_commands failed (got exit status 3: 'broken'); fix extra_commands",
        ),
        pytest.param(
            {"fake_root_commands": "false"},
            "fake_root_commands failed (got exit status 1: ''); fix fake_root_commands",
            marks=pytest.mark.realtool,
        ),
        (
            {"contents": [{"store_path": BUSYBOX_PATH, "src": "/nonexistent-strata-dir"}]},
            "contents[0]: src is not a directory (got '/nonexistent-strata-dir'); "
            "pass the store path's content",
        ),
        (
            {"contents": [{"store_path": "nix/store/x", "src": "/"}]},
            "contents[0]: store_path must be absolute (got 'nix/store/x'); "
            "write <store_dir>/<hash>-<name>",
        ),
        (
            {"bogus": 1},
            "unknown request key (got 'bogus'); allowed keys: closure, compressor, contents",
        ),
        (
            {"compressor": "lzma"},
            "compressor",
        ),
    ],
)
def test_bad_requests_one_line_and_no_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: dict[str, Any], message: str
) -> None:
    if "fake_root_commands" in extra:
        need("fakeroot")
    req = {**layer_request(tmp_path), **extra}
    rc = action(tmp_path, "CustomizationLayer", req)
    err = capsys.readouterr().err
    assert rc == 1
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert message in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.realtool
def test_unprivileged_caller_uses_fakeroot_directly(tmp_path: Path) -> None:
    """The usual Bazel case: strata itself runs as a user, so no setpriv is involved."""
    need("fakeroot")
    if os.geteuid() != 0:
        pytest.skip("already unprivileged: the other fakeroot tests cover this case")
    need("setpriv")
    python = Path("/usr/bin/python3")
    site = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    if not python.exists() or not (site / "site-packages").is_dir():
        unavailable("no system python3 of this version to run strata as nobody")
    work = Path(tempfile.mkdtemp(prefix="strata-nobody-", dir="/tmp"))
    try:
        os.chmod(work, 0o777)
        req = layer_request(
            work, extra_commands="mkdir data", fake_root_commands="chown 1000:1000 data"
        )
        for p in [work, *work.rglob("*")]:
            os.lchown(p, 65534, 65534)
        (work / "req.json").write_text(json.dumps({"schema_version": 1, **req}))
        repo = Path(__file__).parents[1]
        # The checkout may sit where nobody cannot reach (a mktemp -d is 0700): bind its
        # sources and packages into the world-readable work directory for this run.
        need("bwrap")
        (work / "py").mkdir()
        (work / "site").mkdir()
        binds = ["--ro-bind", str(repo / "python"), str(work / "py")]
        binds += ["--ro-bind", str(site / "site-packages"), str(work / "site")]
        env = {"PYTHONPATH": f"{work / 'py'}:{work / 'site'}", "PATH": "/usr/bin:/bin"}
        proc = subprocess.run(
            ["bwrap", "--bind", "/", "/", "--dev", "/dev", *binds, "--"]
            + ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(python)]
            + ["-m", "strata", "action", "CustomizationLayer", f"@{work / 'req.json'}"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        m = members(work / "out" / "layer.tar")
        assert (m["data"].uid, m["data"].gid) == (1000, 1000)
        assert (m["bin"].uid, m["bin"].gid) == (0, 0)  # nobody's files, faked as root's
        assert os.stat(work / "out" / "layer.tar").st_uid == 65534
    finally:
        shutil.rmtree(work)


def test_missing_fakeroot_is_a_user_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    req = layer_request(tmp_path, fake_root_commands="true")
    assert action(tmp_path, "CustomizationLayer", req) == 1
    err = capsys.readouterr().err
    assert "fake_root_commands needs fakeroot, which is not on PATH (got PATH=" in err
    assert err.strip().endswith("install the Debian package fakeroot")
    assert not (tmp_path / "out").exists()


def _layers(tmp: Path) -> list[dict[str, str]]:
    """The issue's five paths as StorePath layers and info files (lib64 -> lib, share/doc)."""
    store = tmp / "store"
    items = []
    for p in storegen.write_store(storegen.issue_set(), store):
        name = Path(p).name
        layer, info = tmp / f"{name}.tar", tmp / f"{name}.json"
        write_store_layer(layer, p, p, str(store))
        info.write_text(json.dumps({"path": p, "closure": []}))
        items.append({"info": str(info), "layer": str(layer)})
    return items


def test_join_from_layers_copies_links_and_reads_no_tree(tmp_path: Path) -> None:
    items = _layers(tmp_path)
    req = {
        "contents": [{**i, "join": "link"} for i in items],
        "compressor": "none",
        "output": str(tmp_path / "out" / "layer.tar"),
        "descriptor": str(tmp_path / "out" / "layer.json"),
    }
    assert action(tmp_path, "CustomizationLayer", req) == 0
    m = members(tmp_path / "out" / "layer.tar")
    first = json.loads(Path(items[0]["info"]).read_text())["path"]
    assert m["lib64"].issym() and m["lib64"].linkname == "lib"  # one link, not a merged dir
    assert not [n for n in m if n.startswith("lib64/")]
    assert m["share/doc"].linkname == "../lib/sub" and m["bin/current"].linkname == "tool0"
    assert m["lib/libx.so"].linkname == f"{first}/lib/libx.so"
    assert sorted(n for n in m if n.startswith("bin/tool")) == [f"bin/tool{i}" for i in range(5)]


def test_copy_from_layers_follows_dirlinks_like_rsync_k(tmp_path: Path) -> None:
    items = _layers(tmp_path)
    req = {
        "contents": items[:2],
        "closure": items,
        "compressor": "none",
        "output": str(tmp_path / "out" / "layer.tar"),
        "descriptor": str(tmp_path / "out" / "layer.json"),
    }
    assert action(tmp_path, "CustomizationLayer", req) == 0
    m = members(tmp_path / "out" / "layer.tar")
    assert m["lib64"].isdir() and m["lib64/sub/data"].isfile()  # the link copied as lib
    assert m["bin/current"].issym() and m["bin/current"].linkname == "tool1"
    assert m["bin/tool0"].mode == m["bin/tool1"].mode == 0o755


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"join": "copy"}, "contents[0]: join must be \"link\" (got 'copy')"),
        ({"src": "/tmp"}, 'contents[0]: must be {"store_path": P, "src": DIR}, '),
    ],
)
def test_bad_contents_forms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], item: dict[str, str], message: str
) -> None:
    (first,) = _layers(tmp_path)[:1]
    req = {
        "contents": [{**first, **item}],
        "output": str(tmp_path / "out" / "layer.tar"),
        "descriptor": str(tmp_path / "out" / "layer.json"),
    }
    assert action(tmp_path, "CustomizationLayer", req) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def _set_layers(spec: storegen.SetSpec, tmp: Path) -> tuple[list[dict[str, str]], list[str]]:
    """A set's closure as StorePath layers and info files; the set's own paths, in order."""
    store = tmp / "store"
    paths = storegen.write_store(spec, store)
    items = []
    for p in sorted(str(q) for q in store.iterdir()):
        name = Path(p).name
        layer, info = tmp / f"{name}.tar", tmp / f"{name}.json"
        write_store_layer(layer, p, p, str(store))
        info.write_text(json.dumps({"path": p, "closure": []}))
        items.append({"info": str(info), "layer": str(layer), "path": p})
    return items, paths


def _files(tmp: Path, rng: random.Random) -> list[dict[str, str]]:
    """`files` items landing where the set's links and directories are."""
    src = tmp / "extra.txt"
    src.write_text("extra\n")
    places = ["lib", "lib64", "share/doc", "bin", "x", "sub/x"]
    return [
        {"src": str(src), "dest": f"{rng.choice(places)}/extra.txt"},
        {"dest": rng.choice(places), "type": "dir", "mode": rng.choice(["0755", "0700"])},
        {"dest": f"{rng.choice(places)}/made", "type": "file", "content": "made\n"},
        {"dest": f"{rng.choice(places)}/ln", "type": "symlink", "target": "../x"},
    ]


def test_memory_and_directory_roots_give_the_same_layer_bytes(tmp_path: Path) -> None:
    """The layer planned in memory is the one the tree on disk gave, byte for byte.

    `extra_commands = ":"` (which does nothing) makes the action lay the
    root out on disk, as it must when commands run; without it the root is
    planned in memory. Generated sets, joined and copied (with and without
    keep_dirlinks, and `files` over them): same bytes, or the same error.
    """
    rng = random.Random(5)
    outcomes = {"same bytes": 0, "same error": 0}
    for spec in storegen.generate(1111, 80, dangling=True, big=1):
        tmp = tmp_path / spec.name
        items, paths = _set_layers(spec, tmp)
        by_path = {i.pop("path"): i for i in items}
        form = rng.choice(["join", "copy"])
        contents = [{**by_path[p], "join": "link"} if form == "join" else by_path[p] for p in paths]
        req: dict[str, Any] = {
            "contents": contents,
            "closure": list(by_path.values()) if form == "copy" else [],
            "keep_dirlinks": spec.keep_dirlinks,
            "compressor": "none",
        }
        if rng.random() < 0.5:
            req["files"] = _files(tmp, rng)
        results = []
        for how, extra in (("memory", {}), ("directory", {"extra_commands": ":"})):
            out = tmp / how
            got = _run_action(
                tmp,
                {**req, **extra, "output": str(out / "l.tar"), "descriptor": str(out / "l.json")},
            )
            results.append(got if isinstance(got, str) else (out / "l.tar").read_bytes())
        assert results[0] == results[1], spec.name
        outcomes["same error" if isinstance(results[0], str) else "same bytes"] += 1
    print(outcomes)
    assert outcomes["same bytes"] > 3 * outcomes["same error"] > 0, outcomes


def _run_action(tmp: Path, req: dict[str, Any]) -> str | None:
    """None, or the error the action printed."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = action(tmp, "CustomizationLayer", req)
    return None if status == 0 else err.getvalue()


@pytest.mark.realtool
def test_root_in_a_namespace_mapping_only_root_still_fakes(tmp_path: Path) -> None:
    """Bazel's linux-sandbox run as root: uid 0 is the only id mapped, so nobody can't own
    the tree; the commands run in a user namespace of their own and fakeroot still fakes."""
    need("fakeroot")
    need("unshare")
    if os.geteuid() != 0:
        pytest.skip("root only: as another user fakeroot is used directly (tested above)")
    req = layer_request(
        tmp_path, extra_commands="mkdir data", fake_root_commands="chown 1000:1000 data"
    )
    (tmp_path / "req.json").write_text(json.dumps({"schema_version": 1, **req}))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "python")}
    proc = subprocess.run(
        ["unshare", "--user", "--map-root-user", sys.executable, "-m", "strata"]
        + ["action", "CustomizationLayer", f"@{tmp_path / 'req.json'}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    m = members(tmp_path / "out" / "layer.tar")
    assert (m["data"].uid, m["data"].gid) == (1000, 1000)
    assert (m["bin"].uid, m["bin"].gid) == (0, 0)
