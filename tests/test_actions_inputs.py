"""Actions given broken base images and out-of-range owners: one error line, no output.

A truncated `docker save` (cut inside a layer, or inside manifest.json) and an
OCI layout without index.json crashed the readers with a traceback; a uid or
gid above 2^32-1 (from a request, or from a base layer's PAX header) was
written into a PAX header GNU tar then refused. Each case runs the action's
real entry point and checks the one error line, the exit status and that
the output was not written.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from strata.cli import main
from strata.oci.docker_archive import write_docker_archive
from strata.oci.image import Blob, assemble
from strata.oci.oci_layout import write_oci_layout
from strata.oci.platform import parse_platform
from test_hostile_layers import directory, file, layer

BIG = 1 << 32  # one more than the largest uid_t
MOTD = b"welcome\n" * 10_000


def _image(tmp: Path, members: list[Any] | None = None) -> Any:
    blob = layer(tmp / "l0.tar", members or [directory("etc"), file("etc/motd", MOTD)])
    return assemble(layers=[blob], fields={}, platform=parse_platform("x86_64"), name="b/ase").image


def _archive(tmp: Path) -> tuple[Path, bytes]:
    path = tmp / "good.tar"
    write_docker_archive(path, [_image(tmp)])
    return path, path.read_bytes()


def _member_offset(archive: Path, suffix: str) -> int:
    with tarfile.open(archive) as tf:
        (m,) = [m for m in tf.getmembers() if m.name.endswith(suffix)]
        return int(m.offset_data) + m.size // 2


def cut_in_layer(tmp: Path) -> Path:
    path, data = _archive(tmp)
    cut = tmp / "cut.tar"
    cut.write_bytes(data[: _member_offset(path, ".tar")])
    return cut


def cut_in_manifest(tmp: Path) -> Path:
    path, data = _archive(tmp)
    cut = tmp / "cut.tar"
    cut.write_bytes(data[: _member_offset(path, "manifest.json")])
    return cut


def layout_without_index(tmp: Path) -> Path:
    out = tmp / "layout"
    write_oci_layout(out, [_image(tmp)])
    (out / "index.json").unlink()
    return out


def layout_index_not_an_object(tmp: Path) -> Path:
    out = tmp / "layout"
    write_oci_layout(out, [_image(tmp)])
    (out / "index.json").write_text("[]")
    return out


def _owner_layer(tmp: Path, **owner: int) -> Path:
    """A docker-archive whose layer names an owner id in a PAX header."""
    path = tmp / "l0.tar"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("etc/motd")
        info.size, info.mtime = len(MOTD), 1
        for key, value in owner.items():
            setattr(info, key, value)
        tar.addfile(info, io.BytesIO(MOTD))
    raw = path.read_bytes()
    import hashlib

    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    image = assemble(
        layers=[Blob(path, digest, len(raw), digest, "none")],
        fields={},
        platform=parse_platform("x86_64"),
        name="b/ase",
    ).image
    out = tmp / "owner.tar"
    write_docker_archive(out, [image])
    return out


BASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    # name: (make the base image, expected error after "error: <base>: ")
    "docker-archive cut inside a layer": (
        cut_in_layer,
        r"base image archive is truncated or corrupt while reading .* \(got unexpected end of "
        r"data\); save or download the base image again$",
    ),
    "docker-archive cut inside manifest.json": (
        cut_in_manifest,
        r"base image archive is truncated or corrupt while reading .* \(got unexpected end of "
        r"data\); save or download the base image again$",
    ),
    "OCI layout without index.json": (
        layout_without_index,
        r"OCI image layout has no index.json \(got an oci-layout file without it\); the layout "
        r"is incomplete: copy or pull it again$",
    ),
    "OCI layout whose index.json is not an object": (
        layout_index_not_an_object,
        r"index.json is not a JSON object \(got list\); the layout is malformed: write or pull it "
        r"again$",
    ),
    "base layer with a uid above 2^32-1": (
        lambda tmp: _owner_layer(tmp, uid=BIG),
        r"layer 0 \(sha256:[0-9a-f]{64}\): etc/motd: owner id out of range \(got 4294967296\); "
        r"uid and gid are 32-bit: use 0 to 4294967295$",
    ),
    "base layer with a gid above 2^32-1": (
        lambda tmp: _owner_layer(tmp, gid=BIG + 5),
        r"layer 0 \(sha256:[0-9a-f]{64}\): etc/motd: owner id out of range \(got 4294967301\)",
    ),
}


def _run(tmp: Path, mnemonic: str, req: dict[str, Any]) -> int:
    path = tmp / "req.json"
    path.write_text(json.dumps({"schema_version": 1, **req}, sort_keys=True))
    return main(["action", mnemonic, f"@{path}"])


def _one_error(capsys: pytest.CaptureFixture[str], pattern: str) -> str:
    import re

    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    assert re.search(pattern, lines[0]), f"{pattern!r} not in {lines[0]!r}"
    return lines[0]


@pytest.mark.parametrize("case", sorted(BASES))
@pytest.mark.parametrize("mnemonic", ["ImageExport", "ImageAssemble"])
def test_a_broken_base_image_is_one_error_and_no_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, mnemonic: str
) -> None:
    make, expected = BASES[case]
    base = make(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    if mnemonic == "ImageExport":
        req: dict[str, Any] = {"image": str(base), "output": str(out / "rootfs.tar")}
    else:
        req = {
            "base": {"path": str(base)},
            "config": {},
            "layers": [],
            "name": "app/img",
            "outputs": {"docker_archive": str(out / "img.tar"), "oci_layout": str(out / "oci")},
        }
    code = _run(tmp_path, mnemonic, req)
    if mnemonic == "ImageAssemble" and "owner id" in expected:
        # Assembly copies base layers byte for byte: it never rewrites their headers.
        assert code == 0, capsys.readouterr().err
        return
    assert code == 1
    _one_error(capsys, rf"^error: {base}: {expected}")
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("key", "value"), [("uid", BIG), ("gid", BIG), ("uid", -1), ("gid", 2**64)]
)
def test_an_owner_id_tar_cannot_hold_is_refused_by_a_layer_action(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: int
) -> None:
    out = tmp_path / "out"
    req = {
        "compressor": "none",
        "files": [{"dest": "etc/motd", "type": "file", "content": "hi\n"}],
        "descriptor": str(out / "layer.json"),
        "output": str(out / "layer.tar"),
        key: value,
    }
    assert _run(tmp_path, "CustomizationLayer", req) == 1
    _one_error(
        capsys,
        rf"^error: {tmp_path}/req.json: {key}: owner id out of range \(got {value}\); uid and "
        r"gid are 32-bit: use 0 to 4294967295$",
    )
    assert not out.exists() or list(out.iterdir()) == []


def test_the_largest_owner_id_is_written_and_gnu_tar_reads_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    req = {
        "compressor": "none",
        "files": [{"dest": "etc/motd", "type": "file", "content": "hi\n"}],
        "descriptor": str(out / "layer.json"),
        "gid": BIG - 1,
        "output": str(out / "layer.tar"),
        "uid": BIG - 1,
    }
    assert _run(tmp_path, "CustomizationLayer", req) == 0
    listing = subprocess.run(
        [shutil.which("tar") or "tar", "--numeric-owner", "-tvf", out / "layer.tar"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "4294967295/4294967295" in listing
