"""The repository stands on its own: what it says points only inside it.

Docs, tests, rules and tools must not send a reader to files on one
machine (`/work/...`, a sibling `../shared` checkout), to notes that are not
committed (a style guide or tool recipes kept elsewhere), or to an issue
number of a tracker the repository does not hold: each says what it means
instead. And every repository path the docs name exists, so a renamed file
cannot leave a stale reference behind.
"""

from __future__ import annotations

import glob
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_OUTSIDE = re.compile(
    "|".join(
        [
            r"/work/",  # this machine's checkouts and notes
            r"\.\./shared\b",
            r"\bSTYLE\.md\b",
            r"\bREAL_TOOLS\.md\b",
            r"\bSTARLARK_NOTES\.md\b",
            r"\bnotes/common\b",
            r"\bissues? #?\d+\b",  # a tracker the repository does not hold
        ]
    ),
    re.I,
)
_TEXT = (".md", ".py", ".bzl", ".txt", ".toml", ".sh", ".in", ".json", ".yaml", ".yml", ".cfg")

# A path under one of the repository's top-level directories, as docs write them (an
# image reference such as `examples/hello/hello:latest` is not one).
_REPO_PATH = re.compile(
    r"(?<![\w./@:-])((?:rules|python|tests|tools|examples|docs)/[\w./*{},+-]*[\w*}])"
    r"(?![\w./*{},+:-])"
)


def _tracked() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    return [ROOT / p for p in out.decode().split("\0") if p]


def _is_text(path: Path) -> bool:
    if path.suffix in _TEXT or path.name in ("BUILD", "WORKSPACE", ".bazelrc"):
        return True
    # Scripts without a suffix (tools/strata, tools/test, ...).
    head = path.read_bytes()[:2] if path.is_file() else b""
    return head == b"#!"


def test_nothing_points_outside_the_repository() -> None:
    found = []
    for path in _tracked():
        # This file names the patterns it looks for.
        if not path.is_file() or not _is_text(path) or path == Path(__file__).resolve():
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            m = _OUTSIDE.search(line)
            if m:
                found.append(f"{path.relative_to(ROOT)}:{n}: {m.group(0)!r} in {line.strip()!r}")
    assert not found, (
        "references to things outside the repository (say what they mean instead):\n"
        + "\n".join(found)
    )


def _expand(pattern: str) -> list[str]:
    """`a/{b,c}.py` -> `a/b.py`, `a/c.py` (one level, as the docs write them)."""
    m = re.search(r"\{([^{}]*)\}", pattern)
    if not m:
        return [pattern]
    return [
        x
        for alt in m.group(1).split(",")
        for x in _expand(pattern[: m.start()] + alt + pattern[m.end() :])
    ]


def test_every_repository_path_the_docs_name_exists() -> None:
    docs = [p for p in _tracked() if p.suffix == ".md"]
    assert ROOT / "README.md" in docs and ROOT / "DESIGN.md" in docs
    missing = []
    for doc in docs:
        for n, line in enumerate(doc.read_text().splitlines(), 1):
            for m in _REPO_PATH.finditer(line):
                text = m.group(1).split("::")[0].rstrip(".")
                if not any(glob.glob(str(ROOT / p)) for p in _expand(text)):
                    missing.append(f"{doc.relative_to(ROOT)}:{n}: {text}")
    assert not missing, "the docs name files the repository does not have:\n" + "\n".join(missing)


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    """Both patterns match the references this test was written for."""
    outside = [
        "see /work/shared/STYLE.md",
        "as in ../shared/REAL_TOOLS.md",
        "Issue 7 on the examples",
        "the house rules in STYLE.md",
    ]
    assert all(_OUTSIDE.search(s) for s in outside)
    assert not _OUTSIDE.search("https://github.com/bazelbuild/bazel/issues/1234")
    paths = [m.group(1) for m in _REPO_PATH.finditer("names `tools/bench_engine_gen.py`.")]
    assert paths == ["tools/bench_engine_gen.py"]
    assert not glob.glob(str(ROOT / paths[0]))
    # Labels and output paths are not repository paths.
    labels = "@strata//rules:defs.bzl //examples/... strata-bin/x examples/hello/hello:latest"
    assert not list(_REPO_PATH.finditer(labels))
