"""Store path names: nix-base32, NAR bytes, fingerprints, against a real Nix store."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from realtools import need, run, unavailable
from strata.errors import UserError
from strata.store import base32, nar
from strata.store.path import check_name, parse, source_path
from strata.store.references import describe

NIX_CONFIG = (
    "build-users-group =\nsandbox = false\n"
    "experimental-features = nix-command ca-derivations\nsubstituters =\n"
)


def nix_env(root: Path) -> dict[str, str]:
    """Environment for a private Nix store under `root` (store dir `root`/nix/store)."""
    return {
        **os.environ,
        "NIX_CONFIG": NIX_CONFIG,
        "NIX_STORE_DIR": str(root / "nix/store"),
        "NIX_STATE_DIR": str(root / "nix/var/nix"),
        "NIX_LOG_DIR": str(root / "nix/var/log/nix"),
    }


def test_base32_known_vectors() -> None:
    # sha256("") as Nix prints it (nix-hash --type sha256 --to-base32 e3b0...).
    assert (
        base32.encode(hashlib.sha256(b"").digest())
        == "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"
    )
    assert base32.encode(b"\x00") == "00"
    assert base32.encode(b"\x1f") == "0z"  # low 5 bits are the last character
    assert base32.encode(b"\x20") == "10"
    assert len(base32.encode(bytes(20))) == 32


def test_base32_round_trip_and_errors() -> None:
    data = bytes(range(20))
    assert base32.decode(base32.encode(data), 20) == data
    with pytest.raises(ValueError, match="invalid nix-base32 character 'e'"):
        base32.decode("e" * 32, 20)
    with pytest.raises(ValueError, match="has 32 characters"):
        base32.decode("0" * 31, 20)


def test_nar_of_regular_file_is_exactly_nix_format(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"hi\n")
    f.chmod(0o644)

    def s(x: bytes) -> bytes:
        return len(x).to_bytes(8, "little") + x + b"\0" * (-len(x) % 8)

    expected = b"".join(
        s(x) for x in [b"nix-archive-1", b"(", b"type", b"regular", b"contents", b"hi\n", b")"]
    )
    assert b"".join(nar.dump(f)) == expected
    f.chmod(0o755)
    assert b"".join(nar.dump(f)) != expected
    assert s(b"executable") + s(b"") in b"".join(nar.dump(f))


def test_nar_sorts_entries_as_bytes_and_refuses_special_files(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    for name in ["b", "B", "é", "a"]:
        (d / name).write_text(name)
    data = b"".join(nar.dump(d))
    order = [data.index(b"\x01\0\0\0\0\0\0\0" + n) for n in [b"B", b"a", b"b"]]
    assert order == sorted(order)
    assert data.index("é".encode()) > order[-1]
    os.mkfifo(d / "fifo")
    with pytest.raises(UserError, match=r"fifo: unsupported file type in a store path"):
        b"".join(nar.dump(d))


def test_name_rules() -> None:
    assert check_name("hello-2.12_x+y?=z") == "hello-2.12_x+y?=z"
    with pytest.raises(UserError) as e:
        check_name("a b")
    assert str(e.value) == (
        "store path name: store path name contains ' ', which Nix does not allow "
        "(got 'a b'); use only letters, digits and + - . _ ? ="
    )
    with pytest.raises(UserError, match=r"starts with '\.' \(got '\.hidden'\)"):
        check_name(".hidden")
    with pytest.raises(UserError, match=r"longer than 211 characters \(got 212"):
        check_name("x" * 212)
    check_name("x" * 211)
    with pytest.raises(UserError, match="is empty"):
        check_name("")


def test_parse_and_store_dir_is_part_of_the_name() -> None:
    digest = hashlib.sha256(b"x").digest()
    a = source_path(digest, "x", store_dir="/nix/store")
    b = source_path(digest, "x", store_dir="/opt/store")
    assert a.hash_part != b.hash_part
    assert str(b).startswith("/opt/store/")
    assert parse(str(b), "/opt/store") == b
    with pytest.raises(UserError, match="not a path directly inside store directory '/nix/store'"):
        parse(str(b))
    with pytest.raises(UserError, match="32-character nix-base32 hash"):
        parse("/nix/store/eeee-x")
    with pytest.raises(UserError, match="trailing slash"):
        source_path(digest, "x", store_dir="/nix/store/")


def test_references_change_the_name_and_order_does_not_matter() -> None:
    digest = hashlib.sha256(b"x").digest()
    r1 = str(source_path(hashlib.sha256(b"1").digest(), "one"))
    r2 = str(source_path(hashlib.sha256(b"2").digest(), "two"))
    plain = source_path(digest, "x")
    assert source_path(digest, "x", [r1, r2]) == source_path(digest, "x", [r2, r1, r2])
    assert source_path(digest, "x", [r1]) != plain


def make_tree(root: Path) -> dict[str, Path]:
    """Test inputs: a file, an executable, and a directory with symlinks and odd names."""
    (root / "file").write_text("hello\n")
    exe = root / "exe"
    exe.write_text("#!/bin/sh\necho hi\n")
    exe.chmod(0o755)
    d = root / "tree"
    (d / "empty").mkdir(parents=True)
    (d / "sub" / "deeper-empty").mkdir(parents=True)
    (d / "sub" / "data").write_bytes(bytes(range(256)) * 3)
    (d / "sub" / "run").write_text("x")
    (d / "sub" / "run").chmod(0o700)
    (d / "Ünïcödé ☃").write_text("snow\n")
    (d / "link").symlink_to("sub/data")
    (d / "dangling").symlink_to("/does/not/exist")
    (d / "dirlink").symlink_to("sub")
    return {"file": root / "file", "exe": exe, "tree": d}


@pytest.mark.realtool
def test_names_and_hashes_equal_nix_store_add(tmp_path: Path) -> None:
    nix_store = need("nix-store")
    env = nix_env(tmp_path / "nix")
    store_dir = env["NIX_STORE_DIR"]
    src = tmp_path / "src"
    src.mkdir()
    for kind, path in make_tree(src).items():
        added = run(nix_store, "--add", path, env=env).stdout.strip()
        digest = nar.digest(path)
        ours = describe(path, path.name, store_dir=store_dir)
        assert ours.info.path == added, kind
        assert str(source_path(digest.sha256, path.name, store_dir=store_dir)) == added
        assert digest.nix_hash == run(nix_store, "-q", "--hash", added, env=env).stdout.strip()
        assert str(digest.size) == run(nix_store, "-q", "--size", added, env=env).stdout.strip()
        assert b"".join(nar.dump(path)) == run_bytes(nix_store, "--dump", added, env=env)


def run_bytes(*argv: str | Path, env: dict[str, str]) -> bytes:
    import subprocess

    return subprocess.run([str(a) for a in argv], env=env, check=True, capture_output=True).stdout


CA_DRV = """
let
  dep = builtins.derivation {
    name = "dep"; system = builtins.currentSystem; builder = "/bin/busybox";
    args = ["sh" "-c" "/bin/busybox mkdir $out; echo hello > $out/greeting"];
  };
