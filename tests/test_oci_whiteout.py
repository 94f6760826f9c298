"""strata.oci.whiteout: naming and recognising whiteouts, for export_image and run_as_root."""

from __future__ import annotations

import pytest

from strata.oci.whiteout import Whiteout, parse, whiteout_name


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        ("etc/.wh.motd", Whiteout("etc", "motd")),
        (".wh.etc", Whiteout("", "etc")),
        ("a/b/.wh..wh..opq", Whiteout("a/b", "", opaque=True)),
        (".wh..wh..opq", Whiteout("", "", opaque=True)),
        ("a/.wh.", Whiteout("a", "")),
        ("a/.wh..x", Whiteout("a", ".x")),
        ("etc/motd", None),
        ("etc/x.wh.y", None),
        (".wh.d/file", None),  # only the last component can be a whiteout
    ],
)
def test_parse(member: str, expected: Whiteout | None) -> None:
    assert parse(member) == expected


def test_deletes_nothing_only_for_the_bare_prefix() -> None:
    assert parse("a/.wh.") == Whiteout("a", "") and Whiteout("a", "").deletes_nothing
    assert not Whiteout("a", "", opaque=True).deletes_nothing
    assert not Whiteout("a", "b").deletes_nothing


@pytest.mark.parametrize("path", ["etc/motd", "x", "a/b/.hidden"])
def test_whiteout_name_round_trips(path: str) -> None:
    name = whiteout_name(path)
    wh = parse(name)
    assert wh is not None and not wh.opaque
    assert (f"{wh.parent}/{wh.name}" if wh.parent else wh.name) == path
