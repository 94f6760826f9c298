"""Layers of store paths: one cached tar per path, and groups made by concatenation.

A store path's layer holds the directories of `store_dir` (`nix/`,
`nix/store/` for the default; mode 0755 as dockerTools writes them) and then
the path's tree. Modes inside the path are Nix's canonical ones (0555 for
directories and executables, 0444 for other files): a store path's layer is
a function of its NAR alone, so the same store path gives the same layer
bytes in every image, and the layer action's cache entry is shared.

A grouped layer (the tail of the popularity order) is the concatenation of
the paths' uncompressed cached tars, in order: each tar's end-of-archive
blocks are dropped, directory entries already written (the shared `nix/`,
`nix/store/`) are dropped, and the blocks are digested as they are copied.
Store path files are never read again. Tar format: POSIX pax
(https://pubs.opengroup.org/onlinepubs/9699919799/utilities/pax.html).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import BinaryIO

from strata import written
from strata.errors import UserError
from strata.fsutil import atomic_file
from strata.oci.compress import detect_compressor, open_decompressed
from strata.oci.layer import LayerDescriptor, Ownership, write_layer, write_layer_from_entries
from strata.oci.spancopy import SpanCopier
from strata.oci.tarscan import DIRECTORY, TarFormatError, scan
from strata.oci.tarwriter import BLOCK, TarWriter
from strata.oci.tree import DIR, FILE, SYMLINK, Entry, sort_key
from strata.store.path import DEFAULT_STORE_DIR, parse

PARENT_MODE = 0o755
_COPY = 1 << 20


def store_entries(
    src: str | os.PathLike[str], store_path: str, store_dir: str = DEFAULT_STORE_DIR
) -> list[Entry]:
    """The entries of one store path's layer: store_dir's parents, then the tree at `src`."""
    parse(store_path, store_dir, "store_path")
    parts = store_dir.strip("/").split("/")
    entries = [Entry("/".join(parts[: i + 1]), DIR, PARENT_MODE) for i in range(len(parts))]
    top = store_path.lstrip("/")
    found: list[Entry] = []
    _walk(os.fspath(src), top, found)
    return entries + sorted(found, key=lambda e: sort_key(e.name))


def planned_store_entries(
    planned: Iterable[Entry], store_path: str, store_dir: str = DEFAULT_STORE_DIR
) -> list[Entry]:
    """`store_entries` for content planned from sources (names relative to the path).

    The same entries, in the same order and with the same canonical modes,
    that `store_entries` gives for that content laid out on disk, so a path
    hashed and layered straight from its sources has the same layer bytes.
    A single FILE or BYTES entry named "" is a single-file store path.
    """
    parse(store_path, store_dir, "store_path")
    parts = store_dir.strip("/").split("/")
    entries = [Entry("/".join(parts[: i + 1]), DIR, PARENT_MODE) for i in range(len(parts))]
    top = store_path.lstrip("/")
    found: list[Entry] = []
    single = False
    for e in planned:
        name = f"{top}/{e.name}" if e.name else top
        single = single or not e.name
        if e.kind == DIR:
            found.append(Entry(name, DIR, 0o555))
        elif e.kind == SYMLINK:
            found.append(Entry(name, SYMLINK, 0o777, target=e.target))
        else:
            mode = 0o555 if e.mode & 0o111 else 0o444
            found.append(Entry(name, e.kind, mode, size=e.size, source=e.source, data=e.data))
    if not single:
        found.append(Entry(top, DIR, 0o555))
    return entries + sorted(found, key=lambda e: sort_key(e.name))


def _walk(path: str, name: str, out: list[Entry]) -> None:
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        out.append(Entry(name, DIR, 0o555))
        for child in os.listdir(path):
            _walk(os.path.join(path, child), f"{name}/{child}", out)
    elif stat.S_ISREG(st.st_mode):
        mode = 0o555 if st.st_mode & stat.S_IXUSR else 0o444
        out.append(Entry(name, FILE, mode, size=st.st_size, source=path))
    elif stat.S_ISLNK(st.st_mode):
        out.append(Entry(name, SYMLINK, 0o777, target=os.readlink(path)))
    else:
        raise UserError(
            f"unsupported file type in a store path (got mode {oct(st.st_mode)}); "
            "store paths hold only regular files, symlinks and directories",
            where=path,
        )


def write_store_layer(
    out_path: str | os.PathLike[str],
    src: str | os.PathLike[str],
    store_path: str,
    store_dir: str = DEFAULT_STORE_DIR,
    compressor: str = "none",
    owner: Ownership | None = None,
) -> LayerDescriptor:
    """The cached layer of one store path (uncompressed, it can later be concatenated)."""
    entries = store_entries(src, store_path, store_dir)
    return write_layer_from_entries(out_path, compressor, entries, owner or Ownership())


def kept_spans(
    fd: int, seen_dirs: set[str], where: str, own: tuple[int, int] | None = None
) -> list[tuple[int, int]]:
    """Byte ranges of one tar to copy: every member but directories already written.

    `own` is the range holding the store path's own entries (its listing's span,
    strata.store.listing): only the headers before it are read, the range is kept whole.
    """
    spans: list[tuple[int, int]] = []
    try:
        for h in scan(fd):
            if own is not None and h.start >= own[0]:
                if h.start != own[0] or not _ends_tar(fd, own[1]):
                    raise TarFormatError(f"its listing's span {own} does not fit its headers")
                break
            if h.kind == DIRECTORY:
                key = h.name.rstrip("/")
                if key in seen_dirs:
                    continue
                seen_dirs.add(key)
            if spans and spans[-1][1] == h.start:
                spans[-1] = (spans[-1][0], h.end)
            else:
                spans.append((h.start, h.end))
        else:
            if own is not None:
                raise TarFormatError(f"its listing's span {own} is past its last header")
    except TarFormatError as e:
        raise UserError(
            f"layer to join is not a tar ({e}); rebuild the cached layer", where=where
        ) from None
    if own is not None and own[1] > own[0]:
        if spans and spans[-1][1] == own[0]:
            spans[-1] = (spans[-1][0], own[1])
        else:
            spans.append(own)
    return spans


def _ends_tar(fd: int, end: int) -> bool:
    """Whether the tar at `fd` holds nothing after `end` but its two end blocks, as every
    layer TarWriter closes does: a span ending anywhere else would cut a member or copy
    end blocks into the middle of the group."""
    rest = os.fstat(fd).st_size - end
    return rest == 2 * BLOCK and os.pread(fd, rest, end) == bytes(rest)


def _copy_members(
    fd: int, tar: TarWriter, seen_dirs: set[str], where: str, own: tuple[int, int] | None
) -> None:
    """Copy one tar's members into `tar`, minus end blocks and directories already written."""
    for start, end in kept_spans(fd, seen_dirs, where, own):
        while start < end:
            chunk = os.pread(fd, min(_COPY, end - start), start)
            if not chunk:
                raise UserError("layer to join changed while it was read; rebuild it", where=where)
            tar.add_raw(chunk)
            start += len(chunk)


