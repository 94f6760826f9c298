"""Hostile tar layers and action runs for the hostile-input tests (test_hostile_layers*.py):
entries built by hand (links to `/`, `..` chains, hard links, whiteouts), written as an
uncompressed layer blob, and an action run through the real command line."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

from strata.cli import main
from strata.oci.image import Blob

BUSYBOX = "/usr/bin/busybox"
UP = "../" * 16  # more `..` than any unpack directory is deep


def action(tmp: Path, mnemonic: str, req: dict[str, Any]) -> int:
    path = tmp / f"{mnemonic}-{len(list(tmp.glob('*.req.json')))}.req.json"
    path.write_text(json.dumps({"schema_version": 1, **req}, sort_keys=True))
    return main(["action", mnemonic, f"@{path}"])


def entry(name: str, data: bytes | None = None, **kw: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 1
    info.mode = 0o644
    for k, v in kw.items():
        setattr(info, k, v)
    if data is None and info.type == tarfile.REGTYPE:
        info.type = tarfile.DIRTYPE
        info.mode = kw.get("mode", 0o755)
    return info


def sym(name: str, target: str, **kw: Any) -> tuple[tarfile.TarInfo, None]:
    return entry(name, type=tarfile.SYMTYPE, linkname=target, **kw), None


def hardlink(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    return entry(name, type=tarfile.LNKTYPE, linkname=target), None


def file(name: str, data: bytes = b"pwned\n", **kw: Any) -> tuple[tarfile.TarInfo, bytes]:
    return entry(name, data, **kw), data


def directory(name: str, **kw: Any) -> tuple[tarfile.TarInfo, None]:
    return entry(name, **kw), None


Member = tuple[tarfile.TarInfo, bytes | None]


def layer(path: Path, members: list[Member]) -> Blob:
    """An uncompressed layer blob (digest = diff_id) holding `members` in order."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    raw = path.read_bytes()
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    return Blob(path, digest, len(raw), digest, "none")


def attack(via: str, c: str) -> list[Member]:
    """Every kind of write through `via` (a path that resolves to the image's `/`)."""
    return [
        file(f"{via}/{c}/pwned"),
        file(f"{via}/{c}/newdir/deeper/pwned"),  # parents made through the link
        directory(f"{via}/{c}/victim", mode=0o777, uid=4242, gid=4242),  # chmod/chown
        sym(f"{via}/{c}/victim/planted", "/etc/shadow", uid=4242),  # lchown of a link
        hardlink(f"{via}/{c}/victim/linked", "bin/busybox"),
        file(f"{via}/{c}/victim/.wh.delete-me", b""),
        file(f"{via}/{c}/victim/.wh..wh..opq", b""),
    ]
