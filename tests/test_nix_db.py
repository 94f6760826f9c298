"""The NixDb action: a reproducible Nix database that Debian's nix-bin reads and agrees with."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from realtools import need, run
from strata.cli import main
from strata.errors import UserError
from strata.store.closure import PathInfo
from strata.store.nix_db import base16_hash, check_closed, read_db

NIX_ENV_CONFIG = "build-users-group =\nsandbox = false\nsubstituters =\n"


def action(tmp: Path, mnemonic: str, req: dict[str, Any]) -> int:
    path = tmp / f"{mnemonic}-{len(list(tmp.glob('*.req.json')))}.req.json"
    path.write_text(json.dumps({"schema_version": 1, **req}, sort_keys=True))
    return main(["action", mnemonic, f"@{path}"])


def store_path(tmp: Path, name: str, files: dict[str, str], refs: list[Path]) -> Path:
    """Build a store path with the StorePath action; return its info file."""
    src = tmp / "src" / name
    src.mkdir(parents=True)
    contents = []
    for dest, text in files.items():
        (src / dest.replace("/", "_")).write_text(text)
        contents.append({"src": str(src / dest.replace("/", "_")), "dest": dest})
    out = tmp / "out" / name
    out.mkdir(parents=True)
    req = {
        "name": name,
        "contents": contents,
        "references": [str(r) for r in refs],
        "outputs": {
            "tree": str(out / "tree"),
            "info": str(out / "info.json"),
            "layer": str(out / "layer.tar"),
            "descriptor": str(out / "layer.json"),
        },
    }
    assert action(tmp, "StorePath", req) == 0
    return out / "info.json"


def path_of(info: Path) -> str:
    return str(json.loads(info.read_text())["path"])


@pytest.fixture
def closure(tmp_path: Path) -> list[Path]:
    lib = store_path(tmp_path, "libfoo-1.0", {"lib/libfoo.txt": "library\n"}, [])
    data = store_path(tmp_path, "data-2", {"share/data": "data\n"}, [])
    app = store_path(
        tmp_path,
        "app-1.0",
        {"bin/app": f"uses {path_of(lib)} and {path_of(data)}\n"},
        [lib, data],
    )
    return [app, lib, data]


def nix_db_request(tmp: Path, infos: list[Path], roots: list[Path], tag: str) -> dict[str, Any]:
    return {
        "store_paths": [str(i) for i in infos],
        "roots": [str(r) for r in roots],
        "compressor": "none",
        "output": str(tmp / f"db-{tag}.tar"),
        "descriptor": str(tmp / f"db-{tag}.json"),
    }


def unpack_image_root(tmp: Path, infos: list[Path], db_layer: Path) -> Path:
    root = tmp / "root"
    for info in infos:
        with tarfile.open(info.parent / "layer.tar") as tar:
            tar.extractall(root, filter="tar")
    with tarfile.open(db_layer) as tar:
        tar.extractall(root, filter="tar")
    return root


def nix_env(tmp: Path) -> dict[str, str]:
    return {"NIX_CONFIG": NIX_ENV_CONFIG, "HOME": str(tmp), "PATH": "/usr/bin:/bin"}


def test_layer_members_and_gcroots(tmp_path: Path, closure: list[Path]) -> None:
    app = closure[0]
    assert action(tmp_path, "NixDb", nix_db_request(tmp_path, [app], [app], "a")) == 0
    with tarfile.open(tmp_path / "db-a.tar") as tar:
        members = {m.name: m for m in tar.getmembers()}
    base = os.path.basename(path_of(app))
    link = members[f"nix/var/nix/gcroots/docker/{base}"]
    assert link.issym() and link.linkname == path_of(app)
    assert members["nix/var/nix/db/db.sqlite"].isfile()
    assert members["nix/var/nix/db/db.sqlite"].mtime == 1
    # only the roots get gcroots: lib and data are kept alive through app's references
    assert [n for n in members if n.startswith("nix/var/nix/gcroots/docker/")] == [
        f"nix/var/nix/gcroots/docker/{base}"
    ]
    with tarfile.open(tmp_path / "db-a.tar") as tar:
        schema = tar.extractfile("nix/var/nix/db/schema")
        assert schema is not None and schema.read() == b"10"


def test_database_rows_follow_the_closure(tmp_path: Path, closure: list[Path]) -> None:
    app, lib, data = closure
    assert action(tmp_path, "NixDb", nix_db_request(tmp_path, [app], [app], "a")) == 0
    root = unpack_image_root(tmp_path, [], tmp_path / "db-a.tar")
    rows = read_db(root / "nix/var/nix/db/db.sqlite")
    info = json.loads(app.read_text())
    assert [r[0] for r in rows] == sorted(path_of(p) for p in closure)
    by_path = {r[0]: r for r in rows}
    assert by_path[path_of(app)][3] == tuple(sorted([path_of(lib), path_of(data)]))
    assert by_path[path_of(lib)][3] == ()
    assert by_path[path_of(app)][2] == info["narSize"]
    assert by_path[path_of(app)][1] == base16_hash(info["narHash"], "test")
    assert by_path[path_of(app)][1].startswith("sha256:") and len(by_path[path_of(app)][1]) == 71
    con = sqlite3.connect(root / "nix/var/nix/db/db.sqlite")
    assert {t for (t,) in con.execute("select registrationTime from ValidPaths")} == {1}
    assert con.execute("pragma journal_mode").fetchone() == ("delete",)
    con.close()
    assert sorted(os.listdir(root / "nix/var/nix/db")) == ["db.sqlite", "schema"]


def test_database_bytes_are_reproducible(tmp_path: Path, closure: list[Path]) -> None:
    app, lib, data = closure
    # same set, listed differently: the same bytes
    assert action(tmp_path, "NixDb", nix_db_request(tmp_path, [app], [app], "a")) == 0
    req = nix_db_request(tmp_path, [data, app, lib], [app], "b")
    assert action(tmp_path, "NixDb", req) == 0
    assert (tmp_path / "db-a.tar").read_bytes() == (tmp_path / "db-b.tar").read_bytes()
    req = {**nix_db_request(tmp_path, [app], [app], "c"), "registration_time": 1700000000}
    assert action(tmp_path, "NixDb", req) == 0
    assert (tmp_path / "db-a.tar").read_bytes() != (tmp_path / "db-c.tar").read_bytes()


@pytest.mark.realtool
def test_nix_store_agrees_inside_the_unpacked_root(tmp_path: Path, closure: list[Path]) -> None:
    nix_store = need("nix-store")
    app, lib, data = closure
    assert action(tmp_path, "NixDb", nix_db_request(tmp_path, [app], [app], "a")) == 0
    root = unpack_image_root(tmp_path, closure, tmp_path / "db-a.tar")
    env = nix_env(tmp_path)
    store = ["--store", f"local?root={root}"]
    refs = run(nix_store, *store, "-q", "--references", path_of(app), env=env).stdout.split()
    assert sorted(refs) == sorted([path_of(lib), path_of(data)])
    reqs = run(nix_store, *store, "-q", "--requisites", path_of(app), env=env).stdout.split()
    assert sorted(reqs) == sorted(path_of(p) for p in closure)
    checked = run(nix_store, *store, "--verify", "--check-contents", env=env)
    assert "error" not in checked.stderr.lower() and "modified" not in checked.stderr
    roots = run(nix_store, *store, "--gc", "--print-roots", env=env).stdout
    assert path_of(app) in roots
    # the check has teeth: a changed file is reported as modified
    victim = root / path_of(lib).lstrip("/") / "lib" / "libfoo.txt"
    victim.chmod(0o644)
    victim.write_text("tampered\n")
    argv = [nix_store, *store, "--verify", "--check-contents"]
    bad = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert bad.returncode != 0
    assert path_of(lib) in bad.stderr and "modified" in bad.stderr


@pytest.mark.realtool
def test_rows_match_nix_store_load_db(tmp_path: Path, closure: list[Path]) -> None:
    """Nix's own `--load-db` from a closureInfo registration writes the same rows."""
    nix_store = need("nix-store")
    app = closure[0]
    assert action(tmp_path, "NixDb", nix_db_request(tmp_path, [app], [app], "a")) == 0
    ours = unpack_image_root(tmp_path, [], tmp_path / "db-a.tar") / "nix/var/nix/db/db.sqlite"
    lines = []
    for item in json.loads(app.read_text())["closure"]:
        lines += [item["path"], base16_hash(item["narHash"], "t"), str(item["narSize"]), ""]
        lines += [str(len(item["references"])), *item["references"]]
    real_root = tmp_path / "real"
    run(
        nix_store,
        "--store",
        f"local?root={real_root}",
        "--load-db",
        input="\n".join(lines) + "\n",
        env=nix_env(tmp_path),
    )
    query = "select path, hash, deriver, narSize, ultimate, sigs, ca from ValidPaths order by path"
    theirs_con = sqlite3.connect(real_root / "nix/var/nix/db/db.sqlite")
    ours_con = sqlite3.connect(ours)
    assert ours_con.execute(query).fetchall() == theirs_con.execute(query).fetchall()
    refs = (
        "select a.path, b.path from Refs join ValidPaths a on a.id = referrer"
        " join ValidPaths b on b.id = reference order by 1, 2"
    )
    assert ours_con.execute(refs).fetchall() == theirs_con.execute(refs).fetchall()
    schema = "select type, name, sql from sqlite_master order by name"
    assert ours_con.execute(schema).fetchall() == theirs_con.execute(schema).fetchall()


