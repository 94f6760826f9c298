"""Hostile layers and images never touch the host: every unpacker and reader, attacked.

Each test builds hostile input in tmp_path (links to `/`, `..` chains, link
chains, hard links and whiteouts through links, bad names and digests), runs
the real action entry point, and checks that a canary directory outside the
build is byte-for-byte and inode-for-inode untouched and that its victim file
is still there. Where the input is acceptable, it also checks the result is
what a container runtime would make of it (paths resolved inside the root).
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hostilekit import (
    BUSYBOX,
    UP,
    Member,
    action,
    attack,
    directory,
    file,
    hardlink,
    layer,
    sym,
)
from realtools import need
from strata.oci.docker_archive import write_docker_archive
from strata.oci.image import Blob, assemble
from strata.oci.oci_layout import write_oci_layout
from strata.oci.platform import parse_platform

# -- RunAsRoot ---------------------------------------------------------------------------------


def shell() -> list[Member]:
    return [
        directory("bin"),
        file("bin/busybox", Path(BUSYBOX).read_bytes(), mode=0o755),
        sym("bin/sh", "busybox"),
    ]


ESCAPES: dict[str, Callable[[str], list[list[Member]]]] = {
    "link to /": lambda c: [[sym("x", "/"), *attack("x", c)]],
    "link to ../../..": lambda c: [[sym("y", UP), *attack("y", c)]],
    "absolute link chain": lambda c: [
        [sym("a", "/b/c"), sym("b", "/"), sym("c", "/"), *attack("a", c)]
    ],
    "link to link": lambda c: [
        [sym("l1", "l2"), sym("l2", "/l3"), sym("l3", UP), *attack("l1", c)]
    ],
    "dir replaced by a link": lambda c: [
        [directory("d"), file("d/old")],
        [sym("d", "/")],
        attack("d", c),
    ],
}
INSIDE = 'test -f "/{c}/pwned"; test -f "/{c}/newdir/deeper/pwned"; test ! -e /{c}/victim/delete-me'


def run_as_root(tmp: Path, blobs: list[Blob], script: str, **extra: Any) -> int:
    req = {
        "layers": [{"blob": str(b.path), "descriptor": ""} for b in blobs],
        "script": script,
        "compressor": "none",
        "output": str(tmp / "out.tar"),
        "descriptor": str(tmp / "out.json"),
        **extra,
    }
    return action(tmp, "RunAsRoot", req)


@pytest.mark.realtool
@pytest.mark.parametrize("escape", sorted(ESCAPES))
def test_run_as_root_writes_through_links_stay_in_the_root(
    tmp_path: Path, canary: str, escape: str
) -> None:
    need("proot")
    blobs = [layer(tmp_path / "sh.tar", shell())]
    for i, members in enumerate(ESCAPES[escape](canary)):
        blobs.append(layer(tmp_path / f"evil{i}.tar", members))
    # the script sees every entry where the runtime would put it: under the image's /
    assert run_as_root(tmp_path, blobs, INSIDE.format(c=canary)) == 0


@pytest.mark.realtool
def test_run_as_root_hard_link_target_through_a_link(tmp_path: Path, canary: str) -> None:
    need("proot")
    members = [
        file(f"{canary}/victim/secret", b"inside\n"),
        sym("x", "/"),
        hardlink("stolen", f"x/{canary}/victim/secret"),
        sym("y", UP),
        hardlink("stolen2", f"/y/{canary}/victim/secret"),
    ]
    blobs = [layer(tmp_path / "sh.tar", shell()), layer(tmp_path / "evil.tar", members)]
    script = 'read a < /stolen; read b < /stolen2; test "$a$b" = insideinside'
    assert run_as_root(tmp_path, blobs, script) == 0


@pytest.mark.realtool
def test_run_as_root_base_from_a_pulled_layout(tmp_path: Path, canary: str) -> None:
    """A base as pull_image leaves it (an OCI layout pinned by digest) is unpacked confined."""
    need("proot")
    blobs = [
        layer(tmp_path / "sh.tar", shell()),
        layer(tmp_path / "evil.tar", [sym("x", "/"), *attack("x", canary)]),
    ]
    image = assemble(layers=blobs, fields={}, platform=parse_platform("x86_64"), name="ev/il")
    write_oci_layout(tmp_path / "layout", [image.image])
    base = {"path": str(tmp_path / "layout"), "name": ""}
    assert run_as_root(tmp_path, [], INSIDE.format(c=canary), base=base) == 0


# -- ImageExport -------------------------------------------------------------------------------


def export(tmp: Path, layers: list[list[Member]]) -> tuple[int, dict[str, tarfile.TarInfo]]:
    blobs = [layer(tmp / f"l{i}.tar", m) for i, m in enumerate(layers)]
    image = assemble(layers=blobs, fields={}, platform=parse_platform("x86_64"), name="ev/il")
    write_docker_archive(tmp / "image.tar", [image.image])
    out = tmp / "rootfs.tar"
    code = action(tmp, "ImageExport", {"image": str(tmp / "image.tar"), "output": str(out)})
    if code != 0:
        return code, {}
    with tarfile.open(out) as tar:
        return code, {m.name: m for m in tar.getmembers()}


def test_export_resolves_parents_through_links_as_a_runtime(tmp_path: Path) -> None:
    code, got = export(
        tmp_path,
        [
            [
                sym("x", "/"),
                sym("y", UP),
                sym("a", "/b/c"),
                sym("b", "/"),
                sym("c", "/"),
                sym("l1", "l2"),
                sym("l2", "/l3"),
                sym("l3", UP),
                file("x/etc/one"),
                file("y/etc/two"),
                file("a/etc/three"),
                file("l1/etc/four"),
            ]
        ],
    )
    assert code == 0
    assert sorted(got) == [
        "a",
        "b",
        "c",
        "etc",
        "etc/four",
        "etc/one",
        "etc/three",
        "etc/two",
        "l1",
        "l2",
        "l3",
        "x",
        "y",
    ]
    assert got["x"].issym() and got["x"].linkname == "/" and got["etc"].isdir()


def test_export_whiteouts_and_hard_links_through_links(tmp_path: Path) -> None:
    lower = [
        directory("etc"),
        file("etc/gone"),
        file("etc/keep"),
        file("etc/secret", b"inside\n"),
        directory("opq"),
        file("opq/old"),
        directory("d"),
        file("d/old"),
    ]
    upper = [
        sym("x", "/"),
        file("x/etc/.wh.gone", b""),
        file("x/opq/.wh..wh..opq", b""),
        hardlink("stolen", "x/etc/secret"),
        sym("d", UP),
    ]
    code, got = export(tmp_path, [lower, upper, [file("d/etc/new")]])
    assert code == 0
    assert sorted(got) == ["d", "etc", "etc/keep", "etc/new", "etc/secret", "opq", "stolen", "x"]
    assert got["stolen"].isfile() and got["stolen"].size == len(b"inside\n")
    assert got["d"].issym()


def test_export_refuses_an_entry_below_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = export(tmp_path, [[file("f"), sym("x", "f"), file("x/under")]])
    assert code == 1
    err = capsys.readouterr().err
    assert "f is not a directory, so the layer entry cannot go below it (got 'f/under')" in err
    assert not (tmp_path / "rootfs.tar").exists()


# -- StoreTree ---------------------------------------------------------------------------------


def test_store_tree_refuses_members_below_a_link(
    tmp_path: Path, canary: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store_path = "/nix/store/0c8w9s1iy6mbmn8xl9wn3m2d8cg1zc6q-evil"
    p = store_path.lstrip("/")
    info = tmp_path / "info.json"
    info.write_text(json.dumps({"path": store_path, "closure": []}))
    out = tmp_path / "build" / "out"
    # `a` is the tree root, so `a/b` would lie at its top and climb one level too many,
    # to tmp_path, and `c`'s placeholder would be written through it into the canary.
    evil = [sym(f"{p}/a", "/"), sym(f"{p}/a/b", "/canary"), sym(f"{p}/c", "/evil/a/b/victim/pwn")]
    blob = layer(tmp_path / "evil.tar", [directory(p), *evil])
    req = {"info": str(info), "layer": str(blob.path), "output": str(out)}
    assert action(tmp_path, "StoreTree", req) == 1
    assert f"layer member lies below a symlink (got '{p}/a/b')" in capsys.readouterr().err


def test_store_tree_links_and_placeholders_stay_in_the_tree(tmp_path: Path, canary: str) -> None:
    store_path = "/nix/store/0c8w9s1iy6mbmn8xl9wn3m2d8cg1zc6q-evil"
    p = store_path.lstrip("/")
    info = tmp_path / "info.json"
    info.write_text(json.dumps({"path": store_path, "closure": []}))
    out = tmp_path / "build" / "out"
    members = [
        directory(p),
        sym(f"{p}/up", UP + canary + "/victim/pwned"),
        sym(f"{p}/abs", f"/{canary}/victim/delete-me"),
        directory(f"{p}/bin"),
        sym(f"{p}/bin/sh", "/nix/store/1bfwg64jzs1pzh4x0jj7lyw5cy5hs0pv-busybox/bin/busybox"),
    ]
    blob = layer(tmp_path / "tree.tar", members)
    req = {"info": str(info), "layer": str(blob.path), "output": str(out)}
    assert action(tmp_path, "StoreTree", req) == 0
    for link in ("evil/up", "evil/abs", "evil/bin/sh"):
        resolved = (out / link).resolve()
        assert resolved.is_relative_to(out.resolve()) and resolved.is_file(), link
    assert (out / canary / "victim" / "pwned").read_bytes() == b""
