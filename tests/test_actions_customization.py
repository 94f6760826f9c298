"""CustomizationLayer through the action CLI: join, extra_commands, fake_root_commands."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest

from custom_kit import (
    BUSYBOX_PATH,
    TOOLS_PATH,
    action,
    layer_request,
    members,
)
from realtools import need, unavailable
from strata.store.layer import write_store_layer


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
