"""Two store paths' contents (busybox first, tools second) and a CustomizationLayer request
over them, run through the action CLI (test_actions_customization*.py)."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path
from typing import Any

from strata.cli import main

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
