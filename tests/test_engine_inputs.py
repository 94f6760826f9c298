"""What the engine reads and collects: only regular files, directories and links.

A FIFO or an endless device given as a source, or left in a tree output,
used to hang the build (or, for a device, be cached as an empty file); a
socket source was reported as missing; a non-UTF-8 name or a socket in a tree
output crashed it. Each case is a small workspace built by `strata build` as
its own process: it must end with one error line naming the target and the
path, exit 1, and leave none of the requested outputs behind.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from casekit import assert_one_error, files_under, strata, workspace

TREE_RULE = """
def _tree_impl(ctx):
    out = ctx.actions.declare_directory(ctx.label.name)
    ctx.actions.run_shell(outputs = [out], command = "cd %s && %s" % (out.path, ctx.attr.cmd))
    return [DefaultInfo(files = depset([out]))]

tree = rule(implementation = _tree_impl, attrs = {"cmd": attr.string()})
"""


def _socket(path: Path) -> None:
    """A listening-socket file at `path` (bound relative to its directory: sun_path is short)."""
    cwd = os.getcwd()
    os.chdir(path.parent)
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(path.name)
    finally:
        os.chdir(cwd)


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _link_to(target: str) -> Callable[[Path], None]:
    return lambda path: path.symlink_to(target)


def _in_dir(make: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(path: Path) -> None:
        path.mkdir()
        (path / "ok.txt").write_text("ok\n")
        make(path / "bad")

    return setup


SOURCE_CASES: dict[str, tuple[Callable[[Path], None], str, str]] = {
    # name: (make p/in, what the error calls it, the path it names)
    "FIFO source": (_fifo, "a FIFO", "p/in"),
    "socket source": (_socket, "a socket", "p/in"),
    "/dev/zero as a source": (_link_to("/dev/zero"), "a character device", "p/in"),
    "link to a FIFO as a source": (
        lambda p: (_fifo(p.parent / "f"), p.symlink_to("f")) and None,
        "a FIFO",
        "p/in",
    ),
    "FIFO in a source directory": (_in_dir(_fifo), "a FIFO", "p/in/bad"),
    "socket in a source directory": (_in_dir(_socket), "a socket", "p/in/bad"),
}


@pytest.mark.parametrize("case", sorted(SOURCE_CASES))
def test_a_source_that_is_not_a_file_is_one_error(tmp_path: Path, case: str) -> None:
    make, kind, named = SOURCE_CASES[case]
    ws = workspace(
        tmp_path / "ws",
        {"p/BUILD": 'genrule(name = "g", srcs = ["in"], outs = ["o"], cmd = "cat $(SRCS) > $@")\n'},
    )
    make(ws / "p" / "in")
    got = strata(ws, "build", f"--output_base={tmp_path / 'ob'}", "//p:g")
    assert_one_error(
        got,
        rf"^error: //p:g: Genrule has a source that is {kind}, not a regular file "
        rf"\(got {named}\); only regular files, directories and symlinks to them are read",
    )
    assert "does not exist" not in got.err
    assert files_under(tmp_path / "ob" / "execroot" / "w" / "bazel-out") == []


TREE_CASES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # name: (command run in the tree, expected error after the label, extra flags)
    "FIFO in a tree output": ("mkfifo f && echo x > ok", r"wrote a FIFO in tree artifact", ()),
    "socket in a tree output": (
        "python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind(\"s\")'",
        r"wrote a socket in tree artifact",
        (),
    ),
    "device node in a tree output": (
        "mknod d c 1 3",
        r"wrote a character device in tree artifact",
        ("--sandbox=directory",),  # the namespace sandbox drops CAP_MKNOD
    ),
    "non-UTF-8 name in a tree output": (
        "echo x > \"$(printf 'a\\377b')\"",
        r"wrote a file name that is not UTF-8 in tree artifact \S+/p/t \(got b'a\\xffb'\)",
        (),
    ),
}


@pytest.mark.parametrize("case", sorted(TREE_CASES))
def test_a_tree_output_holding_what_no_tree_may_is_one_error(tmp_path: Path, case: str) -> None:
    cmd, expected, flags = TREE_CASES[case]
    if "mknod" in cmd and os.geteuid() != 0:
        pytest.skip("mknod needs root")
    ws = workspace(
        tmp_path / "ws",
        {
            "defs/BUILD": "",
            "defs/tree.bzl": TREE_RULE,
            "p/BUILD": f'load("//defs:tree.bzl", "tree")\ntree(name = "t", cmd = {cmd!r})\n',
        },
    )
    cache = tmp_path / "cache"
    for _ in range(2):  # a device node was cached as an empty file: the second build passed
        got = strata(
            ws, "build", f"--output_base={tmp_path / 'ob'}", f"--disk_cache={cache}", *flags, "//p:t"
        )
        line = assert_one_error(got, rf"^error: //p:t: Action {expected}")
        assert "a tree artifact holds only regular files" in line or "UTF-8" in line
        assert files_under(tmp_path / "ob" / "execroot" / "w" / "bazel-out") == []
        assert files_under(cache / "ac") == []
