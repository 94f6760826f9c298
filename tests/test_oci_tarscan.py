"""strata.oci.tarscan lists a tar as tarfile does, and refuses what tarfile would misread."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from strata.oci.tarscan import DIRECTORY, REGULAR_TYPES, SYMLINK, Header, TarFormatError, scan


def _tar(path: Path, fmt: int, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w", format=fmt) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def _members() -> list[tuple[tarfile.TarInfo, bytes]]:
    out: list[tuple[tarfile.TarInfo, bytes]] = []
    d = tarfile.TarInfo("nix/store/abc-x")
    d.type, d.mode = tarfile.DIRTYPE, 0o555
    out.append((d, b""))
    for name, size in (("nix/store/abc-x/" + "a" * 120 + "/f", 3), ("nix/store/abc-x/small", 1)):
        f = tarfile.TarInfo(name)
        f.size, f.mode = size, 0o444
        out.append((f, b"x" * size))
    big = tarfile.TarInfo("nix/store/abc-x/big")
    big.size, big.mode = 70_000, 0o555
    out.append((big, (bytes(range(256)) * 274)[:70_000]))
    link = tarfile.TarInfo("nix/store/abc-x/lib64")
    link.type, link.linkname = tarfile.SYMTYPE, "l" * 150
    out.append((link, b""))
    uni = tarfile.TarInfo("nix/store/abc-x/ünïcode")
    uni.size = 2
    out.append((uni, b"ok"))
    return out


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_the_listing_is_what_tarfile_reads(tmp_path: Path, fmt: int) -> None:
    members = _members()
    if fmt == tarfile.USTAR_FORMAT:  # no long link names or non-ASCII names in plain ustar
        members = [(i, d) for i, d in members if len(i.linkname) < 100 and i.name.isascii()]
    path = _tar(tmp_path / "t.tar", fmt, members)
    with path.open("rb") as f:
        got = list(scan(f.fileno()))
    with tarfile.open(path) as t:
        want = t.getmembers()
    assert [h.name for h in got] == [m.name for m in want]
    assert [h.size for h in got] == [m.size if m.isreg() else 0 for m in want]
    assert [h.data for h in got] == [m.offset_data for m in want]
    assert [h.mode for h in got] == [m.mode for m in want]
    assert [h.linkname for h in got] == [m.linkname for m in want]
    kinds = [DIRECTORY if m.isdir() else SYMLINK if m.issym() else b"0" for m in want]
    assert [h.kind if h.kind not in REGULAR_TYPES else b"0" for h in got] == kinds
    data = path.read_bytes()
    for h, m in zip(got, want, strict=True):
        assert data[h.data : h.data + h.size] == (_data_of(path, m) if m.isreg() else b"")
    # each member's blocks follow the last one's: a caller can copy them byte for byte
    assert got[0].start == 0
    assert all(a.end == b.start for a, b in zip(got, got[1:], strict=False))


def _data_of(path: Path, m: tarfile.TarInfo) -> bytes:
    with tarfile.open(path) as t:
        f = t.extractfile(m)
        assert f is not None
        return f.read()


def _one_file(tmp_path: Path) -> bytearray:
    info = tarfile.TarInfo("f")
    info.size = 600
    return bytearray(
        _tar(tmp_path / "one.tar", tarfile.USTAR_FORMAT, [(info, b"y" * 600)]).read_bytes()
    )


def _scan_bytes(tmp_path: Path, data: bytes) -> list[Header]:
    path = tmp_path / "bad.tar"
    path.write_bytes(data)
    with path.open("rb") as f:
        return list(scan(f.fileno()))


def test_a_bad_checksum_is_an_error_not_the_end(tmp_path: Path) -> None:
    data = _one_file(tmp_path)
    data[0:1] = b"g"
    with pytest.raises(TarFormatError, match="bad checksum"):
        _scan_bytes(tmp_path, bytes(data))


def test_data_past_the_end_of_the_file_is_an_error(tmp_path: Path) -> None:
    data = _one_file(tmp_path)
    with pytest.raises(TarFormatError, match="ends inside the data"):
        _scan_bytes(tmp_path, bytes(data[:1024]))


def test_an_empty_file_and_end_blocks_list_nothing(tmp_path: Path) -> None:
    assert _scan_bytes(tmp_path, b"") == []
    assert _scan_bytes(tmp_path, bytes(1024)) == []


def test_a_malformed_pax_record_is_an_error(tmp_path: Path) -> None:
    info = tarfile.TarInfo("p" * 150)
    path = _tar(tmp_path / "pax.tar", tarfile.PAX_FORMAT, [(info, b"")])
    data = bytearray(path.read_bytes())
    body = data.index(b" path=")
    data[body - 3 : body] = b"999"  # the record now claims more bytes than there are
    header = bytearray(data[:512])
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    data[:512] = header
    with pytest.raises(TarFormatError, match="pax record"):
        _scan_bytes(tmp_path, bytes(data))


def test_an_extension_header_without_a_member_is_an_error(tmp_path: Path) -> None:
    info = tarfile.TarInfo("p" * 150)
    data = _tar(tmp_path / "pax.tar", tarfile.PAX_FORMAT, [(info, b"")]).read_bytes()
    with pytest.raises(TarFormatError, match="has no member"):
        _scan_bytes(tmp_path, data[:1024] + bytes(1024))
