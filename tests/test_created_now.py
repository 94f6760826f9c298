"""`created = "now"`: the image is never cached, so a rebuild after a clean has a new time.

The image action is tagged `no-cache` (rules/private/common.bzl,
`image_requirements`), which both engines honour as Bazel 4.2.3 does: no disk
or remote cache entry, the action up to date on a no-op build, run again
after `clean`. An image with a fixed time is the contrast: the clean build
returns it from the disk cache, byte for byte.

Times have one-second resolution, so before each build that must make a new
time the test waits for the next second to begin (no time is measured).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from realtools import need, run

ROOT = Path(__file__).resolve().parent.parent

WORKSPACE = f"""\
local_repository(name = "strata", path = "{ROOT}")

load("@strata//rules:repositories.bzl", "strata_dependencies")

strata_dependencies()
"""

BUILD = """\
load("@strata//rules:defs.bzl", "layered_image", "store_path")

genrule(name = "greeting", outs = ["greeting.txt"], cmd = "echo hi > $@")

store_path(name = "greeting-1.0", srcs = {":greeting": "share/greeting.txt"})

layered_image(name = "now", contents = [":greeting-1.0"], created = "now", tag = "t")

layered_image(name = "fixed", contents = [":greeting-1.0"], tag = "t")
"""


def _workspace(path: Path) -> Path:
    (path / "app").mkdir(parents=True)
    (path / "WORKSPACE").write_text(WORKSPACE)
    (path / "app" / "BUILD").write_text(BUILD)
    return path


def _created(layout: Path) -> str:
    """The `created` of the one image of an OCI layout (an image target's `oci` output group),
    which must be the one its image record (`<name>.image.json`) gives."""

    def blob(digest: str) -> dict[str, object]:
        return dict(json.loads((layout / "blobs" / "sha256" / digest.split(":")[1]).read_text()))

    (entry,) = json.loads((layout / "index.json").read_text())["manifests"]
    manifest = blob(entry["digest"])
    config = blob(str(manifest["config"]["digest"]))  # type: ignore[index]
    record = json.loads(layout.with_suffix(".image.json").read_text())
    assert (record["created"], record["manifest_digest"]) == (config["created"], entry["digest"])
    return str(config["created"])


def _next_second() -> str:
    """Wait until a new second begins; return it as RFC 3339 (UTC), as `created` is written."""
    time.sleep(1.0 - time.time() % 1.0 + 0.01)
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@pytest.mark.slow  # waits for the clock's next second, twice
def test_strata_never_caches_an_image_created_now(tmp_path: Path) -> None:
    ws = _workspace(tmp_path / "ws")
    base = tmp_path / "ob"

    def build(*flags: str) -> str:
        proc = run(
            ROOT / "tools" / "strata",
            "build",
            f"--output_base={base}",
            "--explain",
            "--output_groups=+oci",
            *flags,
            "//app:now",
            "//app:fixed",
            cwd=ws,
        )
        return proc.stdout + proc.stderr

    out = build()
    assert "warning: " in out and 'created = "now" makes every build' in out
    bin_dir = ws / "strata-bin" / "app"
    first = _created(bin_dir / "now.oci")
    fixed = (bin_dir / "fixed.oci" / "index.json").read_bytes()
    assert _created(bin_dir / "fixed.oci") == "1970-01-01T00:00:01Z"

    # A no-op build keeps the image: nothing runs, the time is the same.
    _next_second()
    out = build()
    assert re.search(r"\d+ actions: 0 executed, \d+ cache hits, 1 up to date", out), out
    assert _created(bin_dir / "now.oci") == first

    # After `strata clean` the disk cache still holds every other action, but not this one.
    run(ROOT / "tools" / "strata", "clean", f"--output_base={base}", cwd=ws)
    after = _next_second()
    out = build()
    # The record takes a new time; its layout, made from it, is made again.
    assert re.search(r"\d+ actions: 2 executed, ", out), out
    assert re.search(r"explain: //app:now ImageAssemble .*: caching is off for this action", out)
    second = _created(bin_dir / "now.oci")
    assert first < after <= second
    assert (bin_dir / "fixed.oci" / "index.json").read_bytes() == fixed


def _exec_log(path: Path) -> list[dict[str, object]]:
    """Bazel's --execution_log_json_file: concatenated JSON objects, one a spawn."""
    text, out, i = path.read_text(), [], 0
    decoder = json.JSONDecoder()
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        obj, i = decoder.raw_decode(text, i)
        out.append(obj)


def _image_spawn(spawns: list[dict[str, object]], target: str) -> dict[str, object]:
    (found,) = [
        s
        for s in spawns
        if s.get("mnemonic") == "ImageAssemble"
        and f"ImageAssemble image {target}" == str(s.get("progressMessage"))
    ]
    return found


@pytest.mark.realtool
def test_bazel_never_caches_an_image_created_now(tmp_path: Path) -> None:
    bazel = need("bazel")
    ws = _workspace(tmp_path / "ws")
    common = [bazel, "--batch", f"--output_user_root={tmp_path / 'bazel-root'}"]
    disk = tmp_path / "disk-cache"

    def build(log: Path) -> Path:
        flags = [
            "--symlink_prefix=/",
            "--spawn_strategy=processwrapper-sandbox",
            f"--disk_cache={disk}",
            f"--execution_log_json_file={log}",
            "--output_groups=+oci",
        ]
        run(*common, "build", *flags, "//app:now", "//app:fixed", cwd=ws)
        info = run(*common, "info", "--symlink_prefix=/", "bazel-bin", cwd=ws)
        return Path(info.stdout.strip()) / "app"

    bin_dir = build(tmp_path / "log1.json")
    spawns = _exec_log(tmp_path / "log1.json")
    # Bazel's own reading of the tags: the "now" image may not be cached, the other may.
    assert _image_spawn(spawns, "//app:now")["cacheable"] is False
    assert _image_spawn(spawns, "//app:fixed")["cacheable"] is True
    first = _created(bin_dir / "now.oci")
    fixed = (bin_dir / "fixed.oci" / "index.json").read_bytes()

    run(*common, "clean", cwd=ws)
    after = _next_second()
    bin_dir = build(tmp_path / "log2.json")
    spawns = _exec_log(tmp_path / "log2.json")
    assert not _image_spawn(spawns, "//app:now").get("remoteCacheHit")
    assert first < after <= _created(bin_dir / "now.oci")
    assert (bin_dir / "fixed.oci" / "index.json").read_bytes() == fixed
    # and the same bytes strata makes for the image with a fixed time
    base = tmp_path / "ob"
    run(ROOT / "tools" / "strata", "build", f"--output_base={base}", "--output_groups=+oci",
        "//app:fixed", cwd=ws)  # fmt: skip
    assert (ws / "strata-bin" / "app" / "fixed.oci" / "index.json").read_bytes() == fixed
