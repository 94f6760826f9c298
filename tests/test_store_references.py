"""Reference scanning and checking, as Nix scans build outputs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from strata.errors import UserError
from strata.store import nar
from strata.store.path import source_path
from strata.store.references import ReferenceScanner, describe, scan


def fake(name: str, store_dir: str = "/nix/store") -> str:
    return str(source_path(hashlib.sha256(name.encode()).digest(), name, store_dir=store_dir))


LIBC, BASH, UNUSED = fake("libc"), fake("bash"), fake("unused")


def test_scan_finds_mentions_in_contents_names_and_symlinks(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "script").write_text(f"#!{BASH}/bin/bash\n")
    (d / "lib").symlink_to(f"{LIBC}/lib")
    (d / "other").write_text("no store paths here")
    assert scan(d, [LIBC, BASH, UNUSED]) == {LIBC, BASH}
    (d / "script").unlink()
    (d / BASH.rsplit("/", 1)[1]).write_text("named after it")
    assert scan(d, [LIBC, BASH, UNUSED]) == {LIBC, BASH}


def test_scanner_sees_a_hash_split_across_chunks() -> None:
    h = LIBC.split("/")[-1][:32]
    for cut in range(1, 32):
        s = ReferenceScanner([h])
        s(b"xx/" + h[:cut].encode())
        s(h[cut:].encode() + b"-libc")
        assert s.found == {h}, cut
    s = ReferenceScanner([h])
    s(h[:31].encode())
    s(b"-")
    assert s.found == set()


def test_hash_inside_a_longer_base32_run_is_found() -> None:
    h = BASH.split("/")[-1][:32]
    s = ReferenceScanner([h])
    s(b"0000" + h.encode() + b"zzzz")
    assert s.found == {h}


def test_describe_warns_about_unused_and_fails_on_undeclared(tmp_path: Path) -> None:
    d = tmp_path / "app"
    d.mkdir()
    (d / "run").write_text(f"exec {BASH}/bin/bash\n")
    ok = describe(d, "app", [BASH, UNUSED])
    assert ok.info.references == tuple(sorted([BASH, UNUSED]))
    assert ok.info.nar_hash == nar.digest(d).nix_hash
    assert ok.warnings == (
        f"{ok.info.path} declares reference {UNUSED} but never mentions it; "
        "drop it from the references unless it must be kept alive",
    )
    with pytest.raises(UserError) as e:
        describe(d, "app", [], candidates=[BASH, LIBC], where="//pkg:app")
    expected_path = str(source_path(nar.digest(d).sha256, "app"))
    assert str(e.value) == (
        f"//pkg:app: {expected_path} mentions store path {BASH} but does not declare it "
        "as a reference (got references []); add it to the references"
    )


def test_custom_store_dir(tmp_path: Path) -> None:
    dep = fake("dep", "/gnu/store")
    f = tmp_path / "f"
    f.write_text(dep)
    got = describe(f, "f", [dep], store_dir="/gnu/store")
    assert got.info.path.startswith("/gnu/store/")
    assert got.warnings == ()
    with pytest.raises(UserError, match="not a path directly inside store directory"):
        describe(f, "f", [dep])
