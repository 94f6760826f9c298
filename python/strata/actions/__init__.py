"""Action entry points: `strata action <mnemonic> @request.json`.

Each action reads one JSON request (sorted keys, `schema_version`) and calls
the library. The same command line runs under Bazel and under the embedded
engine, so an action must depend only on its request and declared inputs.
Add an action by adding one line to `ACTIONS`: mnemonic -> "module:function",
where the function takes the parsed request dict and `where` (the request
file's path, for error messages), and reads the dict with its
`<Mnemonic>Request.from_json` (a frozen dataclass, see `request.Request`).
The module is named after the mnemonic (`LayerGroups`: `layer_groups.py`)
and imports the library and the modules that read requests (`request`,
`image_request`, `registry_request`, `store_request`), never another action.
An action raises `UserError` for a bad request and must leave no partial
outputs (write through `strata.fsutil`).
`lookup` wraps it: a path the machine refuses (a name too long, a full or
read-only disk), a directory where a file belongs, or a path holding a NUL
byte is one error naming the request.
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Callable
from typing import Any

from strata.errors import UserError, environment_error, shorten

ACTIONS: dict[str, str] = {
    # mnemonic: "strata.actions.<module>:<function>"
    "ImageAssemble": "strata.actions.image_assemble:assemble_image",
    "ImageArchive": "strata.actions.image_archive:archive_image",
    "ImagePull": "strata.actions.image_pull:run",
    "BaseBlobs": "strata.actions.base_blobs:run",
    "ImagePush": "strata.actions.image_push:run",
    "ImageLoad": "strata.actions.image_load:run",
    "ImageMerge": "strata.actions.image_merge:merge_images",
    "ImageExport": "strata.actions.image_export:export_image",
    "CustomizationLayer": "strata.actions.customization_layer:run",
    "LayerGroups": "strata.actions.layer_groups:run",
    "StreamImage": "strata.actions.stream_image:run",
    "StorePath": "strata.actions.store_path:run",
    "ImageIndex": "strata.actions.image_index:build_index",
    "NixDb": "strata.actions.nix_db:run",
    "LinkedStorePath": "strata.actions.linked_store_path:run",
    "RunAsRoot": "strata.actions.run_as_root:run",
    "NixStoreImport": "strata.actions.nix_store_import:import_paths",
    "StoreTree": "strata.actions.store_tree:tree",
    "Sbom": "strata.actions.sbom:run",
}


ActionFn = Callable[[dict[str, Any], str], None]


def lookup(mnemonic: str) -> ActionFn:
    target = ACTIONS.get(mnemonic)
    if target is None:
        known = ", ".join(sorted(ACTIONS)) or "none"
        raise UserError(
            f"unknown action mnemonic (got {mnemonic!r}); use one of: {known}",
            where="strata action",
        )
    module_name, func = target.split(":")
    fn: ActionFn = getattr(importlib.import_module(module_name), func)
    return functools.partial(_run, fn)


_NUL = ("embedded null byte", "embedded null character")
"""What Python's `os` calls raise (as ValueError) for a path holding a NUL byte."""


def _run(fn: ActionFn, req: dict[str, Any], where: str) -> None:
    """`fn(req, where)`, with a path the machine refuses as one error naming the request.

    A name too long for a file system, a directory (or "") where a file belongs,
    or a path with a NUL byte, is a request no action can carry out; without
    this it would surface as an OSError (or a ValueError) from deep in the
    action, a crash.
    """
    try:
        fn(req, where)
    except IsADirectoryError as e:
        raise UserError(
            f"a directory where a file belongs (got {shorten(repr(e.filename), 160)}); name a file",
            where=where,
        ) from None
    except OSError as e:
        env = environment_error(e, where)
        if env is None:
            raise
        raise env from None
    except ValueError as e:
        if str(e) not in _NUL:
            raise
        key, value = _nul_value(req, "")
        raise UserError(
            f"{key or 'a path'} holds a NUL byte (got {shorten(json.dumps(value), 120)}); "
            "paths cannot hold one: fix what wrote the request",
            where=where,
        ) from None


def _nul_value(value: Any, at: str) -> tuple[str, Any]:
    """The first (key, string) of the request holding a NUL byte (the key as
    `contents[0].src`), or ("", None)."""
    if isinstance(value, str):
        return (f"key {at!r}", value) if "\x00" in value else ("", None)
    if isinstance(value, dict):
        items: list[tuple[str, Any]] = [(f"{at}.{k}" if at else k, v) for k, v in value.items()]
        for k in value:
            if "\x00" in k:
                return f"a key of {at!r}" if at else "a key", k
    elif isinstance(value, list):
        items = [(f"{at}[{i}]", v) for i, v in enumerate(value)]
    else:
        return "", None
    for key, v in items:
        found = _nul_value(v, key)
        if found[0]:
            return found
    return "", None
