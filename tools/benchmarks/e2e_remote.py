"""tools/bench e2e, the shared-cache part: two teams and one nginx WebDAV cache at full size.

The figures that matter for a cache shared between teams, measured on the e2e
workspace in the same run as the local cold build they are compared with:

  team A   a cold output base, `build //:big_raw --remote_cache=...`: it fills
           the cache. Figures: wall time, bytes the server stores (apparent
           size of nginx's cache directory) against the closure, requests.
  team B   a fresh copy of the workspace (another path, as a second clone is)
           and a cold output base, building through the now warm cache.
           Figures: wall time against the local cold build, bytes downloaded
           (strata's own summary line), requests, actions run, and whether its
           image record (image.json: every digest) is the local build's.

The server is the nginx of tests/nginx_server.py (Debian's nginx, WebDAV PUT),
on 127.0.0.1, with its access log counting requests.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "tests"))

from e2e_bench import Bench, ratio, size  # noqa: E402
from e2e_measure import du  # noqa: E402

from nginx_server import NginxCache  # noqa: E402

if TYPE_CHECKING:
    from e2e_measure import Run

_MOVED = re.compile(r"(\d+) bytes downloaded, (\d+) bytes uploaded")


def moved(output: str) -> tuple[int, int]:
    """(downloaded, uploaded) bytes from strata's remote-cache summary line; (0, 0) if absent."""
    m = _MOVED.search(output)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def by_method(requests: list[str]) -> str:
    """`GET 120, PUT 300` from access-log lines ("METHOD /path STATUS")."""
    counts = Counter(r.split()[0] for r in requests)
    return ", ".join(f"{m} {n}" for m, n in sorted(counts.items()))


def measure(
    b: Bench, cold_local: Run, closure_bytes: int, target: str, bin_dir: Callable[[Path], Path]
) -> None:
    """Team A fills a fresh nginx cache, team B builds a copy of the workspace through it.

    `target` is an image (`//:NAME`); `bin_dir(output base)` is where its record is."""
    name = target.split(":")[-1]

    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        print("nginx not installed: no shared-cache figures (apt-get install nginx)")
        return
    server = NginxCache(b.work / "nginx")
    server.start(nginx)
    f = b.figures
    try:
        flag = f"--remote_cache={server.url}"
        ob = b.cold_output_base("team-a")
        team_a, _ = b.strata("team-a-cold-remote", ob, target, flag)
        sent = len(server.requests())
        f.update(
            team_a_s=team_a.seconds,
            team_a_requests=sent,
            team_a_uploaded_bytes=moved(team_a.output)[1],
            remote_stored_bytes=du(server.cache_dir),
        )
        b.drop(ob)
        b.timed("team A cold, filling the cache", team_a, ("strata cold, no cache", cold_local))
        b.row("  requests", f"{sent} ({by_method(server.requests())})")
        stored = f["remote_stored_bytes"]
        b.row(
            "  bytes the cache stores",
            size(stored),
            ("closure", size(closure_bytes), ratio(stored, closure_bytes)),
        )

        # Team B: another checkout path, same files (hard links: the content is what counts).
        copy = b.work / "ws-team-b"
        subprocess.run(["cp", "-al", str(b.ws), str(copy)], check=True)
        ob = b.cold_output_base("team-b")
        before = len(server.requests())
        team_b, _ = b.strata("team-b-warm-remote", ob, target, flag, ws=copy)
        got = server.requests()[before:]
        down = moved(team_b.output)[0]
        digest = hashlib.sha256((bin_dir(ob) / f"{name}.image.json").read_bytes()).hexdigest()
        same = digest == b.figures[f"strata_{name}_record_sha256"]
        f.update(
            team_b_s=team_b.seconds,
            team_b_requests=len(got),
            team_b_downloaded_bytes=down,
            team_b_executed=team_b.executed,
            team_b_record_identical=same,
        )
        b.drop(ob)
        b.drop(copy)
        b.timed("team B, fresh copy, warm cache", team_b, ("strata cold, no cache", cold_local))
        b.row("  actions run / requests", f"{team_b.executed} / {len(got)} ({by_method(got)})")
        b.row(
            "  bytes downloaded",
            size(down),
            ("closure", size(closure_bytes), ratio(down, closure_bytes)),
        )
        b.row("  its image record, against the local build's", "MATCH" if same else "DIFFER")
    finally:
        server.stop()
