"""CustomizationLayer through the action CLI, continued: store paths read from their own
layers (join and copy), the layer root in memory or on disk giving the same bytes, and
fakeroot under a user namespace that maps only root.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import storegen
from custom_kit import (
    action,
    layer_request,
    members,
)
from realtools import need
from strata.store.layer import write_store_layer


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
