"""Importing closures from a real Nix store: nix-store -q and registration files."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from realtools import need, run, unavailable
from strata.errors import UserError
from strata.store import base32
from strata.store.closure import closure_of
from strata.store.nix_import import normalise_hash, parse_registration, query_nix_store
from test_store_path import nix_env

S = "/nix/store/"
A = S + "a" * 32 + "-app"
B = S + "b" * 32 + "-dep"
HEX = "e6b43e7acfb75df209501188ba4c0a44b7975aed01c9b52327f1679400af3cd0"


def test_normalise_hash_accepts_every_nix_spelling() -> None:
    b32 = "sha256:" + base32.encode(bytes.fromhex(HEX))
    assert normalise_hash(HEX, "x") == b32
    assert normalise_hash("sha256:" + HEX, "x") == b32
    assert normalise_hash(b32, "x") == b32
    with pytest.raises(UserError, match=r"not a sha256 NAR hash \(got 'md5:abc'\)"):
        normalise_hash("md5:abc", "x")


def test_parse_registration_closure_info_format() -> None:
    # closureInfo: narHash as sha256:<base32>, empty deriver, no trailing blank line.
    text = "\n".join([A, "sha256:" + "1" * 52, "784", "", "2", A, B, B, HEX, "288", "", "0"])
    infos = parse_registration(text)
    assert [i.path for i in infos] == [A, B]
    assert infos[0].references == (A, B)
    assert infos[1].nar_size == 288
    assert infos[1].nar_hash == "sha256:" + base32.encode(bytes.fromhex(HEX))
    assert [p.path for p in closure_of([A], infos).paths] == [A, B]


def test_parse_registration_errors_say_which_line() -> None:
    with pytest.raises(UserError) as e:
        parse_registration(f"{A}\n{HEX}\nbig\n", where="reg")
    assert str(e.value) == (
        "reg: line 3: expected the NAR size as a number (got 'big'); "
        "the file is not in registration format"
    )
    with pytest.raises(UserError, match="line 6: registration ends early, expected a reference"):
        parse_registration(f"{A}\n{HEX}\n1\n\n1\n")


DRV = """
let
  dep = builtins.derivation {
    name = "dep"; system = builtins.currentSystem; builder = "/bin/busybox";
    args = ["sh" "-c" "/bin/busybox mkdir $out; echo hello > $out/greeting"];
  };
  lib = builtins.derivation {
    name = "lib"; system = builtins.currentSystem; builder = "/bin/busybox";
    args = ["sh" "-c" "/bin/busybox mkdir $out; echo ${dep} > $out/uses-dep"];
  };
