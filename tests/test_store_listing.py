"""A store path's listing (strata.store.listing): what the StorePath action writes beside
its layer, so that images read names from it instead of the layer's headers.

The reference is the layer itself: the listing must give exactly the members
`read_members` scans from the headers, and its span must be the bytes those
members occupy. The customisation layer and grouped layers made with
listings must equal, byte for byte, those made by scanning, on generated
store paths (long and non-ASCII names, links through the store, empty and
multi-MiB files, one-file paths).
"""

from __future__ import annotations

import contextlib
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest

import storegen
from strata.cli import main
from strata.errors import UserError
from strata.oci.tarscan import scan
from strata.store.layer import concat_layers
from strata.store.layer_writer import StoreLayerWriter
from strata.store.listing import StoreView, listing_bytes, read_listing, read_members
from strata.store.references import describe_nar


def _write(root: str, out: Path) -> dict[str, str]:
    """StorePath's three outputs for the generated path `root`, named as it is named."""
    planned = storegen.planned(Path(root), 0o555)
    store_dir, base = root.rsplit("/", 1)
    name = base.split("-", 1)[1]
    layer, listing, info = out / f"{base}.tar", out / f"{base}.listing", out / f"{base}.json"
    with StoreLayerWriter(layer, planned, name, store_dir) as w:
        describe_nar(storegen.nar_chunks(planned, w.contents), name, store_dir=store_dir)
        w.finish(root)
    listing.write_bytes(listing_bytes(root, w.members(), w.span))
    info.write_text(json.dumps({"path": root, "closure": []}))
    return {"info": str(info), "layer": str(layer), "listing": str(listing), "path": root}


def _sets(tmp: Path, seed: int, count: int) -> list[tuple[list[dict[str, str]], list[str]]]:
    """Generated sets, each as its closure's written paths and the set's own paths."""
    out = []
    for spec in storegen.generate(seed, count, dangling=True, big=1):
        store = tmp / spec.name / "nix" / "store"
        paths = storegen.write_store(spec, store)
        made = tmp / spec.name / "out"
        made.mkdir()
        items = [_write(str(p), made) for p in sorted(store.iterdir())]
        out.append((items, paths))
    return out


def test_the_listing_is_what_the_headers_say(tmp_path: Path) -> None:
    checked = 0
    for items, _ in _sets(tmp_path, 41, 12):
        for item in items:
            listing = read_listing(item["listing"], item["path"], "test")
            assert listing.members == read_members(item["layer"], item["path"], "test")
            with open(item["layer"], "rb") as f:
                headers = list(scan(f.fileno()))
            own = [h for h in headers if h.name.strip("/").startswith(item["path"].strip("/"))]
            assert listing.span == (own[0].start, own[-1].end) == (own[0].start, headers[-1].end)
            checked += 1
    assert checked > 20


def _customization(tmp: Path, req: dict[str, Any], tag: str) -> bytes | str:
    """The layer, or the error (which names the request: both are called req.json)."""
    work = tmp / tag
    work.mkdir(parents=True)
    req = {**req, "output": str(work / "out" / "l.tar"), "descriptor": str(work / "out" / "l.json")}
    (work / "req.json").write_text(json.dumps({"schema_version": 1, **req}))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.chdir(work):
        status = main(["action", "CustomizationLayer", "@req.json"])
    return (work / "out" / "l.tar").read_bytes() if status == 0 else err.getvalue()


def _without(items: list[dict[str, str]], *keys: str) -> list[dict[str, str]]:
    return [{k: v for k, v in i.items() if k not in keys} for i in items]


