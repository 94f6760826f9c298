"""REAPI messages as strata writes and reads them for the HTTP cache: field numbers on the
wire, Bazel 4.2.3's own Command and Action digests, and Tree messages (order, and
trees that would expand beyond any real output).
"""

from __future__ import annotations

import io
import time

import pytest

from strata.engine.cache import reapi


def test_reapi_field_numbers_on_the_wire() -> None:
    msg = reapi.ActionResult()
    msg.output_files.add(path="a", digest=reapi.Digest(hash="h", size_bytes=3), is_executable=True)
    msg.output_directories.add(path="d", tree_digest=reapi.Digest(hash="t", size_bytes=1))
    # output_files = 2 (0x12), output_directories = 3 (0x1a); inside OutputFile: path 1,
    # digest 2, is_executable 4 (0x20); inside OutputDirectory: tree_digest 3 (0x1a).
    wire = "120c 0a0161 1205 0a0168 1003 2001 1a0a 0a0164 1a05 0a0174 1001"
    assert reapi.encode(msg).hex() == wire.replace(" ", "")


def test_command_and_action_digest_match_bazel_4_2_3() -> None:
    """Digests Bazel 4.2.3 stored for a ctx.actions.run action (see test_remote_cache.py)."""
    out = "bazel-out/k8-fastbuild/bin/pkg/cat.out"
    gen = "bazel-out/k8-fastbuild/bin/pkg/gen.txt"
    cmd = reapi.command_of(
        ["pkg/tool.sh", out, "pkg/a.txt", gen], [("B", "2"), ("A", "1")], [out], []
    )
    inputs = [
        (gen, "cba5243834a58801d5f3460c1d21fe28c33b1e1c1bb8ce7513e1948eed3a19e4", 12, False),
        ("pkg/a.txt", "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03", 6, False),
        (
            "pkg/tool.sh",
            "d7f4fb9af21ba8868c0744ca104253ff41bc9e2a7402f08b3ec7635793b421ed",
            43,
            True,
        ),
    ]
    action = reapi.action_of(cmd, inputs)
    assert reapi.message_digest(cmd).hash == (
        "c67df59e8a26e1d94e58ff79578d21e8772792ee1cc5aa348c50b1e14f26d555"
    )
    assert action.input_root_digest.hash.startswith("7ceca973bb27")
    assert reapi.message_digest(action).hash == (
        "dc18fbd8dae69420bbd7d849b4aa11fbf3189a03070cd68e3136841f1cf268e6"
    )


def test_tree_order_and_stats_are_deterministic() -> None:
    files = [("z/b", "1" * 64, 1, False), ("a", "2" * 64, 2, True), ("z/a/c", "3" * 64, 3, False)]
    one = reapi.encode(reapi.tree_of(files))
    two = reapi.encode(reapi.tree_of(list(reversed(files))))
    assert one == two
    assert reapi.tree_files(reapi.Tree.FromString(one)) == (sorted(files), [])
    assert io.BytesIO(one).read(1) == b"\x0a"  # root first


def test_tree_that_expands_exponentially_is_rejected_without_expanding() -> None:
    leaf = reapi.Directory()
    leaf.files.add(name="f", digest=reapi.Digest(hash="1" * 64, size_bytes=1))
    children, below = [leaf], leaf
    for i in range(40):  # each level names the one below twice: 2**40 files
        d = reapi.Directory()
        for name in ("a", "b"):
            d.directories.add(name=f"{name}{i}", digest=reapi.message_digest(below))
        children.append(d)
        below = d
    tree = reapi.Tree(root=below, children=children[:-1])
    start = time.monotonic()
    with pytest.raises(ValueError, match="more than"):
        reapi.tree_files(tree)
    assert time.monotonic() - start < 2


def test_tree_deep_through_shared_directories_is_rejected() -> None:
    chain = [reapi.Directory()]
    for i in range(300):
        d = reapi.Directory()
        d.directories.add(name=f"n{i}", digest=reapi.message_digest(chain[-1]))
        chain.append(d)
    root = reapi.Directory()
    for i, d in enumerate(chain):  # every level reachable at depth 1 too, shallowest first
        root.directories.add(name=f"s{i}", digest=reapi.message_digest(d))
    with pytest.raises(ValueError, match="levels|too deep"):
        reapi.tree_files(reapi.Tree(root=root, children=chain))
