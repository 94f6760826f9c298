"""strata.oci.reader: the one place a docker-archive or an OCI layout is opened."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
from pathlib import Path

import pytest
import zstandard

from image_helpers import small_image
from strata.errors import UserError
from strata.oci.base import Selector, load_base
from strata.oci.docker_archive import write_docker_archive
from strata.oci.reader import Archive, blob_path, layout_blob
from strata.oci.tarscan import BLOCK


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    path = tmp_path / "base.tar"
    write_docker_archive(path, [small_image(src, tag="v1").image])
    return path


@pytest.mark.parametrize(
    "compress",
    [
        gzip.compress,
        bz2.compress,
        lzma.compress,
        lambda data: zstandard.ZstdCompressor().compress(data),
    ],
    ids=["gzip", "bzip2", "xz", "zstd"],
)
def test_a_compressed_archive_reads_as_the_plain_one(
    tmp_path: Path, archive: Path, compress: object
) -> None:
    packed = tmp_path / "packed.tar.x"
    packed.write_bytes(compress(archive.read_bytes()))  # type: ignore[operator]
    plain = load_base(archive, Selector(), tmp_path / "w1")
    got = load_base(packed, Selector(), tmp_path / "w2")
    assert got.config_bytes == plain.config_bytes
    assert [b.digest for b in got.layers] == [b.digest for b in plain.layers]
    for a, b in zip(got.layers, plain.layers, strict=True):
        assert a.path.read_bytes() == b.path.read_bytes()


def test_a_corrupt_compressed_archive_is_one_error(tmp_path: Path, archive: Path) -> None:
    packed = tmp_path / "packed.tar.gz"
    packed.write_bytes(gzip.compress(archive.read_bytes())[:200])
    with pytest.raises(UserError) as e:
        Archive(packed)
    assert str(e.value).startswith(
        f"{packed}: base image archive is truncated or corrupt while reading its compressed "
        "data (got "
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"not a tar\n", "the file ends inside its first header"),
        (b"0" * 2048, "the header at byte 0 has a bad checksum"),
        (b"x" * 2048, "the checksum of the header at byte 0 is not a number"),
    ],
)
def test_not_a_tar(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "text"
    path.write_bytes(content)
    with pytest.raises(UserError) as e:
        Archive(path)
    assert str(e.value) == (
        f"{path}: base image is not a tar archive ({reason}); give a docker-archive "
        "(docker save) or an OCI layout directory"
    )


def test_a_bad_header_after_the_first_is_corruption_not_a_short_listing(
    tmp_path: Path, archive: Path
) -> None:
    data = bytearray(archive.read_bytes())
    with Archive(archive) as a:
        second = sorted(h.start for h in a.members.values())[1]
    data[second + 148] ^= 1  # the second header's checksum
    bad = tmp_path / "bad.tar"
    bad.write_bytes(bytes(data))
    with pytest.raises(UserError) as e:
        Archive(bad)
    assert str(e.value) == (
        f"{bad}: base image archive is truncated or corrupt while reading its table of members "
        f"(got the header at byte {second} has a bad checksum); save or download the base "
        "image again"
    )


def test_members_are_read_through_links_and_by_range(tmp_path: Path, archive: Path) -> None:
    with Archive(archive) as a:
        manifest = a.read("manifest.json")
        assert manifest.startswith(b"[{") and manifest.endswith(b"]")
        with a.open("manifest.json") as f:
            assert f.read(2) == b"[{" and f.read() == manifest[2:]
        with pytest.raises(UserError, match=r"archive member is missing \(got 'nope'\)"):
            a.open("nope")
        with pytest.raises(UserError, match=r"archive member escapes the archive"):
            a.open("../manifest.json")


def test_an_archive_cut_under_the_reader_is_one_error(tmp_path: Path, archive: Path) -> None:
    copy = tmp_path / "copy.tar"
    copy.write_bytes(archive.read_bytes())
    with Archive(copy) as a:
        h = a.members["manifest.json"]
        os.truncate(copy, h.data + 1)
        with pytest.raises(UserError) as e:
            a.read("manifest.json")
    assert "truncated or corrupt while reading 'manifest.json' (got unexpected end of data)" in str(
        e.value
    )
    assert h.data % BLOCK == 0


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:./" + "/" * 50 + "../../../etc",
        "sha256:" + "A" * 64,
        "sha512:" + "0" * 64,
        "sha256:" + "0" * 63,
        None,
        ["sha256:" + "0" * 64],
    ],
)
def test_only_a_sha256_digest_names_a_blob(tmp_path: Path, digest: object) -> None:
    assert blob_path(tmp_path, digest) is None
    with pytest.raises(UserError, match=r"unsupported or malformed digest \(got "):
        layout_blob(tmp_path, digest, "here")


def test_a_blob_named_but_missing(tmp_path: Path) -> None:
    digest = "sha256:" + "0" * 64
    assert blob_path(tmp_path, digest) == tmp_path / "blobs" / "sha256" / ("0" * 64)
    with pytest.raises(UserError) as e:
        layout_blob(tmp_path, digest, "here")
    assert str(e.value) == (
        f"here: blob is missing (got blobs/sha256/{'0' * 64}); the layout is incomplete: "
        "copy or pull it again"
    )