in builtins.derivation {
  name = "app"; system = builtins.currentSystem; builder = "/bin/busybox";
  args = ["sh" "-c"
    "/bin/busybox mkdir -p $out/bin; echo '#!${dep}/greeting ${lib}' > $out/bin/app"];
}
"""


def graph_edges(dot: str) -> set[tuple[str, str]]:
    """(referrer, reference) base names from `nix-store -q --graph` (drawn ref -> referrer)."""
    return {(b, a) for a, b in re.findall(r'^"([^"]+)" -> "([^"]+)"', dot, re.M)}


@pytest.mark.realtool
def test_import_matches_nix_graph_both_ways(tmp_path: Path) -> None:
    nix_build = need("nix-build")
    nix_store = need("nix-store")
    if not Path("/bin/busybox").exists():
        unavailable("needs busybox-static (/bin/busybox) for the builder")
    env = nix_env(tmp_path / "nix")
    store_dir = env["NIX_STORE_DIR"]
    (tmp_path / "drv.nix").write_text(DRV)
    app = run(nix_build, "--no-out-link", tmp_path / "drv.nix", env=env).stdout.strip()

    queried = query_nix_store([app], store_dir, nix_store=nix_store, env=env)
    names = {p.path.rsplit("/", 1)[1].split("-", 1)[1] for p in queried.paths}
    assert names == {"app", "lib", "dep"}
    ours = {(a.rsplit("/", 1)[1], b.rsplit("/", 1)[1]) for a, b in queried.edges()}
    dot = run(nix_store, "-q", "--graph", app, env=env).stdout
    assert ours == graph_edges(dot)
    assert len(ours) == 3
    for p in queried.paths:
        assert p.nar_hash == run(nix_store, "-q", "--hash", p.path, env=env).stdout.strip()
        assert str(p.nar_size) == run(nix_store, "-q", "--size", p.path, env=env).stdout.strip()

    # The registration format (what closureInfo writes), from nix-store --dump-db.
    paths = [p.path for p in queried.paths]
    dump = subprocess.run(
        [nix_store, "--dump-db", *paths], env=env, check=True, capture_output=True, text=True
    ).stdout
    assert closure_of([app], parse_registration(dump, store_dir)) == queried


@pytest.mark.realtool
def test_import_of_unknown_path_is_a_user_error(tmp_path: Path) -> None:
    nix_store = need("nix-store")
    env = nix_env(tmp_path / "nix")
    missing = env["NIX_STORE_DIR"] + "/" + "0" * 32 + "-nope"
    with pytest.raises(UserError, match=r"nix import: nix-store -q --requisites failed \("):
        query_nix_store([missing], env["NIX_STORE_DIR"], nix_store=nix_store, env=env)


@pytest.mark.realtool
def test_sbom_of_an_imported_closure_is_nix_store_graph(tmp_path: Path) -> None:
    """NixStoreImport records each path's deriver; the Sbom action over the imported info
    lists exactly `nix-store -q --graph`'s paths and edges, with those derivers."""
    import json

    from image_helpers import small_image
    from sbom_check import spdx_problems
    from strata.actions import lookup
    from strata.oci.oci_layout import write_oci_layout

    nix_build = need("nix-build")
    nix_store = need("nix-store")
    if not Path("/bin/busybox").exists():
        unavailable("needs busybox-static (/bin/busybox) for the builder")
    env = nix_env(tmp_path / "nix")
    (tmp_path / "drv.nix").write_text(DRV)
    app = run(nix_build, "--no-out-link", tmp_path / "drv.nix", env=env).stdout.strip()
    imported = tmp_path / "imported"
    lookup("NixStoreImport")(
        {
            "env": env,
            "nix_store": nix_store,
            "output": str(imported),
            "paths": [app],
            "schema_version": 1,
            "store_dir": env["NIX_STORE_DIR"],
        },
        "import.json",
    )
    image = small_image(tmp_path).image
    write_oci_layout(tmp_path / "img.oci", [image])
    out = {"cyclonedx": str(tmp_path / "a.cdx.json"), "spdx": str(tmp_path / "a.spdx.json")}
    info = imported / f"{Path(app).name}.storepath.json"
    req = {"image": str(tmp_path / "img.oci"), "name": "app", "outputs": out}
    lookup("Sbom")(req | {"schema_version": 1, "store_paths": [str(info)]}, "sbom.json")
    doc = json.loads((tmp_path / "a.spdx.json").read_bytes())
    by_id = {p["SPDXID"]: p for p in doc["packages"] if "packageFileName" in p}
    edges = {
        (
            Path(by_id[r["spdxElementId"]]["packageFileName"]).name,
            Path(by_id[r["relatedSpdxElement"]]["packageFileName"]).name,
        )
        for r in doc["relationships"]
        if r["relationshipType"] == "DEPENDS_ON"
    }
    dot = run(nix_store, "-q", "--graph", app, env=env).stdout
    assert edges == graph_edges(dot) and len(edges) == 3
    nodes = set(re.findall(r'^"([^"]+)" \[', dot, re.M))
    assert {Path(p["packageFileName"]).name for p in by_id.values()} == nodes
    for pkg in by_id.values():
        drv = run(nix_store, "-q", "--deriver", pkg["packageFileName"], env=env).stdout.strip()
        assert drv.endswith(".drv")
        assert pkg["sourceInfo"] == f"built by the Nix derivation {drv}"
    assert spdx_problems(tmp_path / "a.spdx.json") == ""


def test_query_derivers_leaves_out_unknown_ones() -> None:
    from strata.store.nix_import import query_derivers

    answers = {("-q", "--deriver", A, B): f"{S}{'d' * 32}-app.drv\nunknown-deriver\n"}
    assert query_derivers([A, B], lambda args: answers[tuple(args)]) == {
        A: f"{S}{'d' * 32}-app.drv"
    }
    with pytest.raises(UserError, match="answered 1 derivers for 2 paths"):
        query_derivers([A, B], lambda args: "x.drv\n")
