"""Reference scanning and checking, as Nix scans build outputs."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from strata.errors import UserError
from strata.store import base32, nar, references
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


def _stream(rng: random.Random, hashes: list[bytes]) -> bytes:
    """Bytes where hash parts hide: inside long base32 runs, cut short, at run edges."""
    alphabet = base32.ALPHABET.encode()
    parts = []
    for _ in range(rng.randint(1, 60)):
        roll = rng.random()
        if roll < 0.25:
            parts.append(rng.randbytes(rng.randint(0, 300)))
        elif roll < 0.5:
            n = rng.choice([1, 31, 32, 33, 64, 500, 3000])
            parts.append(bytes(rng.choice(alphabet) for _ in range(n)))
        elif roll < 0.8:
            h = rng.choice(hashes)
            parts.append(h if rng.random() < 0.6 else h[: rng.randint(1, 31)])
        else:
            parts.append(rng.choice([b"/nix/store/", b"-", b"\n", b" ", b"e", b"E"]))
    return b"".join(parts)


def _chunks(rng: random.Random, data: bytes) -> list[bytes]:
    out = []
    i = 0
    while i < len(data):
        n = rng.choice([1, 2, 7, 30, 31, 32, 33, 100, 1000, 5000])
        out.append(data[i : i + n])
        i += n
    return out


@pytest.mark.parametrize("batch", [64, references._BATCH])
@pytest.mark.parametrize("seed", range(30))
def test_scanner_finds_exactly_the_hashes_in_the_stream(
    seed: int, batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nix's rule, spelled out: a candidate is found iff its 32 characters occur anywhere in
    the concatenated stream. Few candidates and many, chunks of every size around 32 and
    around the batch size, hashes inside long runs and across chunk boundaries."""
    monkeypatch.setattr(references, "_BATCH", batch)
    rng = random.Random(seed)
    alphabet = base32.ALPHABET
    pool = ["".join(rng.choice(alphabet) for _ in range(32)) for _ in range(40)]
    for count in (1, 3, 5, 40):
        candidates = rng.sample(pool, count)
        data = _stream(rng, [h.encode() for h in rng.sample(pool, min(count + 2, 40))])
        s = ReferenceScanner(candidates)
        for chunk in _chunks(rng, data):
            s(chunk)
        assert s.found == {h for h in candidates if h.encode() in data}, (seed, count)


@pytest.mark.parametrize("batch", [4096, references._BATCH])
@pytest.mark.parametrize("seed", range(6))
def test_scanner_on_dense_lists_of_store_paths(
    seed: int, batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs every 50 bytes (a closure listing): the scanner searches the rest of a chunk for
    each candidate instead of visiting runs; what it finds must not change."""
    monkeypatch.setattr(references, "_BATCH", batch)
    rng = random.Random(seed)
    alphabet = base32.ALPHABET
    pool = ["".join(rng.choice(alphabet) for _ in range(32)) for _ in range(200)]
    candidates = rng.sample(pool, rng.choice([8, 60, 200]))
    lines = [
        f"/nix/store/{rng.choice(pool) if rng.random() < 0.01 else rng.choice(pool)[::-1]}-x\n"
        for _ in range(8000)
    ]
    data = "".join(lines).encode()
    s = ReferenceScanner(candidates)
    for chunk in _chunks(rng, data):
        s(chunk)
    expected = {h for h in candidates if h.encode() in data}
    assert s.found == expected
    assert 0 < len(expected) < len(candidates)


def test_describe_warns_about_unused_and_fails_on_undeclared(tmp_path: Path) -> None:
    d = tmp_path / "app"
    d.mkdir()
    (d / "run").write_text(f"exec {BASH}/bin/bash\n")
    ok = describe(d, "app", [BASH, UNUSED])
    assert ok.info.references == tuple(sorted([BASH, UNUSED]))
    assert ok.info.nar_hash == nar.digest(d).nix_hash
    assert ok.warnings == (
        f"{ok.info.path} declares a reference it never mentions (got {UNUSED}); "
        "drop it from the references unless it must be kept alive",
    )
    with pytest.raises(UserError) as e:
        describe(d, "app", [], candidates=[BASH, LIBC], where="//pkg:app")
    expected_path = str(source_path(nar.digest(d).sha256, "app"))
    assert str(e.value) == (
        f"//pkg:app: {expected_path} mentions store path {BASH} but does not declare it "
        "as a reference (got references []); add it to the references"
    )


def test_unused_references_are_one_warning_however_many(tmp_path: Path) -> None:
    """A leaf of a large closure may declare hundreds: one line names the first few."""
    d = tmp_path / "app"
    d.mkdir()
    (d / "run").write_text(f"exec {BASH}/bin/bash\n")
    unused = sorted(fake(f"lib{i}") for i in range(5))
    two = describe(d, "app", [BASH, *unused[:2]])
    assert two.warnings == (
        f"{two.info.path} declares 2 references it never mentions (got {unused[0]}, "
        f"{unused[1]}); drop them from the references unless they must be kept alive",
    )
    five = describe(d, "app", [BASH, *unused])
    assert five.warnings == (
        f"{five.info.path} declares 5 references it never mentions (got {unused[0]}, "
        f"{unused[1]}, {unused[2]} and 2 more); drop them from the references unless they "
        "must be kept alive",
    )
    assert describe(d, "app", [BASH]).warnings == ()


def test_custom_store_dir(tmp_path: Path) -> None:
    dep = fake("dep", "/gnu/store")
    f = tmp_path / "f"
    f.write_text(dep)
    got = describe(f, "f", [dep], store_dir="/gnu/store")
    assert got.info.path.startswith("/gnu/store/")
    assert got.warnings == ()
    with pytest.raises(UserError, match="not a path directly inside store directory"):
        describe(f, "f", [dep])
