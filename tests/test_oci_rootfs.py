"""strata.oci.rootfs: paths resolved as inside a chroot, and acted on without following links."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from strata.errors import UserError
from strata.oci.rootfs import ReadLink, Rootfs, resolve


def links(table: dict[str, str]) -> ReadLink:
    return lambda parts: table.get("/".join(parts))


@pytest.mark.parametrize(
    ("name", "table", "follow_last", "expected"),
    [
        ("x/etc/passwd", {"x": "/"}, False, ("etc", "passwd")),
        ("y/etc", {"y": "../../../.."}, False, ("etc",)),
        ("a/etc", {"a": "/b/c", "b": "/", "c": "/"}, False, ("etc",)),
        ("l1/etc", {"l1": "l2", "l2": "/l3", "l3": ".."}, False, ("etc",)),
        ("usr/lib/x", {"usr/lib": "../lib64"}, False, ("lib64", "x")),
        ("lib", {"lib": "usr/lib"}, False, ("lib",)),  # the last one is not followed ...
        ("lib", {"lib": "usr/lib"}, True, ("usr", "lib")),  # ... unless asked
        ("x", {"x": "/"}, True, ()),  # the root itself
        ("a/../../b", {}, False, ("b",)),  # `..` stops at the root
    ],
)
def test_resolve_as_a_chroot(
    name: str, table: dict[str, str], follow_last: bool, expected: tuple[str, ...]
) -> None:
    assert resolve(name, links(table), follow_last=follow_last, where="t") == expected


def test_symlink_loop_is_a_user_error() -> None:
    with pytest.raises(UserError) as e:
        resolve("a/x", links({"a": "b", "b": "a"}), where="layer 0")
    assert str(e.value) == (
        "layer 0: more than 40 symlinks resolving a path (got 'a/x'); "
        "the image has a symlink loop: fix or rebuild it"
    )


def test_rootfs_never_leaves_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    fs = Rootfs(root, "t")
    fs.symlink("x", "/")
    fs.symlink("y", str(outside))
    fs.write(f"x/{outside}/f", b"data", 0o600, (1, 2))
    fs.mkdir("x/d/e", 0o700)
    fs.symlink("y/link", "target")
    fs.hardlink("x/hl", f"x/{outside}/f")
    assert os.listdir(outside) == []
    inner = root / str(outside).lstrip("/")
    assert (inner / "f").read_bytes() == b"data" and (root / "hl").stat().st_nlink == 2
    assert (inner / "f").stat().st_uid == 1 and (inner / "f").stat().st_mode & 0o777 == 0o600
    assert (root / "d" / "e").is_dir() and os.readlink(inner / "link") == "target"
    fs.remove("y/link")
    fs.clear(f"x/{outside}")
    assert os.listdir(inner) == [] and os.listdir(outside) == []
    assert fs.lstat("y") is not None and fs.lstat("nothing/here") is None


def test_entry_below_a_file_and_missing_hard_link_target(tmp_path: Path) -> None:
    fs = Rootfs(tmp_path, "layer 1")
    fs.write("f", b"", 0o644)
    fs.symlink("x", "f")
    with pytest.raises(UserError) as e:
        fs.write("x/under", b"", 0o644)
    assert str(e.value) == (
        "layer 1: f is not a directory, so the layer entry cannot go below it (got 'x/under'); "
        "the image is malformed: rebuild it"
    )
    with pytest.raises(UserError, match=r"hard link 'h' points at a missing file \(got 'x/f'\)"):
        fs.hardlink("h", "x/f")
