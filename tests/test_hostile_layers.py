"""Hostile layers and images never touch the host: every unpacker and reader, attacked.

Each test builds hostile input in tmp_path (links to `/`, `..` chains, link
chains, hard links and whiteouts through links, bad names and digests), runs
the real action entry point, and checks that a canary directory outside the
build is byte-for-byte and inode-for-inode untouched and that its victim file
is still there. Where the input is acceptable, it also checks the result is
what a container runtime would make of it (paths resolved inside the root).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from realtools import need
from strata.cli import main
from strata.errors import UserError
from strata.oci.docker_archive import write_docker_archive
from strata.oci.image import Blob, assemble
from strata.oci.oci_layout import write_oci_layout
from strata.oci.platform import parse_platform
from strata.registry.push_source import read_layout

BUSYBOX = "/usr/bin/busybox"
UP = "../" * 16  # more `..` than any unpack directory is deep


def action(tmp: Path, mnemonic: str, req: dict[str, Any]) -> int:
    path = tmp / f"{mnemonic}-{len(list(tmp.glob('*.req.json')))}.req.json"
    path.write_text(json.dumps({"schema_version": 1, **req}, sort_keys=True))
    return main(["action", mnemonic, f"@{path}"])


def entry(name: str, data: bytes | None = None, **kw: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 1
    info.mode = 0o644
    for k, v in kw.items():
        setattr(info, k, v)
    if data is None and info.type == tarfile.REGTYPE:
        info.type = tarfile.DIRTYPE
        info.mode = kw.get("mode", 0o755)
    return info


def sym(name: str, target: str, **kw: Any) -> tuple[tarfile.TarInfo, None]:
    return entry(name, type=tarfile.SYMTYPE, linkname=target, **kw), None


def hardlink(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    return entry(name, type=tarfile.LNKTYPE, linkname=target), None


def file(name: str, data: bytes = b"pwned\n", **kw: Any) -> tuple[tarfile.TarInfo, bytes]:
    return entry(name, data, **kw), data


def directory(name: str, **kw: Any) -> tuple[tarfile.TarInfo, None]:
    return entry(name, **kw), None


Member = tuple[tarfile.TarInfo, bytes | None]


def layer(path: Path, members: list[Member]) -> Blob:
    """An uncompressed layer blob (digest = diff_id) holding `members` in order."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    raw = path.read_bytes()
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    return Blob(path, digest, len(raw), digest, "none")


# -- RunAsRoot ---------------------------------------------------------------------------------


def shell() -> list[Member]:
    return [
        directory("bin"),
        file("bin/busybox", Path(BUSYBOX).read_bytes(), mode=0o755),
        sym("bin/sh", "busybox"),
    ]


