"""LayerGroups' `joins`: a grouped layer kept as a recipe over the store path layers, and
streamed from them. The bytes must be those a written group has (test_layered_image*.py
covers the written groups)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from layered_kit import Store, action, customization, groups, image_request, layers_of, make_store
from strata.oci.tarscan import scan
from strata.store.listing import listing_bytes, read_members


def _with_listings(store: Store) -> list[dict[str, str]]:
    """The store's layers, each with the listing the StorePath action writes beside it."""
    items = store.store_layers()
    for item in items:
        path = item["store_path"]
        with open(item["blob"], "rb") as f:
            own = [h for h in scan(f.fileno()) if h.name.startswith(path.lstrip("/"))]
        span = (own[0].start, own[-1].end)
        members = list(read_members(item["blob"], path, "test").values())
        listing = Path(item["blob"]).with_suffix(".listing.json")
        listing.write_bytes(listing_bytes(path, members, span))
        item["listing"] = str(listing)
    return items


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return make_store(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, store: Store) -> dict[str, Any]:
    """The same 30 paths in 8 layers, grouped with and without joins."""
    tmp = tmp_path_factory.mktemp("recipes")
    layers = _with_listings(store)
    written = groups(tmp, store, "written", max_layers=8, store_layers=layers)
    joined = groups(tmp, store, "joined", max_layers=8, store_layers=layers, joins=True)
    custom = customization(tmp, store)
    return {"tmp": tmp, "written": written, "joined": joined, "layers": layers, "custom": custom}


def test_a_recipe_has_the_digest_of_the_written_group(built: dict[str, Any]) -> None:
    written, joined = layers_of(built["written"]), layers_of(built["joined"])
    recipes = [g for g in joined if g.get("join")]
    assert len(recipes) == 1 and len(recipes[0]["store_paths"]) > 1
    assert recipes[0]["blob"].endswith(".join.json")
    for w, j in zip(written, joined, strict=True):
        assert w["store_paths"] == j["store_paths"]
        assert (built["written"] / w["descriptor"]).read_bytes() == (
            built["joined"] / j["descriptor"]
        ).read_bytes()
    # The recipe is small: no byte of the layer is in the directory.
    written_size = sum(f.stat().st_size for f in built["written"].iterdir())
    joined_size = sum(f.stat().st_size for f in built["joined"].iterdir())
    group_size = (built["written"] / recipes[0]["blob"].replace(".join.json", ".tar")).stat()
    assert joined_size < written_size - group_size.st_size + 4096


def _image(built: dict[str, Any], store: Store, which: str) -> dict[str, Any]:
    req = image_request(built[which], built["custom"], store)
    if which == "joined":
        req["layers"][0]["join_sources"] = [item["blob"] for item in built["layers"]]
    return req


def test_stream_of_a_recipe_is_the_stored_archive(
    built: dict[str, Any], store: Store, tmp_path: Path
) -> None:
    stored = {
        **_image(built, store, "written"),
        "outputs": {"docker_archive": str(tmp_path / "stored.tar")},
    }
    assert action(tmp_path, "ImageAssemble", stored) == 0
    streamed = {**_image(built, store, "joined"), "output": str(tmp_path / "streamed.tar")}
    assert action(tmp_path, "StreamImage", streamed) == 0
    assert (tmp_path / "streamed.tar").read_bytes() == (tmp_path / "stored.tar").read_bytes()
    # A layout from the recipe writes the layer out, and holds the same blobs.
    for which in ("written", "joined"):
        req = {
            **_image(built, store, which),
            "outputs": {"oci_layout": str(tmp_path / which)},
        }
        assert action(tmp_path, "ImageAssemble", req, tag=which) == 0
    blobs = {
        which: {p.name: p.read_bytes() for p in (tmp_path / which / "blobs" / "sha256").iterdir()}
        for which in ("written", "joined")
    }
    assert blobs["written"] == blobs["joined"]


def _fails(
    tmp: Path, mnemonic: str, req: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> str:
    assert action(tmp, mnemonic, req, tag="bad") != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_a_recipe_without_its_layers_is_one_line_error(
    built: dict[str, Any], store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    req = {**_image(built, store, "joined"), "output": str(tmp_path / "out.tar")}
    del req["layers"][0]["join_sources"]
    err = _fails(tmp_path, "StreamImage", req, capsys)
    assert "is a recipe over the store path layers" in err and "layers.json" in err
    assert not (tmp_path / "out.tar").exists()


def _forged(built: dict[str, Any], tmp: Path, edit: Any) -> Path:
    """A copy of the joined directory whose recipe `edit` changed."""
    d = tmp / "forged"
    d.mkdir()
    for f in built["joined"].iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    recipe = next(d.glob("*.join.json"))
    doc = json.loads(recipe.read_text())
    edit(doc)
    recipe.write_text(json.dumps(doc))
    return d


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda doc: doc["parts"][0].__setitem__(0, 999), "not [layer index"),
        (lambda doc: doc["parts"][-1].__setitem__(2, 1 << 40), "past the end of"),
        (lambda doc: doc["parts"].pop(), "its descriptor says"),
        (lambda doc: doc.__setitem__("parts", "/etc/shadow"), "is not a join recipe"),
    ],
    ids=["index", "range", "size", "not-a-list"],
)
def test_a_forged_recipe_reads_nothing_and_is_one_line_error(
    built: dict[str, Any],
    store: Store,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    edit: Any,
    says: str,
) -> None:
    req = {**_image(built, store, "joined"), "output": str(tmp_path / "out.tar")}
    req["layers"][0]["dir"] = str(_forged(built, tmp_path, edit))
    assert says in _fails(tmp_path, "StreamImage", req, capsys)
    assert not (tmp_path / "out.tar").exists()


def test_a_changed_store_layer_fails_the_layout_not_silently(
    built: dict[str, Any], store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Same size, other bytes: only the digest tells. The layout is not left behind.
    sources = []
    for item in built["layers"]:
        copy = tmp_path / Path(item["blob"]).name
        copy.write_bytes(Path(item["blob"]).read_bytes())
        sources.append(str(copy))
    recipe = next(built["joined"].glob("*.join.json"))
    index, start, _ = json.loads(recipe.read_text())["parts"][-1]
    with open(sources[index], "r+b") as f:
        f.seek(start)
        byte = f.read(1)
        f.seek(start)
        f.write(bytes([byte[0] ^ 0xFF]))
    req = {**_image(built, store, "joined"), "outputs": {"oci_layout": str(tmp_path / "layout")}}
    req["layers"][0]["join_sources"] = sources
    assert "LayerGroups ran: rebuild" in _fails(tmp_path, "ImageAssemble", req, capsys)
    assert not (tmp_path / "layout").exists()