def test_unclosed_set_and_bad_hash_are_refused() -> None:
    a = PathInfo("/nix/store/" + "a" * 32 + "-a", ("/nix/store/" + "b" * 32 + "-b",), 1, "x")
    with pytest.raises(UserError, match="references a path that is not in the database"):
        check_closed([a], "t")
    with pytest.raises(UserError, match="not a sha256 NAR hash"):
        base16_hash("md5:abc", "t")


def test_request_errors(
    tmp_path: Path, closure: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    app = closure[0]
    other = store_path(tmp_path, "other", {"x": "x\n"}, [])
    assert action(tmp_path, "NixDb", nix_db_request(tmp_path, [app], [other], "r")) == 1
    assert "a root is not among store_paths" in capsys.readouterr().err
    assert action(tmp_path, "NixDb", nix_db_request(tmp_path, [], [], "e")) == 1
    assert "store_paths is empty" in capsys.readouterr().err
    assert not (tmp_path / "db-r.tar").exists()


def test_directory_form_for_the_customisation_layer(tmp_path: Path, closure: list[Path]) -> None:
    app = closure[0]
    req = {"closures": [str(app)], "name": "x/y", "output": str(tmp_path / "dir")}
    assert action(tmp_path, "NixDb", req) == 0
    assert action(tmp_path, "NixDb", nix_db_request(tmp_path, [app], [app], "a")) == 0
    layer_root = unpack_image_root(tmp_path, [], tmp_path / "db-a.tar")
    db = "nix/var/nix/db/db.sqlite"
    assert (tmp_path / "dir" / db).read_bytes() == (layer_root / db).read_bytes()
    # no dangling symlinks in a directory output (Bazel refuses them)
    assert not [p for p in (tmp_path / "dir").rglob("*") if p.is_symlink()]
