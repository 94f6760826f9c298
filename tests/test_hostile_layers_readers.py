"""Hostile layers and images never touch the host, continued: the customisation layer's
store view and every reader of base images and of layouts to push or index (see
test_hostile_layers.py for the unpackers; the same canary checks).
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from hostilekit import (
    UP,
    Member,
    action,
    attack,
    directory,
    file,
    layer,
    sym,
)
from strata.errors import UserError
from strata.registry.push_source import read_layout

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