def concat_layers(
    out_path: str | os.PathLike[str],
    tars: Iterable[str | os.PathLike[str]],
    compressor: str = "none",
    spans: Sequence[tuple[int, int] | None] | None = None,
) -> LayerDescriptor:
    """One layer from cached per-path layers, in order, digested while copied.

    `spans` (one per tar, or None) are the byte ranges holding each store path's own
    entries, from the paths' listings: those headers are not read again."""
    sources = list(tars)
    owns: list[tuple[int, int] | None] = list(spans) if spans is not None else [None] * len(sources)
    if len(owns) != len(sources):
        raise ValueError("concat_layers: one span (or None) per tar")
    if compressor == "none":
        return _concat_uncompressed(out_path, sources, owns)

    def fill(tar: TarWriter) -> None:
        seen: set[str] = set()
        for src, own in zip(sources, owns, strict=True):
            with _plain_tar(src) as (fd, where):
                _copy_members(fd, tar, seen, where, own)

    return write_layer(out_path, compressor, fill)


def _concat_uncompressed(
    out_path: str | os.PathLike[str],
    sources: list[str | os.PathLike[str]],
    owns: list[tuple[int, int] | None],
) -> LayerDescriptor:
    """`concat_layers` for an uncompressed layer: the kernel copies each kept byte range and
    a second thread digests the output as it lands (strata.oci.spancopy)."""
    try:
        with atomic_file(out_path, durable=False) as f:
            with SpanCopier(f.fileno()) as out:
                seen: set[str] = set()
                for src, own in zip(sources, owns, strict=True):
                    with _plain_tar(src) as (fd, where):
                        for start, end in kept_spans(fd, seen, where, own):
                            try:
                                out.copy(fd, start, end)
                            except OSError as e:
                                raise UserError(
                                    f"layer to join cannot be copied ({e.strerror}); rebuild it",
                                    where=where,
                                ) from None
                out.write(bytes(2 * BLOCK))
            digests = out.digests
    except OSError as e:  # the output, not a source (those are reported above)
        raise UserError(
            f"joined layer cannot be written ({e.strerror}); free space or fix permissions",
            where=os.fspath(out_path),
        ) from None
    written.note(out_path, digests.xxh3_hexdigest, digests.hexdigest)
    return LayerDescriptor.from_writers(digests, digests, "none")


def open_layer(src: str | os.PathLike[str]) -> BinaryIO:
    """A cached layer to join, open for reading; a missing one is the user's error."""
    try:
        return open(src, "rb")  # noqa: SIM115 - the caller closes it
    except (FileNotFoundError, NotADirectoryError, PermissionError) as e:
        raise UserError(
            f"layer to join cannot be read (got {e.strerror}); list store path layers that exist",
            where=os.fspath(src),
        ) from None


@contextlib.contextmanager
def _plain_tar(src: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    """A descriptor on `src`'s uncompressed tar (a compressed cached layer, which is rare, is
    decompressed into a temporary file first), and the name to report it by."""
    where = os.fspath(src)
    with open_layer(src) as f:
        if detect_compressor(f.read(4)) == "none":
            yield f.fileno(), where
            return
        with open_decompressed(src) as stream, tempfile.TemporaryFile() as plain:
            shutil.copyfileobj(stream, plain, _COPY)
            plain.flush()
            yield plain.fileno(), where