def attack(via: str, c: str) -> list[Member]:
    """Every kind of write through `via` (a path that resolves to the image's `/`)."""
    return [
        file(f"{via}/{c}/pwned"),
        file(f"{via}/{c}/newdir/deeper/pwned"),  # parents made through the link
        directory(f"{via}/{c}/victim", mode=0o777, uid=4242, gid=4242),  # chmod/chown
        sym(f"{via}/{c}/victim/planted", "/etc/shadow", uid=4242),  # lchown of a link
        hardlink(f"{via}/{c}/victim/linked", "bin/busybox"),
        file(f"{via}/{c}/victim/.wh.delete-me", b""),
        file(f"{via}/{c}/victim/.wh..wh..opq", b""),
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


# -- CustomizationLayer ------------------------------------------------------------------------


def customization(tmp: Path, **req: Any) -> tuple[int, dict[str, tarfile.TarInfo]]:
    out = tmp / "out" / "layer.tar"
    full = {"compressor": "none", "output": str(out), "descriptor": str(out) + ".json", **req}
    code = action(tmp, "CustomizationLayer", full)
    if code != 0:
        return code, {}
    with tarfile.open(out) as tar:
        return code, {m.name: m for m in tar.getmembers()}


EVIL = "/nix/store/0c8w9s1iy6mbmn8xl9wn3m2d8cg1zc6q-evil"
SECOND = "/nix/store/1d9x0t2jz7ncnn9ym0xo4n3e9dh2ad7r-second"


def store_path(tmp: Path, path: str, members: list[Member]) -> dict[str, str]:
    """A store path's own layer and info file, as a `contents`/`closure` item."""
    name = path.rsplit("/", 1)[1]
    p = path.lstrip("/")
    blob = layer(tmp / f"{name}.tar", [directory(p), *[_under(p, m) for m in members]])
    info = tmp / f"{name}.info.json"
    info.write_text(json.dumps({"path": path, "closure": []}))
    return {"info": str(info), "layer": str(blob.path)}


def _under(prefix: str, m: Member) -> Member:
    m[0].name = f"{prefix}/{m[0].name}"
    return m


def test_a_store_path_with_members_below_its_own_link_is_refused(
    tmp_path: Path, canary: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """No store path can hold `x -> /` and then `x/...`: refused before anything is written."""
    members = [
        sym("x", "/"),
        sym("y", UP),
        *[m for m in attack("x", canary) if m[0].type != tarfile.LNKTYPE],
        file(f"y/{canary}/by-y"),
    ]
    item = store_path(tmp_path, EVIL, members)
    for contents in ([item], [{**item, "join": "link"}]):
        code, _ = customization(tmp_path, contents=contents)
        assert code == 1
        assert "a layer member's parent is not a directory in the layer" in (
            capsys.readouterr().err
        )
        assert not (tmp_path / "out" / "layer.tar").exists()


# What the second path's `x/` becomes after the first path's `x -> TARGET`, for each way a
# store path reaches / (None: refused with one error line). Nothing is ever written through.
_THROUGH: dict[tuple[str, str], str | None] = {
    ("join", "/"): "link",
    ("join", UP): "link",
    ("join", "/canary"): "link",
    ("copy", "/"): None,  # rsync -k would copy the whole host root
    ("copy", UP): None,
    ("copy", "/canary"): "dir",
    ("copy -K", "/"): None,  # rsync -K would write into /
    ("copy -K", UP): "dir",
    ("copy -K", "/canary"): "dir",
}


@pytest.mark.parametrize(("how", "target"), sorted(_THROUGH))
def test_a_later_store_path_never_writes_through_an_earlier_ones_link(
    tmp_path: Path, canary: str, how: str, target: str
) -> None:
    link = f"/{canary}/victim" if target == "/canary" else target
    first = store_path(tmp_path, EVIL, [sym("x", link)])
    inside = "" if link == f"/{canary}/victim" else f"{canary}/victim/"
    parts = inside.strip("/").split("/") if inside else []
    second = store_path(
        tmp_path,
        SECOND,
        [
            directory("x"),
            file("x/pwned"),
            *[directory("x/" + "/".join(parts[:i])) for i in range(1, len(parts) + 1)],
            file(f"x/{inside}delete-me", b"replaced\n"),
            file(f"x/{inside}secret", b"overwritten\n"),
        ],
    )
    extra = {"join": "link"} if how == "join" else {}
    contents = [{**first, **extra}, {**second, **extra}]
    code, got = customization(tmp_path, contents=contents, keep_dirlinks=how == "copy -K")
    expect = _THROUGH[(how, target)]
    if expect is None:
        assert code == 1 and not (tmp_path / "out" / "layer.tar").exists()
    elif expect == "link":  # lndir: a directory arriving at a link is not joined
        assert code == 0 and got["x"].issym() and got["x"].linkname == link
        assert not [n for n in got if n.startswith("x/")]
    else:
        assert code == 0 and got["x"].isdir() and got["x/pwned"].isfile()


def test_files_through_a_content_link_stay_in_the_root(tmp_path: Path, canary: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    os.symlink(f"/{canary}/victim", src / "etc")  # nothing there in the image
    os.symlink("/", src / "top")  # the image's root
    files = [
        {"type": "file", "dest": "etc/pwned", "content": "x"},
        {"type": "dir", "dest": f"top/{canary}/victim", "mode": "0777"},
        {"type": "file", "dest": f"top/{canary}/victim/pwned", "content": "x"},
        {"type": "symlink", "dest": f"top/{canary}/victim/delete-me", "target": "/x"},
    ]
    contents = [{"store_path": EVIL, "src": str(src)}]
    code, got = customization(tmp_path, contents=contents, files=files)
    assert code == 0
    assert got["etc"].isdir() and "etc/pwned" in got
    assert got["top"].issym() and got["top"].linkname == "/"
    assert got[f"{canary}/victim"].mode == 0o777 and got[f"{canary}/victim/pwned"].isfile()
    assert got[f"{canary}/victim/delete-me"].issym()


def test_keep_dirlinks_through_a_link_chain_stays_in_the_root(tmp_path: Path, canary: str) -> None:
    first = store_path(tmp_path, EVIL, [sym("lib", f"a/{canary}/victim"), sym("a", "/")])
    second = store_path(
        tmp_path,
        SECOND,
        [directory("lib"), file("lib/pwned", b"x"), file("lib/delete-me", b"x")],
    )
    code, got = customization(tmp_path, contents=[first, second], keep_dirlinks=True)
    assert code == 0
    # the link resolves to nothing inside the root: the directory replaces it
    assert got["lib"].isdir() and "lib/pwned" in got


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


# -- readers: base images, layouts to push or index ---------------------------------------------


def test_docker_archive_names_outside_are_refused(
    tmp_path: Path, canary: str, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = f"/{canary}/victim/secret"
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"diff_ids": ["sha256:00"]}}
    for layers, links in [
        (["../canary/victim/secret"], {}),
        ([secret], {}),
        (["l.tar"], {"l.tar": secret}),
        (["l.tar"], {"l.tar": "../canary/victim/secret"}),
        (["l.tar"], {"dir": "/", "l.tar": f"dir/{canary}/victim/secret"}),
    ]:
        archive = tmp_path / "evil.tar"
        doc = json.dumps([{"Config": "c.json", "Layers": layers}]).encode()
        members = [file("manifest.json", doc), file("c.json", json.dumps(config).encode())]
        members += [sym(name, target) for name, target in links.items()]
        layer(archive, members)
        out = tmp_path / "rootfs.tar"
        req = {"image": str(archive), "output": str(out)}
        assert action(tmp_path, "ImageExport", req) == 1, (layers, links)
        assert "archive member escapes the archive" in capsys.readouterr().err
        assert not out.exists()


def layout_naming(tmp: Path, layer_digest: str, size: int) -> Path:
    """An OCI layout whose one manifest names `layer_digest` (a hostile one)."""
    layout = tmp / "layout"
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"diff_ids": [layer_digest]}}
    ).encode()

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return "sha256:" + digest

    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": put(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": size,
                }
            ],
        }
    ).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": put(manifest),
                "size": len(manifest),
                "platform": {"architecture": "amd64", "os": "linux"},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return layout


