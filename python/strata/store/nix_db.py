"""Nix's SQLite database of valid paths, written reproducibly.

What nixpkgs' `buildImageWithNixDb` gets from `nix-store --load-db <
closureInfo/registration`: `/nix/var/nix/db/db.sqlite` with one `ValidPaths`
row per store path and one `Refs` row per reference, plus the `schema` file
(Nix's schema version, 10 since Nix 2.0) and `gcroots/docker/<name>` links so
a garbage collection inside the container keeps the image's contents.

The schema is the one Nix 2.x creates (`src/libstore/schema.sql`, checked
against Debian's nix-bin 2.8 with `sqlite3 db.sqlite .schema`). Rows are what
`nix-store --load-db` writes for a closureInfo registration (checked
row for row against nix-bin 2.8 in tests): `hash` is `sha256:<base16>`;
`deriver`, `ultimate`, `sigs` and `ca` NULL.

Reproducibility: a fresh file, rollback journal (no WAL; Nix switches the
file to WAL itself when it opens it), ids assigned in path order, one fixed
`registrationTime`, then `VACUUM`. SQLite stamps its library version into the
header (bytes 96-99), so the bytes are stable for one pinned Python build,
which both engines share.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterable
from pathlib import Path

from strata.errors import UserError
from strata.store import base32
from strata.store.closure import PathInfo

SCHEMA_VERSION = "10"
DB_DIR = "nix/var/nix/db"
GCROOTS_DIR = "nix/var/nix/gcroots/docker"

SCHEMA = """\
create table if not exists ValidPaths (
    id               integer primary key autoincrement not null,
    path             text unique not null,
    hash             text not null,
    registrationTime integer not null,
    deriver          text,
    narSize          integer,
    ultimate         integer, -- null implies "false"
    sigs             text, -- space-separated
    ca               text -- {ca_comment}
);

create table if not exists Refs (
    referrer  integer not null,
    reference integer not null,
    primary key (referrer, reference),
    foreign key (referrer) references ValidPaths(id) on delete cascade,
    foreign key (reference) references ValidPaths(id) on delete restrict
);

create index if not exists IndexReferrer on Refs(referrer);
create index if not exists IndexReference on Refs(reference);

create trigger if not exists DeleteSelfRefs before delete on ValidPaths
  begin
    delete from Refs where referrer = old.id and reference = old.id;
  end;

create table if not exists DerivationOutputs (
    drv  integer not null,
    id   text not null, -- symbolic output id, usually "out"
    path text not null,
    primary key (drv, id),
    foreign key (drv) references ValidPaths(id) on delete cascade
);

create index if not exists IndexDerivationOutputs on DerivationOutputs(path);
""".replace(
    "{ca_comment}",
    "if not null, an assertion that the path is content-addressed; see ValidPathInfo",
)


def base16_hash(nar_hash: str, where: str) -> str:
    """`sha256:<nix-base32>` (or base16) → `sha256:<base16>`, the form the DB stores."""
    algo, colon, digest = nar_hash.partition(":")
    if colon and algo == "sha256" and len(digest) == 64:
        try:
            return "sha256:" + bytes.fromhex(digest).hex()
        except ValueError:
            pass
    if colon and algo == "sha256" and len(digest) == base32.encoded_length(32):
        try:
            return "sha256:" + base32.decode(digest, 32).hex()
        except ValueError:
            pass
    raise UserError(
        f"not a sha256 NAR hash (got {nar_hash!r}); expect sha256:<nix-base32> or sha256:<hex>",
        where=where,
    )


def check_closed(infos: Iterable[PathInfo], where: str) -> list[PathInfo]:
    """Sorted by path, one per path, every reference present (Nix refuses dangling Refs)."""
    by_path: dict[str, PathInfo] = {}
    for info in infos:
        known = by_path.get(info.path)
        if known is not None and known != info:
            raise UserError(
                f"two different records for one store path (got {info.path}); "
                "build every path once",
                where=where,
            )
        by_path[info.path] = info
    for info in by_path.values():
        for ref in info.references:
            if ref not in by_path:
                raise UserError(
                    f"{info.path} references a path that is not in the database (got {ref}); "
                    "register the whole closure",
                    where=where,
                )
    return [by_path[p] for p in sorted(by_path)]


def write_db(
    path: str | os.PathLike[str],
    infos: Iterable[PathInfo],
    registration_time: int,
    where: str = "nix db",
) -> None:
    """Write a fresh `db.sqlite` at `path` registering `infos` (a closed set)."""
    rows = check_closed(infos, where)
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".nixdb-", dir=target.parent)
    os.close(fd)
    os.unlink(tmp)  # sqlite must create the file itself to pick its own header
    try:
        con = sqlite3.connect(tmp, isolation_level=None)
        try:
            con.execute("pragma journal_mode = delete")
            con.execute("pragma page_size = 4096")
            con.executescript(SCHEMA)
            ids: dict[str, int] = {}
            con.execute("begin")
            for i, info in enumerate(rows, start=1):
                ids[info.path] = i
                con.execute(
                    "insert into ValidPaths (id, path, hash, registrationTime, deriver, narSize,"
                    " ultimate, sigs, ca) values (?, ?, ?, ?, NULL, ?, NULL, NULL, NULL)",
                    (
                        i,
                        info.path,
                        base16_hash(info.nar_hash, info.path),
                        registration_time,
                        info.nar_size,
                    ),
                )
            for info in rows:
                for ref in info.references:
                    con.execute(
                        "insert into Refs (referrer, reference) values (?, ?)",
                        (ids[info.path], ids[ref]),
                    )
            con.execute("commit")
            con.execute("vacuum")
        finally:
            con.close()
        for leftover in (tmp + "-journal", tmp + "-wal", tmp + "-shm"):
            if os.path.exists(leftover):
                raise UserError(
                    f"sqlite left {leftover} behind (got a journal after close); "
                    "this is a bug in strata, please report it",
                    where=where,
                )
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_db(path: str | os.PathLike[str]) -> list[tuple[str, str, int, tuple[str, ...]]]:
    """(path, hash, narSize, references) per valid path, sorted: for tests and `strata` users."""
    con = sqlite3.connect(f"file:{os.fspath(path)}?mode=ro", uri=True)
    try:
        names = dict(con.execute("select id, path from ValidPaths"))
        refs: dict[int, list[str]] = {}
        for referrer, reference in con.execute("select referrer, reference from Refs"):
            refs.setdefault(referrer, []).append(names[reference])
        out = [
            (p, h, size, tuple(sorted(refs.get(i, []))))
            for i, p, h, size in con.execute("select id, path, hash, narSize from ValidPaths")
        ]
    finally:
        con.close()
    return sorted(out)