def test_customisation_layers_from_listings_equal_those_from_headers(tmp_path: Path) -> None:
    rng = random.Random(3)
    outcomes = {"same bytes": 0, "same error": 0}
    for n, (items, paths) in enumerate(_sets(tmp_path, 77, 30)):
        by_path = {i["path"]: i for i in items}
        form = rng.choice(["join", "copy"])
        contents = [{**by_path[p], "join": "link"} if form == "join" else by_path[p] for p in paths]
        req = {
            "contents": contents,
            "closure": list(by_path.values()) if form == "copy" else [],
            "compressor": "none",
        }
        got = []
        for tag, drop in (("listed", ("path",)), ("scanned", ("path", "listing"))):
            plain = {k: _without(v, *drop) for k, v in req.items() if isinstance(v, list)}
            got.append(_customization(tmp_path / str(n), {**req, **plain}, tag))
        assert got[0] == got[1], paths
        outcomes["same error" if isinstance(got[0], str) else "same bytes"] += 1
    assert outcomes["same bytes"] > 3 * outcomes["same error"], outcomes


@pytest.mark.parametrize("compressor", ["none", "gzip"])
def test_groups_from_listings_equal_groups_from_headers(compressor: str, tmp_path: Path) -> None:
    groups = 0
    for n, (items, _) in enumerate(_sets(tmp_path, 5, 8)):
        if len(items) < 2:
            continue
        layers = [i["layer"] for i in items]
        spans = [read_listing(i["listing"], i["path"], "t").span for i in items]
        listed = concat_layers(tmp_path / f"{n}-listed.tar", layers, compressor, spans)
        scanned = concat_layers(tmp_path / f"{n}-scanned.tar", layers, compressor)
        assert listed == scanned
        listed_bytes = (tmp_path / f"{n}-listed.tar").read_bytes()
        assert listed_bytes == (tmp_path / f"{n}-scanned.tar").read_bytes()
        groups += 1
    assert groups >= 3


def _one(tmp_path: Path) -> dict[str, str]:
    src = tmp_path / "nix" / "store" / ("0" * 31 + "1-hello")
    (src / "bin").mkdir(parents=True)
    (src / "bin" / "hello").write_text("hi\n")
    out = tmp_path / "out"
    out.mkdir()
    return _write(str(src), out)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: {**d, "schema_version": 2}, "is not schema_version 1"),
        (lambda d: {**d, "path": d["path"] + "x"}, "is of another path than"),
        (lambda d: {**d, "span": [5]}, "has no [start, end] span"),
        (lambda d: {**d, "span": [9, 2]}, "has a span that ends before it starts"),
        (lambda d: {**d, "members": [*d["members"], ["a", "pipe", 0, 0, 0, ""]]}, "malformed"),
        (lambda d: {**d, "members": d["members"][1:]}, "has no root entry"),
        (lambda d: {**d, "members": [*d["members"], ["x/y", "file", 0, 0, 0, ""]]}, "'x/y'"),
        (lambda d: {**d, "members": [*d["members"], ["bin/../..", "dir", 0, 0, 0, ""]]}, "esc"),
    ],
)
def test_a_bad_listing_is_one_error(tmp_path: Path, edit: Any, message: str) -> None:
    item = _one(tmp_path)
    doc = json.loads(Path(item["listing"]).read_text())
    Path(item["listing"]).write_text(json.dumps(edit(doc)))
    view = StoreView({item["path"]: item["layer"]}, "req.json", {item["path"]: item["listing"]})
    with pytest.raises(UserError) as e:
        view.members(item["path"])
    text = str(e.value)
    assert message in text and "\n" not in text and text.startswith("req.json: "), text


def test_a_span_that_does_not_fit_the_layer_is_one_error(tmp_path: Path) -> None:
    item = _one(tmp_path)
    span = read_listing(item["listing"], item["path"], "t").span
    bad_spans = [
        (span[0] + 512, span[1]),  # not where a header starts
        (span[0], span[1] - 512),  # would cut the last member
        (span[0], span[1] + 512),  # would copy an end block into the group
        (span[0], span[1] + 10**9),
        (span[1] + 1024, span[1]),
    ]
    for bad in bad_spans:
        with pytest.raises(UserError, match="does not fit its headers|is past its last header"):
            concat_layers(tmp_path / "g.tar", [item["layer"], item["layer"]], "none", [bad, span])
        assert not (tmp_path / "g.tar").exists()
