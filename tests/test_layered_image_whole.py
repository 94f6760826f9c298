"""A layered image of 30 store paths, built through the action CLI: the whole image
(order of layers, stream, umoci, Docker, closures from info files, rebuilds). The
grouping itself is test_layered_image.py.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from layered_kit import (
    GREETING,
    Store,
    action,
    customization,
    groups,
    image_request,
    layers_of,
    make_store,
)
from realtools import DockerEngine, need, run
from strata.store.closure import PathInfo


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return make_store(tmp_path_factory.mktemp("store"))


# -- whole images -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory, store: Store) -> dict[str, Any]:
    need("fakeroot")
    tmp = tmp_path_factory.mktemp("image")
    d = groups(tmp, store, max_layers=20)
    custom = customization(tmp, store)
    req = {
        **image_request(d, custom, store),
        "outputs": {
            "docker_archive": str(tmp / "image.tar"),
            "oci_layout": str(tmp / "layout"),
            "image_info": str(tmp / "info.json"),
        },
    }
    assert action(tmp, "ImageAssemble", req) == 0
    return {"tmp": tmp, "groups": d, "custom": custom, "request": req}


@pytest.mark.realtool
def test_image_lists_group_layers_then_customization(image: dict[str, Any]) -> None:
    info = json.loads((image["tmp"] / "info.json").read_text())
    groups_dir = image["groups"]
    expected = [
        json.loads((groups_dir / g["descriptor"]).read_text())["diff_id"]
        for g in layers_of(groups_dir)
    ]
    expected.append(json.loads(Path(image["custom"]["descriptor"]).read_text())["diff_id"])
    assert info["diff_ids"] == expected and len(expected) == 20


@pytest.mark.realtool
def test_stream_equals_stored_archive(image: dict[str, Any], tmp_path: Path) -> None:
    req = {k: v for k, v in image["request"].items() if k != "outputs"}
    req["output"] = str(tmp_path / "streamed.tar")
    assert action(tmp_path, "StreamImage", req) == 0
    stored = (image["tmp"] / "image.tar").read_bytes()
    assert (tmp_path / "streamed.tar").read_bytes() == stored
    # And through stdout, as `strata run //x:stream > img.tar` uses it.
    del req["output"]
    path = tmp_path / "stdout.json"
    path.write_text(json.dumps({"schema_version": 1, **req}, sort_keys=True))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "python")}
    with open(tmp_path / "stdout.tar", "wb") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "strata", "action", "StreamImage", f"@{path}"],
            stdout=out,
            stderr=subprocess.PIPE,
            env=env,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "stdout.tar").read_bytes() == stored


@pytest.mark.realtool
def test_umoci_unpacks_expected_tree(image: dict[str, Any], tmp_path: Path, store: Store) -> None:
    need("umoci")
    bundle = tmp_path / "bundle"
    run("umoci", "unpack", "--rootless", "--image", f"{image['tmp'] / 'layout'}:v1", bundle)
    rootfs = bundle / "rootfs"
    for info in store.infos.values():
        assert (rootfs / info.path.lstrip("/")).is_dir(), info.path
    app = store.path("app")
    assert os.readlink(rootfs / "bin" / "app") == f"{app}/bin/app"
    # lndir copies busybox's own bin/sh -> busybox link; it resolves through the joined bin/
    assert os.readlink(rootfs / "bin" / "sh") == "busybox"
    assert os.readlink(rootfs / "bin" / "busybox") == f"{store.path('busybox')}/bin/busybox"
    assert (rootfs / app.lstrip("/") / "bin" / "app").read_text().startswith("#!/nix/store/")
    assert (rootfs / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert (rootfs / "data").stat().st_mode & 0o777 == 0o700
    top = sorted(os.listdir(rootfs))
    assert top == ["bin", "data", "nix", "tmp"]


@pytest.mark.realtool
def test_docker_loads_and_runs_layered_image(
    image: dict[str, Any], docker_engine: DockerEngine
) -> None:
    need("busybox")
    docker_engine.docker("load", "-i", image["tmp"] / "image.tar")
    out = docker_engine.docker("run", "--rm", "--network=none", "strata-test/layered:v1")
    assert out.stdout == GREETING + "\n"
    stat = docker_engine.docker(
        "run",
        "--rm",
        "--network=none",
        "strata-test/layered:v1",
        "/bin/sh",
        "-c",
        "stat -c %u:%g:%a /data /tmp",
    )
    assert stat.stdout.split() == ["1000:1000:700", "0:0:1777"]
    docker_engine.docker("rmi", "strata-test/layered:v1")


def test_stream_with_missing_layers_dir_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    req = {"layers": [{"dir": str(tmp_path / "missing")}], "name": "x/y", "output": "-"}
    assert action(tmp_path, "StreamImage", req) == 1
    err = capsys.readouterr().err
    assert "cannot read layers.json of a layers directory" in err
    assert "pass the output directory of a LayerGroups action" in err


@pytest.mark.realtool
def test_stream_to_fd_and_terminal_refused(
    image: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    req = {k: v for k, v in image["request"].items() if k != "outputs"}
    with open(tmp_path / "fd.tar", "wb") as f:
        req["output"] = f"fd:{f.fileno()}"
        assert action(tmp_path, "StreamImage", req) == 0
    assert (tmp_path / "fd.tar").read_bytes() == (image["tmp"] / "image.tar").read_bytes()

    # stdout on a real terminal: refused before anything is written.
    del req["output"]
    path = tmp_path / "tty.json"
    path.write_text(json.dumps({"schema_version": 1, **req}, sort_keys=True))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "python")}
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "strata", "action", "StreamImage", f"@{path}"],
            stdout=follower,
            stderr=subprocess.PIPE,
            env=env,
            check=False,
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert proc.returncode == 1
    assert b"refusing to write a docker-archive to a terminal (got stdout); redirect it" in (
        proc.stderr
    )


def test_closures_from_store_path_info_files_and_nixpkgs_lists(
    tmp_path: Path, store: Store
) -> None:
    """The forms the rules (StorePath `info`) and Nix (exportReferencesGraph) hand over."""
    by_path = {i.path: i for i in store.infos.values()}

    def closure_of(path: str) -> list[dict[str, Any]]:
        seen: dict[str, PathInfo] = {}
        stack = [path]
        while stack:
            p = stack.pop()
            if p not in seen:
                seen[p] = by_path[p]
                stack.extend(by_path[p].references)
        return [seen[p].to_json() for p in sorted(seen)]

    greeting = store.path("greeting")
    info = tmp_path / "greeting.info.json"
    info.write_text(json.dumps({"path": greeting, "closure": closure_of(greeting)}))
    lib = store.path("lib-05")
    nix_list = tmp_path / "lib-05.closure"
    nix_list.write_text(json.dumps(closure_of(lib)))
    req = {
        "store_layers": store.store_layers(),
        "closures": [str(info), str(nix_list)],
        "output": str(tmp_path / "out"),
    }
    assert action(tmp_path, "LayerGroups", req) == 0
    covered = sorted(p for g in layers_of(tmp_path / "out") for p in g["store_paths"])
    expected = sorted({greeting} | {e["path"] for e in closure_of(lib)})
    assert covered == expected and len(covered) == 1 + 6  # greeting; lib-05 down to lib-00


@pytest.mark.realtool
def test_rebuilt_image_is_byte_identical(
    image: dict[str, Any], tmp_path: Path, store: Store
) -> None:
    d = groups(tmp_path, store, max_layers=20)
    custom = customization(tmp_path, store)
    req = {
        **image_request(d, custom, store),
        "outputs": {"docker_archive": str(tmp_path / "i.tar")},
    }
    assert action(tmp_path, "ImageAssemble", req) == 0
    assert (tmp_path / "i.tar").read_bytes() == (image["tmp"] / "image.tar").read_bytes()


@pytest.mark.realtool
def test_archive_from_the_layout_is_the_stored_archive(
    image: dict[str, Any], tmp_path: Path
) -> None:
    # What the rules run for the `tarball` output group: the layout → its docker-archive.
    req = {"image": str(image["tmp"] / "layout"), "output": str(tmp_path / "a.tar")}
    assert action(tmp_path, "ImageArchive", req) == 0
    assert (tmp_path / "a.tar").read_bytes() == (image["tmp"] / "image.tar").read_bytes()
