"""REAPI v2 messages for the remote cache, built from a descriptor at import time.

Bazel's HTTP cache stores REAPI `ActionResult` messages under `/ac/` and
servers such as bazel-remote parse and validate them, so our entries must be
real protobuf messages with the real field numbers. No protoc is available,
so this module describes the subset of
`build/bazel/remote/execution/v2/remote_execution.proto` that a cache client
needs as a `FileDescriptorProto` (field numbers copied from the spec) and lets
`message_factory` make the classes. Messages we parse keep unknown fields (for
instance Bazel's `execution_metadata` timestamps), so nothing is lost.

Spec: https://github.com/bazelbuild/remote-apis/blob/main/build/bazel/remote/execution/v2/remote_execution.proto

Digests of messages (a Command, an Action, a Tree) are sha256 over the
deterministic binary encoding, as the spec's `Digest` section requires.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

# protobuf ships no type stubs and the lock file has no types-protobuf.
from google.protobuf import (  # type: ignore[import-untyped]
    descriptor_pb2,
    descriptor_pool,
    message_factory,
)
from google.protobuf.message import Message  # type: ignore[import-untyped]

_PACKAGE = "build.bazel.remote.execution.v2"
_F = descriptor_pb2.FieldDescriptorProto

# (name, number, type, label, message type or "") per field; labels: "1" optional, "*" repeated.
_MESSAGES: dict[str, list[tuple[str, int, int, str, str]]] = {
    "Digest": [("hash", 1, _F.TYPE_STRING, "1", ""), ("size_bytes", 2, _F.TYPE_INT64, "1", "")],
    "NodeProperty": [("name", 1, _F.TYPE_STRING, "1", ""), ("value", 2, _F.TYPE_STRING, "1", "")],
    "NodeProperties": [("properties", 1, _F.TYPE_MESSAGE, "*", "NodeProperty")],
    "FileNode": [
        ("name", 1, _F.TYPE_STRING, "1", ""),
        ("digest", 2, _F.TYPE_MESSAGE, "1", "Digest"),
        ("is_executable", 4, _F.TYPE_BOOL, "1", ""),
        ("node_properties", 6, _F.TYPE_MESSAGE, "1", "NodeProperties"),
    ],
    "DirectoryNode": [
        ("name", 1, _F.TYPE_STRING, "1", ""),
        ("digest", 2, _F.TYPE_MESSAGE, "1", "Digest"),
    ],
    "SymlinkNode": [
        ("name", 1, _F.TYPE_STRING, "1", ""),
        ("target", 2, _F.TYPE_STRING, "1", ""),
        ("node_properties", 4, _F.TYPE_MESSAGE, "1", "NodeProperties"),
    ],
    "Directory": [
        ("files", 1, _F.TYPE_MESSAGE, "*", "FileNode"),
        ("directories", 2, _F.TYPE_MESSAGE, "*", "DirectoryNode"),
        ("symlinks", 3, _F.TYPE_MESSAGE, "*", "SymlinkNode"),
        ("node_properties", 5, _F.TYPE_MESSAGE, "1", "NodeProperties"),
    ],
    "Tree": [
        ("root", 1, _F.TYPE_MESSAGE, "1", "Directory"),
        ("children", 2, _F.TYPE_MESSAGE, "*", "Directory"),
    ],
    "Platform.Property": [
        ("name", 1, _F.TYPE_STRING, "1", ""),
        ("value", 2, _F.TYPE_STRING, "1", ""),
    ],
    "Platform": [("properties", 1, _F.TYPE_MESSAGE, "*", "Platform.Property")],
    "Command.EnvironmentVariable": [
        ("name", 1, _F.TYPE_STRING, "1", ""),
        ("value", 2, _F.TYPE_STRING, "1", ""),
    ],
    "Command": [
        ("arguments", 1, _F.TYPE_STRING, "*", ""),
        ("environment_variables", 2, _F.TYPE_MESSAGE, "*", "Command.EnvironmentVariable"),
        ("output_files", 3, _F.TYPE_STRING, "*", ""),
        ("output_directories", 4, _F.TYPE_STRING, "*", ""),
        ("platform", 5, _F.TYPE_MESSAGE, "1", "Platform"),
        ("working_directory", 6, _F.TYPE_STRING, "1", ""),
        ("output_paths", 7, _F.TYPE_STRING, "*", ""),
        ("output_node_properties", 8, _F.TYPE_STRING, "*", ""),
    ],
    # `timeout` (6, google.protobuf.Duration) is left out: strata actions have none, and
    # an unset message field is not encoded, so the digest is the same.
    "Action": [
        ("command_digest", 1, _F.TYPE_MESSAGE, "1", "Digest"),
        ("input_root_digest", 2, _F.TYPE_MESSAGE, "1", "Digest"),
        ("do_not_cache", 7, _F.TYPE_BOOL, "1", ""),
        ("salt", 9, _F.TYPE_BYTES, "1", ""),
        ("platform", 10, _F.TYPE_MESSAGE, "1", "Platform"),
    ],
    "OutputFile": [
        ("path", 1, _F.TYPE_STRING, "1", ""),
        ("digest", 2, _F.TYPE_MESSAGE, "1", "Digest"),
        ("is_executable", 4, _F.TYPE_BOOL, "1", ""),
        ("contents", 5, _F.TYPE_BYTES, "1", ""),
        ("node_properties", 7, _F.TYPE_MESSAGE, "1", "NodeProperties"),
    ],
    "OutputDirectory": [
        ("path", 1, _F.TYPE_STRING, "1", ""),
        ("tree_digest", 3, _F.TYPE_MESSAGE, "1", "Digest"),
        ("is_topologically_sorted", 4, _F.TYPE_BOOL, "1", ""),
        ("root_directory_digest", 5, _F.TYPE_MESSAGE, "1", "Digest"),
    ],
    "OutputSymlink": [
        ("path", 1, _F.TYPE_STRING, "1", ""),
        ("target", 2, _F.TYPE_STRING, "1", ""),
        ("node_properties", 4, _F.TYPE_MESSAGE, "1", "NodeProperties"),
    ],
    # Timestamps (2-10) and auxiliary metadata (11) are kept as unknown fields when parsed.
    "ExecutedActionMetadata": [("worker", 1, _F.TYPE_STRING, "1", "")],
    "ActionResult": [
        ("output_files", 2, _F.TYPE_MESSAGE, "*", "OutputFile"),
        ("output_directories", 3, _F.TYPE_MESSAGE, "*", "OutputDirectory"),
        ("exit_code", 4, _F.TYPE_INT32, "1", ""),
        ("stdout_raw", 5, _F.TYPE_BYTES, "1", ""),
        ("stdout_digest", 6, _F.TYPE_MESSAGE, "1", "Digest"),
        ("stderr_raw", 7, _F.TYPE_BYTES, "1", ""),
        ("stderr_digest", 8, _F.TYPE_MESSAGE, "1", "Digest"),
        ("execution_metadata", 9, _F.TYPE_MESSAGE, "1", "ExecutedActionMetadata"),
        ("output_file_symlinks", 10, _F.TYPE_MESSAGE, "*", "OutputSymlink"),
        ("output_directory_symlinks", 11, _F.TYPE_MESSAGE, "*", "OutputSymlink"),
        ("output_symlinks", 12, _F.TYPE_MESSAGE, "*", "OutputSymlink"),
    ],
}


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    fdp = descriptor_pb2.FileDescriptorProto(
        name="build/bazel/remote/execution/v2/remote_execution.proto",
        package=_PACKAGE,
        syntax="proto3",
    )
    protos: dict[str, descriptor_pb2.DescriptorProto] = {}
    for full in sorted(_MESSAGES, key=lambda n: n.count(".")):
        outer, _, inner = full.partition(".")
        if inner:
            protos[full] = protos[outer].nested_type.add(name=inner)
        else:
            protos[full] = fdp.message_type.add(name=outer)
    for full, fields in _MESSAGES.items():
        for name, number, ftype, label, type_name in fields:
            field = protos[full].field.add(name=name, number=number, type=ftype)
            field.label = _F.LABEL_REPEATED if label == "*" else _F.LABEL_OPTIONAL
            if type_name:
                field.type_name = f".{_PACKAGE}.{type_name}"
    return fdp


_POOL = descriptor_pool.DescriptorPool()
_CLASSES = message_factory.GetMessages([_file_descriptor()], pool=_POOL)


def _cls(name: str) -> Any:
    return _CLASSES[f"{_PACKAGE}.{name}"]


Digest: Any = _cls("Digest")
FileNode: Any = _cls("FileNode")
DirectoryNode: Any = _cls("DirectoryNode")
SymlinkNode: Any = _cls("SymlinkNode")
Directory: Any = _cls("Directory")
Tree: Any = _cls("Tree")
Platform: Any = _cls("Platform")
Command: Any = _cls("Command")
Action: Any = _cls("Action")
OutputFile: Any = _cls("OutputFile")
OutputDirectory: Any = _cls("OutputDirectory")
OutputSymlink: Any = _cls("OutputSymlink")
ExecutedActionMetadata: Any = _cls("ExecutedActionMetadata")
ActionResult: Any = _cls("ActionResult")


def encode(msg: Message) -> bytes:
    """The canonical encoding the spec hashes: fields in tag order, deterministic maps."""
    data: bytes = msg.SerializeToString(deterministic=True)
    return data


def digest_of(data: bytes) -> Any:
    """A `Digest` (sha256, size) of some bytes."""
    return Digest(hash=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


def message_digest(msg: Message) -> Any:
    return digest_of(encode(msg))


# -- Merkle trees and the action digest ----------------------------------------

FileEntry = tuple[str, str, int, bool]
"""(path with `/`, sha256, size, executable)."""


def directory_tree(
    files: Iterable[FileEntry], symlinks: Iterable[tuple[str, str]] = ()
) -> tuple[Any, list[Any]]:
    """The canonical root `Directory` of a file listing and every sub-`Directory` below it.

    Canonical as the spec's `Directory` section requires: one path segment a
    node, children sorted by name. Children come depth-first, parents first.
    """
    nested: dict[str, Any] = {}
    for path, sha, size, exe in files:
        parts = path.split("/")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = (sha, size, exe)
    for path, target in symlinks:
        parts = path.split("/")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = target
    children: list[Any] = []

    def build(node: dict[str, Any]) -> Any:
        msg = Directory()
        subdirs = []
        for name in sorted(node):
            value = node[name]
            if isinstance(value, str):
                msg.symlinks.add(name=name, target=value)
            elif isinstance(value, dict):
                sub = build(value)
                subdirs.append(sub)
                msg.directories.add(name=name, digest=message_digest(sub))
            else:
                sha, size, exe = value
                msg.files.add(
                    name=name, digest=Digest(hash=sha, size_bytes=size), is_executable=exe
                )
        children[:0] = subdirs
        return msg

    root = build(nested)
    return root, children


def tree_of(files: Iterable[FileEntry], symlinks: Iterable[tuple[str, str]] = ()) -> Any:
    """The `Tree` message of an output directory."""
    root, children = directory_tree(files, symlinks)
    unique = {encode(c): c for c in children}
    return Tree(root=root, children=list(unique.values()))


MAX_TREE_ENTRIES = 1 << 22
"""A `Tree` lists each distinct child directory once and may use it many times, so a
message of a few kilobytes can stand for an exponential number of entries: one with
more than this many is rejected before it is expanded."""


_MAX_TREE_DEPTH = 256


def _check_tree_size(root: Any, by_digest: dict[str, Any]) -> None:
    """Reject a tree too large or too deep once expanded, counting per distinct directory."""
    known: dict[str, tuple[int, int]] = {}

    def measure(d: Any, depth: int) -> tuple[int, int]:
        """(entries below `d`, height of `d`)."""
        if depth > _MAX_TREE_DEPTH:
            raise ValueError("tree is too deep or cyclic")
        entries, height = len(d.symlinks) + len(d.files) + len(d.directories), 0
        for sub in d.directories:
            h = sub.digest.hash
            if h not in known:
                child = by_digest.get(h)
                if child is None:
                    raise ValueError(f"tree misses directory {sub.name!r:.80}")
                known[h] = measure(child, depth + 1)
            entries += known[h][0]
            height = max(height, known[h][1] + 1)
            if entries > MAX_TREE_ENTRIES or height > _MAX_TREE_DEPTH:
                raise ValueError(
                    f"tree has more than {MAX_TREE_ENTRIES} entries or {_MAX_TREE_DEPTH} levels"
                )
        return entries, height

    measure(root, 0)


def tree_files(tree: Any) -> tuple[list[FileEntry], list[tuple[str, str]]]:
    """The files and symlinks of a `Tree`, relative to its root; ValueError if it is broken."""
    by_digest = {message_digest(c).hash: c for c in tree.children}
    _check_tree_size(tree.root, by_digest)
    out: list[FileEntry] = []
    links: list[tuple[str, str]] = []

    def walk(d: Any, prefix: str) -> None:
        for sl in d.symlinks:
            links.append((prefix + sl.name, sl.target))
        for f in d.files:
            out.append((prefix + f.name, f.digest.hash, f.digest.size_bytes, f.is_executable))
        for sub in d.directories:
            walk(by_digest[sub.digest.hash], f"{prefix}{sub.name}/")

    walk(tree.root, "")
    return sorted(out), sorted(links)


def command_of(
    argv: Sequence[str],
    env: Iterable[tuple[str, str]],
    outputs: Sequence[str],
    output_dirs: Sequence[str],
) -> Any:
    """The `Command` Bazel 4.2.3 sends for a local spawn: sorted env, output_files and
    output_directories (not v2.1's output_paths), and an empty but present platform."""
    cmd = Command(
        arguments=list(argv),
        environment_variables=[
            Command.EnvironmentVariable(name=k, value=v) for k, v in sorted(env)
        ],
        output_files=sorted(outputs),
        output_directories=sorted(output_dirs),
    )
    cmd.platform.SetInParent()
    return cmd


def action_of(command: Any, inputs: Iterable[FileEntry]) -> Any:
    """The `Action` over `command` and an input root.

    Bazel 4.2.3 marks every input file executable in the input root (it does not
    track the bit for inputs), so `inputs`' executable flags are ignored here.
    """
    root, _children = directory_tree((p, s, n, True) for p, s, n, _x in inputs)
    action = Action(command_digest=message_digest(command), input_root_digest=message_digest(root))
    action.platform.SetInParent()
    return action
