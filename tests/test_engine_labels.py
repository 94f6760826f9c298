from __future__ import annotations

import pytest

from strata.engine.loading.labels import Label, TargetPattern
from strata.errors import UserError


@pytest.mark.parametrize(
    ("text", "repo", "package", "want"),
    [
        ("//pkg:name", "", "x", "//pkg:name"),
        ("//pkg", "", "x", "//pkg:pkg"),
        ("//a/b", "", "", "//a/b:b"),
        (":name", "", "here", "//here:name"),
        ("name.txt", "", "here", "//here:name.txt"),
        ("@repo//pkg:name", "", "x", "@repo//pkg:name"),
        ("//pkg:name", "other", "x", "@other//pkg:name"),
        (":n", "other", "p", "@other//p:n"),
        ("@repo", "", "", "@repo//:repo"),
        ("@__main__//p:n", "other", "", "//p:n"),
        ("//:top", "", "x", "//:top"),
    ],
)
def test_parse(text: str, repo: str, package: str, want: str) -> None:
    assert str(Label.parse(text, repo=repo, package=package)) == want


@pytest.mark.parametrize("text", ["", "//pkg/:x", "//a//b:c", "//pkg:../x", "//../p:x", "/abs"])
def test_invalid(text: str) -> None:
    with pytest.raises(UserError, match="invalid"):
        Label.parse(text)


def test_patterns() -> None:
    assert TargetPattern.parse("//pkg/...") == TargetPattern("", "pkg", None, recursive=True)
    assert TargetPattern.parse("//...") == TargetPattern("", "", None, recursive=True)
    assert TargetPattern.parse("//pkg:all") == TargetPattern("", "pkg", None)
    assert TargetPattern.parse("//pkg:*") == TargetPattern("", "pkg", None)
    assert TargetPattern.parse(":x", cwd_package="a/b") == TargetPattern("", "a/b", "x")
    assert TargetPattern.parse("sub:x", cwd_package="a") == TargetPattern("", "a/sub", "x")
    assert TargetPattern.parse("@r//p:n") == TargetPattern("r", "p", "n")
    assert TargetPattern.parse("//pkg") == TargetPattern("", "pkg", "pkg")
