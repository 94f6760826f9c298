"""A layered image of 30 store paths, built through the action CLI.

Each store path's own layer (written by strata.store.layer, byte for byte
what StorePath writes) → LayerGroups (grouping at
execution time) → CustomizationLayer → ImageAssemble / StreamImage, as the
layered_image and stream_layered_image rules run them.
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from layered_kit import (
    Store,
    action,
    groups,
    layers_of,
    make_store,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return make_store(tmp_path_factory.mktemp("store"))


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
