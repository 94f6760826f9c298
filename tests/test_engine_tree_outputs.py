"""Outputs as Bazel 4.2.3 leaves them: mode 0555, and symlinks inside tree artifacts kept.

Checked against real Bazel: every output file and tree directory is r-xr-xr-x
whatever the action wrote; a relative or absolute symlink inside a tree that
resolves is kept as a link; a dangling one, or a relative one leaving the
tree, fails the action.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from enginekit import BIN, Engine, sh
from strata.engine.action import Action
from strata.errors import UserError

TREE = f"{BIN}/pkg/tree"


@pytest.fixture
def eng(tmp_path: Path) -> Engine:
    ws = tmp_path / "ws"
    (ws / "pkg").mkdir(parents=True)
    (ws / "WORKSPACE").write_text("")
    return Engine(ws, tmp_path / "ob", disk_cache=tmp_path / "cache")


def _tree_action(script: str) -> Action:
    return sh("//pkg:t", f"cd {TREE} && {script}", [], [], output_dirs=(TREE,))


def test_outputs_are_read_only_and_executable_like_bazel(eng: Engine) -> None:
    actions = [
        sh("//pkg:f", f"echo f > {BIN}/pkg/f; chmod 0600 {BIN}/pkg/f", [], [f"{BIN}/pkg/f"]),
        Action(
            owner="//pkg:w",
            mnemonic="FileWrite",
            progress_message="",
            kind="write",
            outputs=(f"{BIN}/pkg/w",),
            content=b"w\n",
        ),
        _tree_action("mkdir sub && echo a > sub/a && chmod 0600 sub/a"),
    ]
    eng.build(actions)
    for path in (f"{BIN}/pkg/f", f"{BIN}/pkg/w", TREE, f"{TREE}/sub", f"{TREE}/sub/a"):
        assert oct(os.stat(eng.out(path)).st_mode & 0o7777) == "0o555", path


def test_symlinks_in_trees_are_kept_and_restored_from_the_cache(eng: Engine) -> None:
    actions = [
        _tree_action(
            "mkdir -p lib && echo so > lib/libx.so && ln -s libx.so lib/libx.so.1 "
            "&& ln -s /bin/sh sh && ln -s lib libdir"
        ),
        sh(
            "//pkg:u",
            f"readlink {TREE}/lib/libx.so.1 > {BIN}/pkg/u; cat {TREE}/lib/libx.so.1 >> {BIN}/pkg/u",
            [TREE],
            [f"{BIN}/pkg/u"],
        ),
    ]
    eng.build(actions)
    tree = eng.out(TREE)
    assert os.readlink(tree / "lib" / "libx.so.1") == "libx.so"
    assert os.readlink(tree / "sh") == "/bin/sh"
    assert os.readlink(tree / "libdir") == "lib"
    # the consumer sees the link's content through its sandbox
    assert eng.out(f"{BIN}/pkg/u").read_text().endswith("so\n")

    for d in (tree, tree / "lib"):
        os.chmod(d, 0o755)
    shutil.rmtree(tree)
    stats = eng.build(actions)
    assert (stats.executed, stats.cache_hits) == (0, 2)
    assert os.readlink(tree / "lib" / "libx.so.1") == "libx.so"
    assert os.readlink(tree / "libdir") == "lib"
    assert (tree / "lib" / "libx.so").read_text() == "so\n"


def test_changing_a_link_target_reruns_consumers(eng: Engine) -> None:
    def actions(target: str) -> list[Action]:
        return [
            _tree_action(f"echo a > a && echo a > b && ln -s {target} link"),
            sh(
                "//pkg:u",
                f"ls -l {TREE} > /dev/null; echo ok > {BIN}/pkg/u",
                [TREE],
                [f"{BIN}/pkg/u"],
            ),
        ]

    eng.build(actions("a"))
    stats = eng.build(actions("b"))  # same content behind the link, different link
    assert stats.executed == 2


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (
            "ln -s ../outside escape",
            "wrote a symlink in tree artifact bazel-out/k8-fastbuild/bin/pkg/tree that points "
            "outside it (got escape -> ../outside)",
        ),
        (
            "ln -s /nix/store/nothing-here dangling",
            "wrote a dangling symlink in tree artifact bazel-out/k8-fastbuild/bin/pkg/tree "
            "(got dangling -> /nix/store/nothing-here)",
        ),
    ],
)
def test_bad_symlinks_in_trees_fail_like_bazel(eng: Engine, script: str, message: str) -> None:
    with pytest.raises(UserError) as err:
        eng.build([_tree_action(script)])
    assert message in str(err.value)
    assert str(err.value).startswith("//pkg:t: Genrule ")


def test_empty_directories_of_a_tree_are_not_staged_for_consumers(eng: Engine) -> None:
    # Bazel stages a tree input as its files; an empty directory never reaches the consumer.
    actions = [
        _tree_action("mkdir -p var/empty etc && echo x > etc/passwd"),
        sh(
            "//pkg:u", f"cd {TREE} && find . | sort > $OLDPWD/{BIN}/pkg/u", [TREE], [f"{BIN}/pkg/u"]
        ),
    ]
    eng.build(actions)
    assert (eng.out(TREE) / "var" / "empty").is_dir()  # the output itself keeps it
    assert eng.out(f"{BIN}/pkg/u").read_text() == ".\n./etc\n./etc/passwd\n"


def test_cached_tree_puts_a_link_where_an_earlier_tree_had_a_directory(eng: Engine) -> None:
    with_dir = [_tree_action("mkdir d && echo x > d/x && echo x > x")]
    with_link = [_tree_action("echo x > x && ln -s x d")]
    eng.build(with_dir)
    eng.build(with_link)
    stats = eng.build(with_dir)  # both from the cache now, over each other's tree
    assert stats.cache_hits == 1 and (eng.out(TREE) / "d" / "x").is_file()
    stats = eng.build(with_link)
    assert stats.cache_hits == 1 and os.readlink(eng.out(TREE) / "d") == "x"


# What a consumer sees of a tree input, as real Bazel 4.2.3 stages it (processwrapper-sandbox;
# checked against Bazel in tests/fixtures/engine/conformance, //lib:staged*): every file and
# every symlink of the tree is one link to that entry's own path in the execroot, so a link
# to a directory reaches the action as a link, never as a directory of the target's files.
_LOOK = (
    'find . | LC_ALL=C sort | while read -r p; do if [ -L "$p" ]; then'
    ' echo "$p L $(readlink "$p")"; elif [ -d "$p" ]; then echo "$p D"; else echo "$p F"; fi; done'
)


def _staged(eng: Engine, tree_script: str, tree: str = TREE) -> list[str]:
    actions = [
        sh("//pkg:t", f"cd {tree} && {tree_script}", [], [], output_dirs=(tree,)),
        sh(
            "//pkg:u",
            f"top=$PWD; out=$top/{BIN}/pkg/u; if [ -L {tree} ]; then echo TOP L $(readlink {tree})"
            f" > $out; else echo TOP D > $out; fi; cd {tree} && ({_LOOK}) >> $out",
            [tree],
            [f"{BIN}/pkg/u"],
        ),
    ]
    eng.build(actions)
    execroot = str(eng.base.execroot)
    return eng.out(f"{BIN}/pkg/u").read_text().replace(execroot, "EXECROOT").splitlines()


def test_links_in_a_tree_input_are_staged_as_links_like_bazel(eng: Engine) -> None:
    script = (
        "mkdir -p lib/sub bin share empty deep/er && echo a > lib/a.txt && echo b > lib/sub/b.txt"
        " && ln -s lib lib64 && echo t > bin/tool0 && ln -s tool0 bin/current"
        " && ln -s ../lib/sub share/doc && ln -s lib64 chain && ln -s current bin/chainf"
        " && ln -s empty emptylink && ln -s share sharelink && ln -s /bin absdir"
        " && ln -s /bin/sh absfile && ln -s ../../lib/a.txt deep/er/up"
    )
    t = f"EXECROOT/{TREE}"
    assert _staged(eng, script) == [
        "TOP D",
        ". D",
        f"./absdir L {t}/absdir",
        f"./absfile L {t}/absfile",
        "./bin D",
        f"./bin/chainf L {t}/bin/chainf",
        f"./bin/current L {t}/bin/current",
        f"./bin/tool0 L {t}/bin/tool0",
        f"./chain L {t}/chain",
        "./deep D",
        "./deep/er D",
        f"./deep/er/up L {t}/deep/er/up",
        f"./emptylink L {t}/emptylink",
        "./lib D",
        f"./lib/a.txt L {t}/lib/a.txt",
        "./lib/sub D",
        f"./lib/sub/b.txt L {t}/lib/sub/b.txt",
        f"./lib64 L {t}/lib64",
        "./share D",
        f"./share/doc L {t}/share/doc",
        f"./sharelink L {t}/sharelink",
    ]


def test_a_tree_of_only_directories_is_staged_as_one_link_like_bazel(eng: Engine) -> None:
    # Bazel 4.2.3: a tree artifact with no files or links is "empty"; its directory is
    # linked whole, so its empty directories are visible (and an empty tree is a link too).
    top = f"TOP L EXECROOT/{TREE}"
    assert _staged(eng, "mkdir -p a/b c") == [top, ". D", "./a D", "./a/b D", "./c D"]


def test_an_empty_tree_is_staged_as_one_link_like_bazel(eng: Engine) -> None:
    assert _staged(eng, "true") == [f"TOP L EXECROOT/{TREE}", ". D"]
    assert (eng.out(TREE)).is_dir()


def test_a_source_directory_input_is_staged_as_one_link_like_bazel(eng: Engine) -> None:
    src = eng.workspace / "pkg" / "srcdir"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "s.txt").write_text("s\n")
    (src / "sublink").symlink_to("sub")
    action = sh(
        "//pkg:u",
        f"top=$PWD; readlink pkg/srcdir > {BIN}/pkg/u;"
        f" cd pkg/srcdir && ({_LOOK}) >> $top/{BIN}/pkg/u",
        ["pkg/srcdir"],
        [f"{BIN}/pkg/u"],
    )
    eng.build([action])
    assert eng.out(f"{BIN}/pkg/u").read_text().splitlines() == [
        str(src),
        ". D",
        "./sub D",
        "./sub/s.txt F",
        "./sublink L sub",
    ]
