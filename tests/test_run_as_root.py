"""RunAsRoot: a script run as root in the unpacked image, its changes captured as one layer."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from realtools import need
from strata.actions.run_as_root import State, diff_entries
from strata.cli import main

BUSYBOX = "/usr/bin/busybox"


def action(tmp: Path, mnemonic: str, req: dict[str, Any]) -> int:
    path = tmp / f"{mnemonic}-{len(list(tmp.glob('*.req.json')))}.req.json"
    path.write_text(json.dumps({"schema_version": 1, **req}, sort_keys=True))
    return main(["action", mnemonic, f"@{path}"])


def add(tar: tarfile.TarFile, name: str, data: bytes | None = None, **kw: Any) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = 1
    for k, v in kw.items():
        setattr(info, k, v)
    if data is None and info.type == tarfile.REGTYPE:
        info.type = tarfile.DIRTYPE
        info.mode = kw.get("mode", 0o755)
    if data is not None:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


@pytest.fixture
def parent_layers(tmp_path: Path) -> list[dict[str, str]]:
    """Two layers: busybox and /etc; then data, with a file the script deletes."""
    need("proot")
    first = tmp_path / "l1.tar"
    with tarfile.open(first, "w", format=tarfile.PAX_FORMAT) as tar:
        add(tar, "bin")
        add(tar, "bin/busybox", Path(BUSYBOX).read_bytes(), mode=0o755)
        add(tar, "bin/sh", type=tarfile.SYMTYPE, linkname="busybox")
        add(tar, "etc")
        add(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", mode=0o644)
        add(tar, "etc/group", b"root:x:0:\n", mode=0o644)
        add(tar, "data")
        add(tar, "data/old.txt", b"parent's file\n", mode=0o644)
        add(tar, "data/gone", b"whited out by the next layer\n", mode=0o644)
    second = tmp_path / "l2.tar"
    with tarfile.open(second, "w", format=tarfile.PAX_FORMAT) as tar:
        add(tar, "data")
        add(tar, "data/.wh.gone", b"")
        add(tar, "srv")
        add(tar, "srv/www")
        add(tar, "srv/www/index.html", b"hi\n", mode=0o644)
    return [{"blob": str(first), "descriptor": ""}, {"blob": str(second), "descriptor": ""}]


SCRIPT = """
test ! -e /data/gone
echo app:x:1000:1000::/home/app:/bin/sh >> /etc/passwd
echo app:x:1000: >> /etc/group
busybox mkdir -p /home/app
busybox chown app:app /home/app
busybox chown -R app:app /srv/www
busybox rm /data/old.txt
echo changed > /etc/motd
"""


def run_layer(tmp_path: Path, layers: list[dict[str, str]], script: str, tag: str) -> int:
    req = {
        "layers": layers,
        "script": script,
        "compressor": "none",
        "output": str(tmp_path / f"{tag}.tar"),
        "descriptor": str(tmp_path / f"{tag}.json"),
    }
    return action(tmp_path, "RunAsRoot", req)


@pytest.mark.realtool
def test_script_changes_become_one_layer(
    tmp_path: Path, parent_layers: list[dict[str, str]]
) -> None:
    assert run_layer(tmp_path, parent_layers, SCRIPT, "a") == 0
    with tarfile.open(tmp_path / "a.tar") as tar:
        members = {m.name: m for m in tar.getmembers()}
        passwd = tar.extractfile("etc/passwd")
        assert passwd is not None
        assert b"app:x:1000:1000:" in passwd.read()
    # the deletion is a whiteout; the earlier layer's whiteout is not repeated
    assert "data/.wh.old.txt" in members and "data/.wh.gone" not in members
    # chown -R is recorded with real ids
    assert (members["srv/www"].uid, members["srv/www"].gid) == (1000, 1000)
    assert (members["srv/www/index.html"].uid, members["srv/www/index.html"].gid) == (1000, 1000)
    assert members["home/app"].isdir() and members["home/app"].uid == 1000
    assert members["etc/motd"].isfile()
    # unchanged entries are not in the layer; parents of changes are
    assert "bin/busybox" not in members and "etc" in members
    assert all(m.mtime == 1 for m in members.values())
    names = list(members)
    assert names == sorted(names, key=lambda n: n.encode().split(b"/"))


@pytest.mark.realtool
def test_layer_is_reproducible(tmp_path: Path, parent_layers: list[dict[str, str]]) -> None:
    assert run_layer(tmp_path, parent_layers, SCRIPT, "a") == 0
    assert run_layer(tmp_path, parent_layers, SCRIPT, "b") == 0
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


@pytest.mark.realtool
def test_failing_script_and_missing_shell(
    tmp_path: Path, parent_layers: list[dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_layer(tmp_path, parent_layers, "echo boom >&2; exit 3", "f") == 1
    err = capsys.readouterr().err
    assert "the run_as_root script failed (got exit status 3: 'boom')" in err
    assert not (tmp_path / "f.tar").exists()
    assert run_layer(tmp_path, parent_layers[1:], "true", "n") == 1
    assert "the image has no /bin/sh" in capsys.readouterr().err


@pytest.mark.realtool
def test_symlinked_parent_stays_inside_the_root(tmp_path: Path) -> None:
    need("proot")
    layer = tmp_path / "evil.tar"
    with tarfile.open(layer, "w") as tar:
        add(tar, "bin")
        add(tar, "bin/busybox", Path(BUSYBOX).read_bytes(), mode=0o755)
        add(tar, "bin/sh", type=tarfile.SYMTYPE, linkname="busybox")
        add(tar, "escape", type=tarfile.SYMTYPE, linkname=str(tmp_path / "outside"))
        add(tar, "escape/planted", b"x\n", mode=0o644)
    (tmp_path / "outside").mkdir()
    assert run_layer(tmp_path, [{"blob": str(layer), "descriptor": ""}], "true", "e") == 0
    assert os.listdir(tmp_path / "outside") == []


def test_replaced_directory_is_one_whiteout_and_the_new_entry() -> None:
    d = State("dir", 0o755, 0, 0, "")
    f = State("file", 0o644, 0, 0, "x")
    before = {"a": d, "a/b": f, "a/c": d, "a/c/d": f}
    after = {"a": d, "a/c": f}
    entries = diff_entries(Path("/nonexistent"), before, after)
    found = [(e.name, e.kind) for e in entries]
    assert found == [("a", "dir"), ("a/.wh.b", "bytes"), ("a/c", "file")]


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (
            {"name": "f", "data": b"x", "uid": 2**32},
            "layer member 'f' has a uid out of range (got 4294967296)",
        ),
        (
            {"name": "f", "data": b"x", "gid": 2**32 - 1},
            "layer member 'f' has a gid out of range (got 4294967295)",
        ),
        (
            {"name": "l", "type": tarfile.SYMTYPE, "linkname": ""},
            "symlink with an empty target in a layer (got 'l')",
        ),
        (
            {"name": "cut", "data": b"y" * 5000},
            "layer is not a readable tar (unexpected end of data)",
        ),
    ],
)
def test_apply_layer_refuses_what_the_kernel_cannot_take(
    tmp_path: Path, member: dict[str, Any], message: str
) -> None:
    # Found by tools/fuzz (layer-unpack): OverflowError from chown, ENOENT from symlink,
    # tarfile.ReadError were tracebacks.
    from strata.actions.run_as_root import apply_layer
    from strata.errors import UserError

    blob = tmp_path / "layer.tar"
    with tarfile.open(blob, "w", format=tarfile.PAX_FORMAT) as tar:
        data = member.pop("data", None)
        add(tar, member.pop("name"), data, **member)
    if "cut" in message or message.startswith("layer is not"):
        blob.write_bytes(blob.read_bytes()[:1536])
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(UserError) as e:
        apply_layer(root, str(blob), "base layer 0")
    assert str(e.value).startswith(f"base layer 0: {message}"), str(e.value)


def test_a_layer_that_is_not_an_object_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # (a slip in this error once made it a TypeError, a crash with a traceback)
    assert run_layer(tmp_path, ["not-a-layer"], "true", "x") == 1  # type: ignore[list-item]
    err = capsys.readouterr().err
    fix = 'give {"blob": path} or {"dir": path}'
    assert err.endswith(f"layers[0] must be an object (got 'not-a-layer'); {fix}\n")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "x.tar").exists()
