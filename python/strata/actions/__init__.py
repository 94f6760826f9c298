"""Action entry points: `strata action <mnemonic> @request.json`.

Each action reads one JSON request (sorted keys, `schema_version`) and calls
the library. The same command line runs under Bazel and under the embedded
engine, so an action must depend only on its request and declared inputs.
Add an action by adding one line to `ACTIONS`: mnemonic -> "module:function",
where the function takes the parsed request dict and `where` (the request
file's path, for error messages). An action raises `UserError` for a bad
request and must leave no partial outputs (write through `strata.fsutil`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from strata.errors import UserError

ACTIONS: dict[str, str] = {
    # mnemonic: "strata.actions.<module>:<function>"
    "Layer": "strata.actions.layer:run",
    "ImageAssemble": "strata.actions.image:assemble_image",
    "ImageArchive": "strata.actions.image_archive:archive_image",
    "ImagePull": "strata.actions.pull:run",
    "ImagePush": "strata.actions.push:run",
    "ImageMerge": "strata.actions.merge:merge_images",
    "ImageExport": "strata.actions.export:export_image",
    "StoreLayer": "strata.actions.store_layer:run",
    "StoreLayerGroup": "strata.actions.store_layer:group",
    "CustomizationLayer": "strata.actions.customization:run",
    "LayerGroups": "strata.actions.layered:run",
    "StreamImage": "strata.actions.stream:run",
    "StorePath": "strata.actions.store_path:run",
    "ImageIndex": "strata.actions.index:build_index",
    "NixDb": "strata.actions.nix_db:run",
    "LinkedStorePath": "strata.actions.helpers:run",
    "RunAsRoot": "strata.actions.run_as_root:run",
    "NixStoreImport": "strata.actions.nix_import:import_paths",
    "StoreTree": "strata.actions.nix_import:tree",
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
    return fn
