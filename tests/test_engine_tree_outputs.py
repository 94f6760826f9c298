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
