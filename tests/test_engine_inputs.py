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


def _link_to_fifo(path: Path) -> None:
    _fifo(path.parent / "f")
    path.symlink_to("f")


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
    "link to a FIFO as a source": (_link_to_fifo, "a FIFO", "p/in"),
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
            ws,
            "build",
            f"--output_base={tmp_path / 'ob'}",
            f"--disk_cache={cache}",
            *flags,
            "//p:t",
        )
        line = assert_one_error(got, rf"^error: //p:t: Action {expected}")
        assert "a tree artifact holds only regular files" in line or "UTF-8" in line
        assert files_under(tmp_path / "ob" / "execroot" / "w" / "bazel-out") == []
        assert files_under(cache / "ac") == []


# -- BUILD, .bzl and WORKSPACE files a parser must not crash on --------------------------

DEEP = 200_000
RULE_BZL = (
    'def noop(name):\n    native.genrule(name = name, outs = [name + ".o"], cmd = "echo > $@")\n'
)
LOAD_NOOP = 'load("//defs:r.bzl", "noop")\n'

LOADING_CASES: dict[str, tuple[dict[str, str | bytes], str]] = {
    # name: (files, expected error line)
    "BUILD file that is not UTF-8": (
        {"p/BUILD": b'genrule(name = "g", outs = ["o"],\n    cmd = "echo \xff > $@")\n'},
        r"^error: p/BUILD:2:17: file is not valid UTF-8 \(got byte 0xff\); save it as UTF-8$",
    ),
    ".bzl file that is not UTF-8": (
        {"defs/r.bzl": b"# caf\xe9\n" + RULE_BZL.encode(), "p/BUILD": LOAD_NOOP},
        # the load() that read it, then the byte's own place
        r"^error: p/BUILD:1:1: defs/r.bzl:1:6: file is not valid UTF-8 \(got byte 0xe9\); "
        r"save it as UTF-8$",
    ),
    "WORKSPACE that is not UTF-8": (
        {"WORKSPACE": b'workspace(name = "w\xc3")\n', "p/BUILD": ""},
        r"^error: WORKSPACE:1:20: file is not valid UTF-8 \(got byte 0xc3\); save it as UTF-8$",
    ),
    "200,000-deep nested list in a BUILD file": (
        {"p/BUILD": "x = " + "[" * DEEP + "]" * DEEP + "\n"},
        r"^error: p/BUILD:1:1005: expression nested too deeply \(got more than 1000 levels "
        r"of brackets and chained operators\); split it using variables$",
    ),
    "200,000-deep nested dict in a BUILD file": (
        {"p/BUILD": "x = " + "{1: " * DEEP + "1" + "}" * DEEP + "\n"},
        r"^error: p/BUILD:1:\d+: expression nested too deeply",
    ),
    "200,000 chained additions in a .bzl file": (
        {"defs/r.bzl": RULE_BZL + "x = 1" + " + 1" * DEEP + "\n", "p/BUILD": LOAD_NOOP},
        r"^error: p/BUILD:1:1: defs/r.bzl:3:2005: expression nested too deeply",
    ),
    "200,000 unary minus in a BUILD file": (
        {"p/BUILD": "x = " + "-" * DEEP + "1\n"},
        r"^error: p/BUILD:1:1005: expression nested too deeply",
    ),
}


@pytest.mark.parametrize("case", sorted(LOADING_CASES))
def test_a_source_file_the_parser_cannot_take_is_one_error(tmp_path: Path, case: str) -> None:
    files, expected = LOADING_CASES[case]
    ws = workspace(tmp_path / "ws", {"defs/BUILD": "", "defs/r.bzl": RULE_BZL, **files})
    got = strata(ws, "build", f"--output_base={tmp_path / 'ob'}", "//p:all")
    assert_one_error(got, expected)  # not a traceback, not a SIGSEGV (exit -11)


def test_nesting_just_below_the_bound_still_builds(tmp_path: Path) -> None:
    deep = 990
    ws = workspace(
        tmp_path / "ws",
        {
            "p/BUILD": "x = " + "[" * deep + "]" * deep + "\n"
            "y = 1" + " + 1" * (deep // 2) + "\n"
            'genrule(name = "g", outs = ["o"], cmd = "echo %d > $@" % y)\n',
        },
    )
    got = strata(ws, "build", f"--output_base={tmp_path / 'ob'}", "//p:g")
    assert got.code == 0, got.err
    assert (ws / "strata-bin" / "p" / "o").read_text() == f"{deep // 2 + 1}\n"


# -- names and command lines the system cannot take -------------------------------------

LONG_NAME = "n" * 300
LONG_PATH = "/".join(["d" * 200] * 25)  # 5,024 characters

NAME_CASES: dict[str, tuple[str, str]] = {
    # name: (BUILD of //p:g, expected error line)
    "source named with 300 characters": (
        f'genrule(name = "g", srcs = ["{LONG_NAME}"], outs = ["o"], cmd = "cat $< > $@")\n',
        r"^error: //p:g: Genrule cannot read a source file \(got p/n{100,}\.\.\.\[\d+ characters"
        r"\]\.\.\.n+: File name too long\); make it a readable file with a shorter path$",
    ),
    "source at a 5,000-character path": (
        f'genrule(name = "g", srcs = ["{LONG_PATH}"], outs = ["o"], cmd = "cat $< > $@")\n',
        r"^error: //p:g: Genrule cannot read a source file \(got p/d+\.\.\.\[\d+ characters\]"
        r"\.\.\.d+: File name too long\)",
    ),
    "output named with 300 characters": (
        f'genrule(name = "g", outs = ["{LONG_NAME}"], cmd = "echo > $@")\n',
        r"^error: //p:g: Genrule failed with exit status 1 \(got command: .*\); see the action's "
        r"output below$",
    ),
    "output at a 5,000-character path": (
        f'genrule(name = "g", outs = ["{LONG_PATH}"], cmd = "echo > $@")\n',
        r"^error: //p:g: File name too long \(got /\S+\.\.\.\[\d+ characters\]\.\.\.d+\); "
        r"shorten it: a file name holds at most 255 bytes, a path 4,095$",
    ),
    "8 MB command line (E2BIG)": (
        'genrule(name = "g", outs = ["o"], cmd = "echo " + "x" * 8000000 + " > $@")\n',
        r"^error: //p:g: Genrule could not start \(got Argument list too long: /bin/bash -c "
        r"'set -euo pipefail; echo x+\.\.\.\[\d+ characters\]\.\.\.x+ > bazel-out/\S+/p/o'\); "
        r"the kernel takes at most 128 KiB an argument and about 2 MiB in all \(this one is "
        r"\d+ bytes\): pass long lists in a file, e.g. args.use_param_file\(\)$",
    ),
}


@pytest.mark.parametrize("case", sorted(NAME_CASES))
def test_a_name_or_command_line_too_long_for_the_system_is_one_error(
    tmp_path: Path, case: str
) -> None:
    build, expected = NAME_CASES[case]
    ws = workspace(tmp_path / "ws", {"p/BUILD": build})
    got = strata(ws, "build", f"--output_base={tmp_path / 'ob'}", "//p:g")
    assert_one_error(got, expected)
    assert len(got.err) < 8000  # nothing echoes the 8 MB command line or 5,000-character path
    assert files_under(tmp_path / "ob" / "execroot" / "w" / "bazel-out") == []
    assert list((tmp_path / "ob" / "sandbox").glob("*")) == []  # no sandbox left half-made
