from __future__ import annotations

import dataclasses
import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from image_helpers import make_layer
from strata.cli import main
from strata.errors import UserError
from strata.oci.export import export_rootfs
from strata.oci.tarwriter import TarWriter


def lower(tar: TarWriter) -> None:
    tar.add_dir("a")
    tar.add_bytes("a/keep", b"keep")
    tar.add_bytes("a/gone", b"gone")
    tar.add_dir("a/sub")
    tar.add_bytes("a/sub/deep", b"deep")
    tar.add_dir("opq")
    tar.add_bytes("opq/old", b"old")
    tar.add_dir("was-dir")
    tar.add_bytes("was-dir/child", b"child")
    tar.add_bytes("top", b"v1", uid=7, gid=8)


def upper(tar: TarWriter) -> None:
    tar.add_dir("a", mode=0o700)
    tar.add_bytes("a/.wh.gone", b"")
    tar.add_bytes("a/.wh.sub", b"")
    tar.add_dir("opq")
    tar.add_bytes("opq/.wh..wh..opq", b"")
    tar.add_bytes("opq/new", b"new")
    tar.add_symlink("top", "a/keep")
    tar.add_bytes("was-dir", b"now a file", mode=0o600)
    tar.add_bytes("z/implied", b"parent made up")


def rootfs(path: Path) -> dict[str, tuple[str, int, int, bytes | str]]:
    out: dict[str, tuple[str, int, int, bytes | str]] = {}
    with tarfile.open(path) as tf:
        for m in tf.getmembers():
            if m.isdir():
                out[m.name] = ("dir", m.mode, m.uid, b"")
            elif m.issym():
                out[m.name] = ("sym", m.mode, m.uid, m.linkname)
            else:
                out[m.name] = ("file", m.mode, m.uid, tf.extractfile(m).read())  # type: ignore[union-attr]
    return out


@pytest.fixture
def layers(tmp_path: Path):  # type: ignore[no-untyped-def]
    return [
        make_layer(tmp_path / "lower", lower, "gzip")[0],
        make_layer(tmp_path / "upper", upper, "zstd")[0],
    ]


def test_whiteouts_and_replacement(tmp_path: Path, layers) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "rootfs.tar"
    result = export_rootfs(layers, out, tmp_path / "work")
    assert rootfs(out) == {
        "a": ("dir", 0o700, 0, b""),
        "a/keep": ("file", 0o644, 0, b"keep"),
        "opq": ("dir", 0o755, 0, b""),
        "opq/new": ("file", 0o644, 0, b"new"),
        "top": ("sym", 0o777, 0, "a/keep"),
        "was-dir": ("file", 0o600, 0, b"now a file"),
        "z": ("dir", 0o755, 0, b""),
        "z/implied": ("file", 0o644, 0, b"parent made up"),
    }
    with tarfile.open(out) as tf:
        assert tf.getnames() == sorted(tf.getnames())
    assert result.digest == "sha256:" + hashlib.sha256(out.read_bytes()).hexdigest()
    assert result.warnings == ()


def test_hard_links_become_files_and_owners_kept(tmp_path: Path) -> None:
    import io

    blob = tmp_path / "hl.tar"
    with tarfile.open(blob, "w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("f")
        info.size, info.uid, info.gid = 3, 5, 6
        tf.addfile(info, io.BytesIO(b"abc"))
        link = tarfile.TarInfo("g")
        link.type, link.linkname = tarfile.LNKTYPE, "f"
        tf.addfile(link)
    from strata.oci.image import Blob

    data = blob.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    out = tmp_path / "rootfs.tar"
    export_rootfs([Blob(blob, digest, len(data), digest, "none")], out, tmp_path / "w")
    got = rootfs(out)
    assert got["f"] == ("file", 0o644, 5, b"abc")
    assert got["g"] == ("file", 0o644, 0, b"abc")


def test_golden_and_reproducible(tmp_path: Path, layers) -> None:  # type: ignore[no-untyped-def]
    a = export_rootfs(layers, tmp_path / "one.tar", tmp_path / "w1")
    b = export_rootfs(layers, tmp_path / "two.tar", tmp_path / "w2")
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    assert a.digest == b.digest == GOLDEN_EXPORT


GOLDEN_EXPORT = "sha256:4a74a2091c9a9976324eef1f70bc9402734c16e0ddff18de15797e5af2f01bfa"


def test_escaping_layer_member_rejected(tmp_path: Path) -> None:
    import io

    blob = tmp_path / "evil.tar"
    with tarfile.open(blob, "w") as tf:
        info = tarfile.TarInfo("../../etc/passwd")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    from strata.oci.image import Blob

    d = "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest()
    out = tmp_path / "rootfs.tar"
    with pytest.raises(
        UserError, match=r"layer member escapes the root \(got '../../etc/passwd'\)"
    ):
        export_rootfs([Blob(blob, d, 1, d, "none")], out, tmp_path / "w")
    assert not out.exists()


def test_export_action(tmp_path: Path, layers, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    from strata.oci.docker_archive import write_docker_archive
    from strata.oci.image import assemble
    from strata.oci.platform import parse_platform

    img = assemble(layers=layers, fields={}, platform=parse_platform("x86_64"), name="x/y").image
    write_docker_archive(tmp_path / "img.tar", [img])
    req = tmp_path / "req.json"
    out = tmp_path / "out" / "rootfs.tar"
    body = {"image": str(tmp_path / "img.tar"), "output": str(out), "schema_version": 1}
    req.write_text(json.dumps(body))
    assert main(["action", "ImageExport", f"@{req}"]) == 0
    assert "opq/new" in rootfs(out)
    body["name"] = "x/z:nope"
    out.unlink()
    req.write_text(json.dumps(body))
    assert main(["action", "ImageExport", f"@{req}"]) == 1
    assert "no image named 'x/z:nope' in the archive" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("damage", ["cut", "garbage", "bad gzip"])
def test_a_damaged_layer_is_one_error(tmp_path: Path, layers, damage: str) -> None:  # type: ignore[no-untyped-def]
    # Found by tools/fuzz (layer-export): tarfile, isal and EOF errors were tracebacks.
    blob = layers[0]
    data = blob.path.read_bytes()
    bent = {"cut": data[: len(data) // 2], "garbage": b"x" * 700,
            "bad gzip": b"\x1f\x8b\x08\x00" + bytes(40)}[damage]  # fmt: skip
    bad = tmp_path / "bad"
    bad.write_bytes(bent)
    broken = dataclasses.replace(blob, path=bad)
    with pytest.raises(UserError) as e:
        export_rootfs([broken], tmp_path / "out.tar", tmp_path / "work")
    assert str(e.value).startswith(f"layer 0 ({blob.digest}): layer is not a readable tar (")
    assert str(e.value).endswith(
        "the image or layer is corrupt or cut short: rebuild or pull it again"
    )
    assert not (tmp_path / "out.tar").exists()
