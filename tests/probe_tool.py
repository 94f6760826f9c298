"""strata's tool with one more action, `Probe`, that reports what it saw (`python -m probe_tool`).

The executor tests run it exactly as the rules run the real tool (a launcher
at `.../strata_tools/strata`, `action Probe @request.json`), so it goes
through the worker, or a process with `--noworkers`, like strata's own
actions. The request says what to look at and what to write:

    report     output file: JSON of the working directory, which `present`
               paths existed at the start, the text of the `read` files and
               a listing (mode, kind) of each `list` directory
    files      {output: text}, written atomically as actions do (strata.fsutil)
    dirs       {tree output: {relative path: text}}
    links      {output: input}: the input's bytes (fsutil.share_output)
    background a command left running in the background
    litter     outputs to leave an interrupted atomic write's temporary file beside
    kill_parent  SIGKILL the process that started this one (the worker) before exiting 0
    fail       exit with this one-line error after writing everything
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from strata.actions import ACTIONS
from strata.errors import UserError
from strata.fsutil import share_output, write_bytes_atomic

ACTIONS["Probe"] = "probe_tool:probe"


def _listing(root: str) -> list[list[str]]:
    out = []
    for dirpath, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            p = os.path.join(dirpath, name)
            kind = "link" if os.path.islink(p) else "dir" if os.path.isdir(p) else "file"
            mode = oct(os.stat(p).st_mode & 0o777) if os.path.exists(p) else "-"
            out.append([os.path.relpath(p, root), kind, mode])
    return sorted(out)


def probe(req: dict[str, Any], where: str) -> None:
    seen = {
        "cwd": os.getcwd(),
        "present": {p: os.path.lexists(p) for p in req.get("present", [])},
        "read": {p: Path(p).read_text() for p in req.get("read", [])},
        "list": {p: _listing(p) for p in req.get("list", [])},
    }
    if "report" in req:
        write_bytes_atomic(req["report"], json.dumps(seen, sort_keys=True).encode(), durable=False)
    for out, text in req.get("files", {}).items():
        write_bytes_atomic(out, text.encode(), durable=False)
    for tree, files in req.get("dirs", {}).items():
        for rel, text in files.items():
            Path(tree, rel).parent.mkdir(parents=True, exist_ok=True)
            Path(tree, rel).write_text(text)
    for out, src in req.get("links", {}).items():
        share_output(src, out)
    for out in req.get("litter", []):
        Path(out).parent.joinpath(f".{Path(out).name}.x1y2.tmp").write_text("half")
    if "background" in req:
        subprocess.Popen(["/bin/sh", "-c", req["background"]], stdout=subprocess.DEVNULL)
    if req.get("kill_parent"):
        os.kill(os.getppid(), signal.SIGKILL)
    if "fail" in req:
        raise UserError(req["fail"], where=where)


if __name__ == "__main__":
    from strata.cli import main

    sys.exit(main(sys.argv[1:]))