in builtins.derivation {
  name = "app"; system = builtins.currentSystem; builder = "/bin/busybox";
  __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256";
  args = ["sh" "-c" "/bin/busybox mkdir $out; /bin/busybox ln -s ${dep}/greeting $out/link"];
}
"""


@pytest.mark.realtool
def test_name_with_references_equals_nix_content_addressed_output(tmp_path: Path) -> None:
    """A CA derivation's output is a "source" path with references: same rule as ours."""
    nix_build = need("nix-build")
    nix_store = need("nix-store")
    if not Path("/bin/busybox").exists():
        unavailable("needs busybox-static (/bin/busybox) for the builder")
    env = nix_env(tmp_path / "nix")
    (tmp_path / "ca.nix").write_text(CA_DRV)
    out = run(nix_build, "--no-out-link", tmp_path / "ca.nix", env=env).stdout.strip()
    refs = run(nix_store, "-q", "--references", out, env=env).stdout.split()
    assert len(refs) == 1 and refs[0].endswith("-dep")
    copy = tmp_path / "copy"
    run("cp", "-a", out, copy)
    ours = describe(copy, "app", refs, store_dir=env["NIX_STORE_DIR"])
    assert ours.info.path == out
    assert ours.info.references == tuple(refs)
    assert ours.warnings == ()
