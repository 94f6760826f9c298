from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from strata.oci.tarwriter import REGULAR, TarWriter, _pax_record


def _tar(build) -> bytes:  # type: ignore[no-untyped-def]
    out = io.BytesIO()
    tw = TarWriter(out)
    build(tw)
    tw.close()
    return out.getvalue()


def test_header_fields_are_ours() -> None:
    data = _tar(lambda tw: tw.add_bytes("etc/hello", b"hi\n", 0o640))
    header = data[:512]
    assert header[:9] == b"etc/hello" and header[9:100] == bytes(91)
    assert header[100:108] == b"0000640\0"
    assert header[108:116] == b"0000000\0" and header[116:124] == b"0000000\0"
    assert header[124:136] == b"00000000003\0"
    assert header[136:148] == b"00000000001\0"  # mtime 1
    assert header[156:157] == REGULAR
    assert header[257:265] == b"ustar\x0000"
    assert header[265:297] == bytes(32)  # empty uname
    checksum = sum(header[:148]) + 8 * 32 + sum(header[156:])
    assert header[148:156] == b"%06o\0 " % checksum
    assert data[512:515] == b"hi\n" and data[515:1024] == bytes(509)
    assert data[1024:] == bytes(1024)  # end of archive, nothing more
    assert len(data) == 2048


def test_stdlib_and_gnu_tar_read_what_we_write(tmp_path: Path) -> None:
    src = tmp_path / "big"
    src.write_bytes(b"x" * 3_000_000)
    long_name = "d/" + "n" * 150
    data = _tar(
        lambda tw: (
            tw.add_dir("d", 0o755),
            tw.add_bytes(long_name, b"long"),
            tw.add_bytes("d/ünïcode", b"u", 0o600),
            tw.add_symlink("d/link", "../" + "t" * 120),
            tw.add_file("d/big", src, 3_000_000, 0o755, uid=1000, gid=100, uname="app"),
        )
    )
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        members = t.getmembers()
    by_name = {m.name: m for m in members}
    assert [m.name for m in members] == ["d", long_name, "d/ünïcode", "d/link", "d/big"]
    assert by_name["d"].isdir() and by_name["d"].mode == 0o755
    assert by_name["d/link"].issym() and by_name["d/link"].linkname == "../" + "t" * 120
    big = by_name["d/big"]
    assert (big.size, big.mode, big.uid, big.gid, big.uname) == (3_000_000, 0o755, 1000, 100, "app")
    assert by_name["d/ünïcode"].mode == 0o600
    assert all(m.mtime == 1 for m in members)
    archive = tmp_path / "a.tar"
    archive.write_bytes(data)
    listing = subprocess.run(
        ["tar", "--numeric-owner", "-tvf", str(archive)], capture_output=True, text=True, check=True
    ).stdout
    assert "d/ünïcode" in listing and long_name in listing
    assert "-rwxr-xr-x 1000/100    3000000 1970-01-01 00:00 d/big" in listing


def test_sizes_and_ids_that_do_not_fit_go_to_pax() -> None:
    out = io.BytesIO()
    tw = TarWriter(out)
    tw._header("huge", REGULAR, 0o644, 9 * 2**30, b"", {"uid": 3_000_000})
    raw = out.getvalue() + bytes(tw._buf)
    assert raw[156:157] == b"x"  # PAX header first
    assert b"size=9663676416\n" in raw and b"uid=3000000\n" in raw
    assert raw[:14] == b"././@PaxHeader"


def test_pax_record_length_counts_itself() -> None:
    for n in (1, 5, 90, 95, 96, 97, 994, 995, 996):
        rec = _pax_record("path", b"a" * n)
        length, _, _ = rec.partition(b" ")
        assert int(length) == len(rec)


def test_file_that_changes_size_is_an_error(tmp_path: Path) -> None:
    from strata.errors import UserError

    src = tmp_path / "f"
    src.write_bytes(b"abc")
    tw = TarWriter(io.BytesIO())
    with pytest.raises(UserError, match="file changed size while it was being read"):
        tw.add_file("f", src, 10)


def test_a_file_from_a_slice_of_another(tmp_path: Path) -> None:
    """A member of a layer file: `size` bytes from `offset`, as if it were a file of its own."""
    from strata.errors import UserError

    big = tmp_path / "layer"
    big.write_bytes(b"x" * 700 + b"the member" + b"y" * 3000)
    sliced, whole = io.BytesIO(), io.BytesIO()
    (tmp_path / "member").write_bytes(b"the member")
    for sink, src, offset in ((sliced, big, 700), (whole, tmp_path / "member", 0)):
        tw = TarWriter(sink)
        tw.add_file("m", src, 10, offset=offset)
        tw.close()
    assert sliced.getvalue() == whole.getvalue()
    assert b"the member" in sliced.getvalue() and b"x" not in sliced.getvalue()
    with pytest.raises(UserError, match="file changed size while it was being read"):
        TarWriter(io.BytesIO()).add_file("m", big, 10, offset=3705)  # past the end


def test_directories_and_links_alone_do_not_pile_up_in_memory() -> None:
    """A layer of links (a customisation layer: one per file of the closure) is flushed as it
    grows, like one of files: the buffer stays near 1 MiB, not the whole tar."""
    writes: list[int] = []

    class Sink:
        def write(self, data: bytes | bytearray | memoryview, /) -> int:
            writes.append(len(data))
            return len(data)

    tw = TarWriter(Sink())
    for i in range(4000):
        tw.add_dir(f"d{i}")
        tw.add_symlink(f"d{i}/l", "/nix/store/" + "x" * 200)
    assert sum(writes) > 6 << 20  # most of the 8 MiB went out before close
    assert max(writes) < 2 << 20
    tw.close()
