"""Which cached results may stand in for an action (result_check), by the reason given."""

from __future__ import annotations

from dataclasses import replace

import pytest

from strata.engine.action import Action
from strata.engine.cache import ActionResult, OutputFile, OutputSymlink, OutputTree
from strata.engine.cache.result_check import link_leaves_tree, validate_result

SHA = "ab" * 32
F = "bazel-out/k8-fastbuild/bin/p/f"
T = "bazel-out/k8-fastbuild/bin/p/t"
ACTION = Action(owner="//p:p", mnemonic="Gen", progress_message="", outputs=(F,), output_dirs=(T,))
GOOD = ActionResult(
    (OutputFile(F, SHA, 3, True),),
    (
        OutputTree(
            T,
            (OutputFile("a", SHA, 3, True), OutputFile("d/b", SHA, 3, True)),
            (OutputSymlink("d/up", "../a"), OutputSymlink("abs", "/bin/sh")),
        ),
    ),
)


def _tree(**kw: object) -> ActionResult:
    return replace(GOOD, trees=(replace(GOOD.trees[0], **kw),))


def _tfile(path: str) -> OutputFile:
    return OutputFile(path, SHA, 3, True)


def test_a_result_shaped_like_a_fresh_run_is_accepted() -> None:
    assert validate_result(ACTION, GOOD) is None
    empty = Action(owner="//p:p", mnemonic="Gen", progress_message="")
    assert validate_result(empty, ActionResult(())) is None


@pytest.mark.parametrize(
    ("result", "why"),
    [
        (replace(GOOD, files=()), f"it lacks declared output file {F}"),
        (replace(GOOD, trees=()), f"it lacks declared output directory {T}"),
        (
            replace(GOOD, files=(*GOOD.files, _tfile("/tmp/x"))),
            "it has undeclared output file '/tmp/x'",
        ),
        (
            replace(GOOD, files=(replace(GOOD.files[0], path=f"{F}/../f"),)),
            f"it has undeclared output file '{F}/../f'",
        ),
        (replace(GOOD, files=GOOD.files * 2), f"it lists output file '{F}' twice"),
        (
            ActionResult((*GOOD.files, replace(GOOD.files[0], path=T)), ()),
            f"declared output directory {T} is a file in it",
        ),
        (
            ActionResult((), (*GOOD.trees, replace(GOOD.trees[0], path=F))),
            f"declared output file {F} is a directory in it",
        ),
        (
            replace(GOOD, files=(replace(GOOD.files[0], sha256="../../etc/passwd"),)),
            "invalid sha256 '../../etc/passwd'",
        ),
        (
            replace(GOOD, files=(replace(GOOD.files[0], sha256=SHA.upper()),)),
            "invalid sha256",
        ),
        (replace(GOOD, files=(replace(GOOD.files[0], size=-1),)), "invalid size -1"),
        (replace(GOOD, files=(replace(GOOD.files[0], size=True),)), "invalid size True"),
        (
            replace(GOOD, files=(replace(GOOD.files[0], executable=1),)),
            "invalid executable flag 1",
        ),
        (replace(GOOD, files=(replace(GOOD.files[0], path=7),)), "an invalid path 7"),
        (_tree(files=(_tfile("../../x"),)), "not normalised '../../x'"),
        (_tree(files=(_tfile("a/../../x"),)), "not normalised"),
        (_tree(files=(_tfile("/etc/passwd"),)), "an absolute path '/etc/passwd'"),
        (_tree(files=(_tfile("a//b"),)), "not normalised 'a//b'"),
        (_tree(files=(_tfile("./a"),)), "not normalised './a'"),
        (_tree(files=(_tfile("a/"),)), "not normalised 'a/'"),
        (_tree(files=(_tfile(""),)), "an invalid path ''"),
        (_tree(files=(_tfile("a\0b"),)), "an invalid path"),
        (_tree(files=(_tfile("a"), _tfile("a"))), "lists 'a' twice"),
        (
            _tree(files=(_tfile("a"),), symlinks=(OutputSymlink("a", "b"),)),
            "lists 'a' twice",
        ),
        (
            _tree(files=(_tfile("evil/passwd"),), symlinks=(OutputSymlink("evil", "/etc"),)),
            "'evil/passwd' below the symlink 'evil'",
        ),
        (
            _tree(files=(_tfile("x"), _tfile("l/x/y")), symlinks=(OutputSymlink("l", "."),)),
            "'l/x/y' below the symlink 'l'",
        ),
        (_tree(files=(_tfile("a"), _tfile("a/b"))), "'a/b' below the file 'a'"),
        (
            _tree(symlinks=(OutputSymlink("up", "../../../x"),)),
            "symlink leaving it ('up' -> '../../../x')",
        ),
        (_tree(symlinks=(OutputSymlink("d/up", "../../x"),)), "symlink leaving it"),
        (_tree(symlinks=(OutputSymlink("l", ""),)), "symlink with an invalid target ''"),
        (_tree(files=(replace(_tfile("a"), sha256="x"),)), f"tree {T} has a file with an invalid"),
    ],
)
def test_anything_else_is_rejected_with_the_reason(result: ActionResult, why: str) -> None:
    got = validate_result(ACTION, result)
    assert got is not None and why in got


def test_long_untrusted_values_are_cut_and_quoted() -> None:
    why = validate_result(ACTION, replace(GOOD, files=(*GOOD.files, _tfile("x\n" * 500))))
    assert why is not None and "\n" not in why and len(why) < 200


@pytest.mark.parametrize(
    ("rel", "target", "leaves"),
    [
        ("a", "b", False),
        ("d/a", "../b", False),
        ("d/a", "../../b", True),
        ("a", "..", True),
        ("a", "d/../../b", True),
        ("a", "/etc/passwd", False),  # absolute targets are Bazel's business: they must resolve
        ("a", ".", False),
    ],
)
def test_link_rule_is_bazels(rel: str, target: str, leaves: bool) -> None:
    assert link_leaves_tree(rel, target) is leaves
