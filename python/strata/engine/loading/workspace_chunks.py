"""Splitting a WORKSPACE file where a `load` follows other code.

Bazel evaluates a WORKSPACE file in chunks, each starting at such a `load`, so
a later chunk may load from a repository an earlier one declared.
"""

from __future__ import annotations

import itertools


def split_workspace(source: str) -> list[str]:
    """Chunks of `source`, each starting at a `load` that follows other code.

    Each chunk is padded with blank lines so Starlark's line numbers stay those
    of the file.
    """
    lines = source.splitlines(keepends=True)
    starts: list[int] = [0]
    depth = 0
    seen_code = False
    in_load = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if depth == 0 and not in_load:
            if line.startswith("load(") or line.startswith("load ("):
                if seen_code and starts[-1] != i:
                    starts.append(i)
                    seen_code = False
                in_load = True
            elif stripped and not stripped.startswith("#"):
                seen_code = True
        depth += _paren_delta(line)
        if depth <= 0:
            depth = 0
            in_load = False
    starts.append(len(lines))
    return [
        "\n" * begin + "".join(lines[begin:end])
        for begin, end in itertools.pairwise(starts)
        if begin < end
    ]


def _paren_delta(line: str) -> int:
    """Net open brackets on a line, ignoring strings and comments (good enough for loads)."""
    delta = 0
    quote = ""
    for ch in line:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        elif ch in "([{":
            delta += 1
        elif ch in ")]}":
            delta -= 1
    return delta
