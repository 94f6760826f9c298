"""A layered image of 30 store paths, built through the action CLI.

Each store path's own layer (written by strata.store.layer, byte for byte
what StorePath writes) → LayerGroups (grouping at
execution time) → CustomizationLayer → ImageAssemble / StreamImage, as the
layered_image and stream_layered_image rules run them.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from realtools import DockerEngine, need, run
from strata.cli import main
from strata.oci.layer import write_descriptor
from strata.store.closure import Closure, PathInfo
from strata.store.layer import write_store_layer
from strata.store.references import describe

BUSYBOX = "/bin/busybox"
N_LIBS = 27
GREETING = "hello from a store path"


def action(tmp: Path, mnemonic: str, req: dict[str, Any], tag: str = "") -> int:
    path = tmp / f"{mnemonic}{tag}.json"
    path.write_text(json.dumps({"schema_version": 1, **req}, sort_keys=True))
    return main(["action", mnemonic, f"@{path}"])


@dataclass
class Store:
    """Store paths on disk with their descriptions and their own layers."""

    root: Path
    infos: dict[str, PathInfo]  # short name -> info
    srcs: dict[str, Path]

    def path(self, short: str) -> str:
        return self.infos[short].path

    def add(
        self,
        short: str,
        files: dict[str, str | bytes],
        refs: tuple[str, ...] = (),
        links: tuple[tuple[str, str], ...] = (),
    ) -> str:
        src = self.root / "src" / short
        for rel, data in files.items():
            f = src / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(data if isinstance(data, bytes) else data.encode())
            if rel.startswith("bin/"):
                os.chmod(f, 0o755)
        for rel, target in links:
            os.symlink(target, src / rel)
        full_refs = [self.path(r) for r in refs]
        described = describe(src, short, full_refs, full_refs)
        self.infos[short] = described.info
        self.srcs[short] = src
        out = self.root / "layers"
        out.mkdir(exist_ok=True)
        blob = out / f"{short}.tar"
        descriptor = write_store_layer(blob, src, described.info.path, "/nix/store", "none")
        write_descriptor(out / f"{short}.json", descriptor, blob)
        return described.info.path

    def store_layers(self) -> list[dict[str, str]]:
        out = self.root / "layers"
        return [
            {
                "store_path": info.path,
                "blob": str(out / f"{s}.tar"),
                "descriptor": str(out / f"{s}.json"),
            }
            for s, info in sorted(self.infos.items())
        ]

    def closure_file(self, roots: list[str], name: str = "closure.json") -> str:
        closure = Closure(
            tuple(sorted(self.path(r) for r in roots)),
            tuple(sorted(self.infos.values(), key=lambda i: i.path)),
        )
        f = self.root / name
        f.write_bytes(closure.to_bytes())
        return str(f)


def make_store(root: Path, greeting: str = GREETING, app: str = "app") -> Store:
    store = Store(root, {}, {})
    if Path(BUSYBOX).exists():
        busybox = Path(BUSYBOX).read_bytes()
    else:
        busybox = b"busybox is not installed here\n"
    store.add("busybox", {"bin/busybox": busybox}, links=(("bin/sh", "busybox"),))
    store.add("greeting", {"share/greeting.txt": greeting + "\n"})
    for i in range(N_LIBS):
        wanted = {f"lib-{i - 1:02d}", f"lib-{i // 2:02d}"} if i else set()
        refs = tuple(sorted(wanted - {f"lib-{i:02d}"}))
        text = "".join(store.path(r) + "\n" for r in refs) + f"lib {i}\n"
        store.add(f"lib-{i:02d}", {f"share/lib-{i:02d}.txt": text}, refs)
    bb = store.path("busybox")
    script = (
        f"#!{bb}/bin/sh\n"
        f"read line < {store.path('greeting')}/share/greeting.txt\n"
        'echo "$line"\n'
        f"# needs {store.path(f'lib-{N_LIBS - 1:02d}')}\n"
    )
    store.add(app, {"bin/app": script}, ("busybox", "greeting", f"lib-{N_LIBS - 1:02d}"))
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return make_store(tmp_path_factory.mktemp("store"))


def groups(tmp: Path, store: Store, name: str = "groups", **extra: Any) -> Path:
    out = tmp / name
    req = {
        "store_layers": store.store_layers(),
        "closures": [store.closure_file(["app"])],
        "output": str(out),
        **extra,
    }
    assert action(tmp, "LayerGroups", req, tag=name) == 0
    return out


def layers_of(d: Path) -> list[dict[str, Any]]:
    data = json.loads((d / "layers.json").read_text())
    assert data["schema_version"] == 1
    layers: list[dict[str, Any]] = data["layers"]
    return layers


def customization(tmp: Path, store: Store) -> dict[str, str]:
    req = {
        "contents": [
            {"store_path": store.path("busybox"), "src": str(store.srcs["busybox"])},
            {"store_path": store.path("app"), "src": str(store.srcs["app"])},
        ],
        "extra_commands": "mkdir -m 1777 tmp",
        "fake_root_commands": "mkdir data && chown 1000:1000 data && chmod 0700 data",
        "output": str(tmp / "custom.tar.gz"),
        "descriptor": str(tmp / "custom.json"),
    }
    assert action(tmp, "CustomizationLayer", req) == 0
    return {"blob": req["output"], "descriptor": req["descriptor"]}


def image_request(groups_dir: Path, custom: dict[str, str], store: Store) -> dict[str, Any]:
    return {
        "config": {"Cmd": [f"{store.path('app')}/bin/app"], "Env": ["PATH=/bin"]},
        "layers": [{"dir": str(groups_dir)}, custom],
        "name": "strata-test/layered",
        "tag": "v1",
    }


# -- grouping ---------------------------------------------------------------------------------


def test_thirty_paths_grouped_in_popularity_order(tmp_path: Path, store: Store) -> None:
    assert len(store.infos) == 30
    d = groups(tmp_path, store, max_layers=10)
    layers = layers_of(d)
    assert len(layers) == 9  # 10 - 1 customisation layer
    assert all(len(g["store_paths"]) == 1 for g in layers[:8])
    assert len(layers[8]["store_paths"]) == 22
    covered = [p for g in layers for p in g["store_paths"]]
    assert sorted(covered) == sorted(i.path for i in store.infos.values())
    # lib-00 is reached by every lib and the app: the most popular path, bottom layer.
    assert layers[0]["store_paths"] == [store.path("lib-00")]
    # The grouped layer really holds the 22 paths' trees.
    with tarfile.open(d / layers[8]["blob"]) as tar:
        names = set(tar.getnames())
    assert {p.lstrip("/") for p in layers[8]["store_paths"]} <= names


def test_single_path_layer_is_its_store_layer_verbatim_across_images(
    tmp_path: Path, store: Store
) -> None:
    other = make_store(tmp_path / "other", greeting="a different greeting", app="app2")
    assert other.path("busybox") == store.path("busybox")
    assert other.path("app2") != store.path("app")
    one = groups(tmp_path, store, "one", max_layers=40)
    two_req = {
        "store_layers": other.store_layers(),
        "closures": [other.closure_file(["app2"])],
        "output": str(tmp_path / "two"),
        "max_layers": 40,
    }
    assert action(tmp_path, "LayerGroups", two_req, tag="two") == 0
    bb = store.path("busybox")
    (a,) = [g for g in layers_of(one) if g["store_paths"] == [bb]]
    (b,) = [g for g in layers_of(tmp_path / "two") if g["store_paths"] == [bb]]
    blob_a = (one / a["blob"]).read_bytes()
    assert blob_a == (tmp_path / "two" / b["blob"]).read_bytes()
    assert blob_a == (store.root / "layers" / "busybox.tar").read_bytes()
    assert json.loads((one / a["descriptor"]).read_text()) == json.loads(
        (tmp_path / "two" / b["descriptor"]).read_text()
    )


@pytest.mark.parametrize(
    ("max_layers", "base_layers", "expected"),
    [
        (31, 0, [1] * 30),  # paths == max_layers - 1: every path its own layer
        (32, 0, [1] * 30),
        (30, 0, [1] * 28 + [2]),  # one short: the last two share a layer
        (2, 0, [30]),
        (10, 5, [1] * 3 + [27]),  # base layers count
    ],
)
def test_max_layers_edges(
    tmp_path: Path, store: Store, max_layers: int, base_layers: int, expected: list[int]
) -> None:
    d = groups(tmp_path, store, max_layers=max_layers, base_layers=base_layers)
    assert [len(g["store_paths"]) for g in layers_of(d)] == expected


def test_auto_layer_strategy_and_gzip_groups(tmp_path: Path, store: Store) -> None:
    d = groups(tmp_path, store, max_layers=6, layering="auto_layer", compressor="gzip")
    layers = layers_of(d)
    assert 1 <= len(layers) <= 5
    assert sorted(p for g in layers for p in g["store_paths"]) == sorted(
        i.path for i in store.infos.values()
    )
    for g in layers:
        desc = json.loads((d / g["descriptor"]).read_text())
        assert desc["compressor"] == "gzip"
        assert (d / g["blob"]).read_bytes()[:2] == b"\x1f\x8b"


def test_config_store_paths_join_the_closure(tmp_path: Path, store: Store) -> None:
    only_greeting = store.closure_file(["greeting"], "greeting.json")
    app = store.path("app")
    req = {
        "store_layers": store.store_layers(),
        "closures": [only_greeting],
        "config": {"Entrypoint": [f"{app}/bin/app"]},
        "output": str(tmp_path / "out"),
    }
    assert action(tmp_path, "LayerGroups", req) == 0
    covered = {p for g in layers_of(tmp_path / "out") for p in g["store_paths"]}
    assert app in covered and store.path("busybox") in covered and len(covered) == 30


def test_include_store_paths_false_gives_no_layers(tmp_path: Path, store: Store) -> None:
    d = groups(tmp_path, store, include_store_paths=False)
    assert layers_of(d) == []
    assert sorted(os.listdir(d)) == ["layers.json"]


def bad(tmp_path: Path, store: Store, capsys: pytest.CaptureFixture[str], **extra: Any) -> str:
    req = {
        "store_layers": store.store_layers(),
        "closures": [store.closure_file(["app"])],
        "output": str(tmp_path / "out"),
        **extra,
    }
    assert action(tmp_path, "LayerGroups", req) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert not (tmp_path / "out").exists()
    return err


def test_bad_layer_groups_requests(
    tmp_path: Path, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    err = bad(tmp_path, store, capsys, max_layers=1)
    assert "no layer is left for store paths: the base image uses 0 and the customisation " in err
    assert "(got max_layers = 1); set max_layers to at least 2" in err

    ghost = "/nix/store/" + "a" * 32 + "-ghost"
    err = bad(tmp_path, store, capsys, config={"Cmd": [f"{ghost}/bin/x"]})
    assert f"the config names store path {ghost}, which is not among the 30 described" in err
    assert "add its store_path target to contents" in err

    lib = store.path("lib-03")
    layers = [x for x in store.store_layers() if x["store_path"] != lib]
    err = bad(tmp_path, store, capsys, store_layers=layers)
    assert f"no cached layer for store path {lib} (got layers for 29 paths)" in err

    err = bad(tmp_path, store, capsys, layering="fastest")
    assert 'unknown layering strategy (got "fastest"); use' in err

    steps = [["popularity_contest"], ["limit_layers", 200]]
    err = bad(tmp_path, store, capsys, layering=steps, max_layers=5)
    assert "the pipeline makes 30 store path layers but only 4 are left" in err


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