def sneaky_digest(layout: Path, target: Path) -> str:
    """`sha256:` + a 64-character path from the layout's blob directory to `target`."""
    rel = os.path.relpath(target, layout / "blobs" / "sha256")
    padding = 64 - len(rel)
    assert padding >= 2, rel
    return "sha256:" + "." + "/" * (padding - 1) + rel


def test_layout_blob_digest_naming_a_host_file_is_refused(
    tmp_path: Path, canary: str, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = Path("/" + canary) / "victim" / "secret"
    layout = tmp_path / "layout"
    digest = sneaky_digest(layout, secret)
    layout_naming(tmp_path, digest, secret.stat().st_size)
    # the base reader (run_as_root, export, image assembly) ...
    out = tmp_path / "rootfs.tar"
    assert action(tmp_path, "ImageExport", {"image": str(layout), "output": str(out)}) == 1
    assert "unsupported or malformed digest (got 'sha256:./" in capsys.readouterr().err
    assert not out.exists()
    # ... and the push reader, which would otherwise send the host file to a registry
    with pytest.raises(UserError, match=r"malformed blob digest in the layout \(got 'sha256:\./"):
        read_layout(layout)


def test_image_index_refuses_a_manifest_digest_naming_outside(
    tmp_path: Path, canary: str, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = layout_naming(tmp_path, "sha256:" + "0" * 64, 0)
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0]["digest"] = sneaky_digest(
        layout, Path("/" + canary) / "victim" / "secret"
    )
    (layout / "index.json").write_text(json.dumps(index))
    out = tmp_path / "index"
    req = {"images": [str(layout)], "name": "ev/il", "output": str(out)}
    assert action(tmp_path, "ImageIndex", req) == 1
    assert "the image's manifest digest is malformed (got 'sha256:./" in capsys.readouterr().err
    assert not out.exists()


def test_run_as_root_layers_dir_naming_outside(
    tmp_path: Path, canary: str, capsys: pytest.CaptureFixture[str]
) -> None:
    layers = tmp_path / "layers"
    layers.mkdir()
    for bad in ("..", ".", "../canary/victim/secret"):
        doc = {"layers": [{"blob": bad, "descriptor": "d.json"}], "schema_version": 1}
        (layers / "layers.json").write_text(json.dumps(doc))
        req = {
            "layers": [{"dir": str(layers)}],
            "script": "true",
            "compressor": "none",
            "output": str(tmp_path / "out.tar"),
            "descriptor": str(tmp_path / "out.json"),
        }
        assert action(tmp_path, "RunAsRoot", req) == 1
        assert "a layer entry lacks plain blob/descriptor names" in capsys.readouterr().err
        assert not (tmp_path / "out.tar").exists()
