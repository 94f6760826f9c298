"""The action key: one blake3 digest naming everything that determines an action's outputs.

Two actions with the same key must produce the same bytes, so the key covers
the kind, the command line, the whole environment, every input path with its
content digest (tools are inputs, so tool digests are in it too), the output
paths and, for in-process actions, their content. The encoding is canonical
JSON (sorted keys, fixed separators) with a version tag, so a change to the
encoding changes every key instead of silently colliding with old entries.

`record_key` digests the same information faster, for the action records
(action_records.py), which a no-op build checks for every action: a closure's
actions name 235,000 inputs between them, and encoding them all as JSON costs
more than the rest of a no-op. It is computed in two parts: the action's
definition (everything but the inputs' contents, with the input paths in
order) is digested once, at analysis, and stored with the analysis result
(`Action.definition`, digested in action.py); the record key is the digest of that and of the
inputs' digests, in the same order, joined by NUL. It never leaves the output
base, so caches shared with other machines keep the JSON key.

`reapi_action_key` is the key Bazel itself gives a process action in a remote
cache (sha256 of the REAPI `Action`), used with `--action_keys=reapi`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import blake3

from strata.canonical import json_bytes
from strata.engine.action import KEY_VERSION, Action
from strata.engine.cache import ActionResult
from strata.engine.digests import StatCache


def record_key(action: Action, input_digests: Mapping[str, str]) -> str:
    """What `action_key` covers, digested without building `key_material`."""
    h = blake3.blake3(action.definition.encode())
    h.update("\0".join(map(input_digests.__getitem__, action.inputs)).encode())
    return h.hexdigest()


def key_material(action: Action, input_digests: Mapping[str, str]) -> dict[str, Any]:
    """The canonical record hashed into the key; also kept for `--explain`."""
    return {
        "v": KEY_VERSION,
        "kind": action.kind,
        "argv": list(action.argv),
        "env": {k: v for k, v in action.env},
        "inputs": {p: input_digests[p] for p in action.inputs},
        "outputs": list(action.outputs),
        "output_dirs": list(action.output_dirs),
        "content": blake3.blake3(action.content).hexdigest() if action.content else "",
        "executable": action.is_executable,
        "symlink_target": action.symlink_target,
    }


def action_key(material: Mapping[str, Any]) -> str:
    return action_key_of(json_bytes(material))


def action_key_of(encoded: bytes) -> str:
    """`action_key` of material already encoded with `json_bytes`."""
    return blake3.blake3(encoded).hexdigest()


def explain_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human reasons why `new` differs from `old`, most specific first."""
    reasons: list[str] = []
    old_in, new_in = old.get("inputs", {}), new.get("inputs", {})
    for path in sorted(set(old_in) | set(new_in)):
        if path not in old_in:
            reasons.append(f"new input {path}")
        elif path not in new_in:
            reasons.append(f"input {path} removed")
        elif old_in[path] != new_in[path]:
            reasons.append(f"input {path} changed")
    if old.get("argv") != new.get("argv"):
        reasons.append("command line changed")
    old_env, new_env = old.get("env", {}), new.get("env", {})
    changed_env = sorted(k for k in set(old_env) | set(new_env) if old_env.get(k) != new_env.get(k))
    if changed_env:
        reasons.append("environment changed: " + ", ".join(changed_env))
    for field in ("kind", "outputs", "output_dirs", "content", "executable", "symlink_target"):
        if old.get(field) != new.get(field):
            reasons.append(f"{field.replace('_', ' ')} changed")
    if old.get("v") != new.get("v"):
        reasons.append("strata's action key format changed")
    return reasons


def result_entries(path: str, result: ActionResult) -> list[tuple[str, str, int, bool]] | None:
    """The input-root entries of the output `path` of `result`, as `reapi_action_key` would
    read them from disk: the file, or a tree's files; None for a tree with symlinks
    (followed on disk, so only its files on disk say what they stand for)."""
    for f in result.files:
        if f.path == path:
            return [(path, f.sha256, f.size, True)]
    for t in result.trees:
        if t.path == path:
            if t.symlinks:
                return None
            return [(f"{path}/{f.path}", f.sha256, f.size, True) for f in t.files]
    return None


def reapi_action_key(
    action: Action,
    input_path: Callable[[str], Path],
    stat_cache: StatCache,
    known: Mapping[str, list[tuple[str, str, int, bool]]] | None = None,
) -> str:
    """sha256 of the REAPI `Action` Bazel 4.2.3 would build for this process action.

    Same `Command` (argv, environment sorted by name, sorted output files and
    directories, empty platform) and same input root (every input file, tree
    artifacts expanded to their files, all marked executable), so a result
    stored by either engine is found by the other. `known`: the entries of inputs
    that are not on disk (outputs left on a remote cache, see `result_entries`).
    """
    from strata.engine.cache import reapi

    entries: list[reapi.FileEntry] = []
    for path in action.inputs:
        if known is not None and path in known:
            entries.extend(known[path])
            continue
        real = input_path(path)
        if real.is_dir():
            for dirpath, dirnames, names in os.walk(real, followlinks=True):
                dirnames.sort()
                for name in sorted(names):
                    p = Path(dirpath) / name
                    d = stat_cache.digest(p)
                    entries.append(
                        (f"{path}/{p.relative_to(real).as_posix()}", d.sha256, d.size, True)
                    )
        else:
            d = stat_cache.digest(real)
            entries.append((path, d.sha256, d.size, True))
    command = reapi.command_of(action.argv, action.env, action.outputs, action.output_dirs)
    digest: str = reapi.message_digest(reapi.action_of(command, entries)).hash
    return digest
