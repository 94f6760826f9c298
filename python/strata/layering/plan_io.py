"""Inputs and outputs of execution-time layer grouping.

Grouping runs inside an action (LayerGroups), not in the rules, because it
depends on store path names: ties are broken by name, and names are content
hashes the rules cannot know. This module reads what that action is given
(closure descriptions in the forms strata and Nix write, the image config)
and writes/reads the directory of grouped layers it produces, so image
assembly and streaming read one format.

A layers directory (a Bazel tree artifact):

    layers.json         {"layers": [{"blob": NAME, "descriptor": NAME,
                                     "store_paths": [...]}, ...], "schema_version": 1}
    NAME ...            the blobs and descriptors it lists, bottom layer first

An entry with `"join": true` names a recipe, not a blob (LayerGroups'
`joins`): the layer is the byte ranges of the store path layers it lists,
read where they are (strata.store.layer_recipe). Only an image request that
names those layers (`join_sources`: StreamImage, Sbom, ImageAssemble) reads one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.canonical import json_bytes, read_json
from strata.errors import UserError
from strata.layering.pipeline import Step, default_pipeline
from strata.store import base32
from strata.store.closure import Closure, PathInfo
from strata.store.path import HASH_CHARS

LAYERS_JSON = "layers.json"
STRATEGIES = ("popularity", "auto_layer")
_NAME_CHARS = r"[A-Za-z0-9+\-._?=]+"


@dataclass(frozen=True)
class GroupedLayer:
    """One layer of a layers directory: file names relative to it, and what it holds."""

    blob: str
    descriptor: str
    store_paths: tuple[str, ...]
    join: bool = False
    """`blob` is a join recipe (strata.store.layer_recipe), not the layer's bytes."""

    def to_json(self) -> dict[str, Any]:
        return {
            "blob": self.blob,
            "descriptor": self.descriptor,
            "store_paths": list(self.store_paths),
        } | ({"join": True} if self.join else {})


@dataclass(frozen=True)
class LayerFiles:
    """One layer of a layers directory as read back: its files, and whether `blob` is a
    join recipe."""

    blob: Path
    descriptor: Path
    join: bool


def read_closures(files: Iterable[str | Path], where: str) -> tuple[list[str], list[PathInfo]]:
    """Roots and path descriptions from closure files, merged.

    Accepted forms: strata's closure (`{"roots", "paths"}`; every listed path
    is described, reachable from the roots or not), nixpkgs'
    exportReferencesGraph list, and a StorePath `info` file (`{"path",
    "closure": [...]}`, whose root is `path`).
    """
    roots: list[str] = []
    infos: list[PathInfo] = []
    for f in files:
        data = read_json(f, "closure file", "pass a closure or store path info JSON", where)
        if isinstance(data, dict) and "closure" in data and "path" in data:
            if not isinstance(data["closure"], list) or not isinstance(data["path"], str):
                raise UserError(
                    f"store path info has a bad 'closure' or 'path' (got {f}); rebuild it",
                    where=where,
                )
            roots.append(data["path"])
            infos.extend(PathInfo.from_json(e, str(f)) for e in data["closure"])
        else:
            closure = Closure.from_json(data, str(f))  # checks the form and the roots' closure
            roots.extend(closure.roots)
            infos.extend(closure.paths)
            if isinstance(data, dict):
                # Paths no root reaches are still candidates (e.g. for the config's paths).
                infos.extend(PathInfo.from_json(e, str(f)) for e in data["paths"])
    return sorted(set(roots)), infos


def _store_path_re(store_dir: str) -> re.Pattern[str]:
    return re.compile(
        re.escape(store_dir.rstrip("/")) + f"/[{base32.ALPHABET}]{{{HASH_CHARS}}}-{_NAME_CHARS}"
    )


def config_store_paths(config: Any, store_dir: str) -> list[str]:
    """Store paths named in a config's Cmd, Entrypoint and Env values, sorted."""
    if not isinstance(config, dict):
        return []
    texts: list[str] = []
    for key in ("Cmd", "Entrypoint"):
        value = config.get(key)
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list):
            texts.extend(v for v in value if isinstance(v, str))
    env = config.get("Env")
    if isinstance(env, list):
        texts.extend(e.partition("=")[2] for e in env if isinstance(e, str))
    elif isinstance(env, dict):
        texts.extend(v for v in env.values() if isinstance(v, str))
    pattern = _store_path_re(store_dir)
    return sorted({m.group(0) for t in texts for m in pattern.finditer(t)})


def add_config_roots(
    roots: Sequence[str], infos: Sequence[PathInfo], config: Any, store_dir: str, where: str
) -> list[str]:
    """`roots` plus the described store paths the config names.

    A store path the config names must be in the image, or the image cannot
    run: if it is described (the rule passes every candidate store path),
    it is added; if not, the error names it.
    """
    described = {i.path for i in infos}
    out = set(roots)
    for path in config_store_paths(config, store_dir):
        if path not in described:
            raise UserError(
                f"the config names store path {path}, which is not among the "
                f"{len(described)} described store paths (got it in Cmd, Entrypoint or Env); "
                "add its store_path target to contents",
                where=where,
            )
        out.add(path)
    return sorted(out)


def strategy_steps(strategy: Any, available: int, where: str) -> list[Step]:
    """The pipeline for `strategy`: "popularity" (default), "auto_layer" or explicit steps."""
    if strategy is None or strategy == "popularity":
        return default_pipeline(available)
    if strategy == "auto_layer":
        return [["auto_layer", available]]
    if isinstance(strategy, list) and strategy and all(isinstance(s, list) for s in strategy):
        return list(strategy)
    raise UserError(
        f"unknown layering strategy (got {json.dumps(strategy)[:60]}); use "
        f'{" or ".join(repr(s) for s in STRATEGIES)} or a pipeline like [["popularity_contest"], '
        '["limit_layers", 50]]',
        where=where,
    )


def layers_json_bytes(layers: Sequence[GroupedLayer]) -> bytes:
    return json_bytes({"layers": [g.to_json() for g in layers], "schema_version": 1})


def read_layers_dir(directory: str | Path, where: str, *, joins: bool = False) -> list[LayerFiles]:
    """The layers of a layers directory, bottom layer first; a join recipe is an error
    unless the caller reads them (`joins`)."""
    d = Path(directory)
    index = d / LAYERS_JSON
    data = read_json(
        index,
        f"{LAYERS_JSON} of a layers directory",
        "pass the output directory of a LayerGroups action",
        where,
    )
    items = data.get("layers") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise UserError(
            f"{index} has no 'layers' list (got {str(data)[:60]}); rebuild it with LayerGroups",
            where=where,
        )
    out: list[LayerFiles] = []
    for item in items:
        names = [item.get(k) if isinstance(item, dict) else None for k in ("blob", "descriptor")]
        # Plain names only: `..` or a path would read a blob from outside the directory.
        if not all(isinstance(n, str) and n not in ("", ".", "..") and "/" not in n for n in names):
            raise UserError(
                f"{index}: a layer entry lacks plain blob/descriptor names (got {item!r:.80}); "
                "rebuild it with LayerGroups",
                where=where,
            )
        join = isinstance(item, dict) and item.get("join") is True
        if join and not joins:
            raise UserError(
                f"{index}: layer {names[0]} is a recipe over the store path layers (LayerGroups "
                "with joins), which this action cannot read; run LayerGroups without joins "
                "for it, or give an image request the layers as join_sources",
                where=where,
            )
        out.append(LayerFiles(d / str(names[0]), d / str(names[1]), join))
    return out
