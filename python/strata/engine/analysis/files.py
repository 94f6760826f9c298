"""File records: the `File` each execroot path stands for, and the targets' infos.

A rule implementation sees files as records (path, short_path, root, owner...);
outputs' records are kept by path so an action or a later rule can find them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from strata.engine.analysis.configuration import Configuration
from strata.engine.analysis.graph import is_generated
from strata.engine.analysis.natives import short_path
from strata.engine.analysis.result import TargetInfo
from strata.engine.loading.labels import Label
from strata.engine.loading.loader import Loader


class FileRecords:
    """File records by execroot path, made in the current configuration."""

    def __init__(self, configuration: Configuration, loader: Loader) -> None:
        self.configuration = configuration
        self.loader = loader
        self.records: dict[str, dict[str, Any]] = {}
        self.source_owners: dict[str, Label] = {}
        """The first owner of each source file (see `record`)."""

    def package_dir(self, label: Label) -> str:
        parts = [self.configuration.bin_dir] + ([f"external/{label.repo}"] if label.repo else [])
        return "/".join(parts + ([label.package] if label.package else []))

    def file_path(self, label: Label, *, generated: bool) -> str:
        """The execroot path of file `label` (an output of the current configuration)."""
        rel = f"{label.package}/{label.name}" if label.package else label.name
        src = f"external/{label.repo}/{rel}" if label.repo else rel
        return f"{self.configuration.bin_dir}/{src}" if generated else src

    def file_info(
        self, label: Label, *, generated: bool, owner: Label | None = None, is_dir: bool = False
    ) -> dict[str, Any]:
        path = self.file_path(label, generated=generated)
        return self.record(path, owner or label, is_dir=is_dir, generated=generated)

    def record(
        self,
        path: str,
        owner: Label | None = None,
        *,
        is_dir: bool = False,
        generated: bool | None = None,
    ) -> dict[str, Any]:
        """The File record of an execroot path (remembered, so it can be found by path).

        Only outputs' records are kept; a source file's is made again each time
        from its first owner, as a closure has tens of thousands of them.
        """
        if path in self.records:
            return self.records[path]
        gen = is_generated(path) if generated is None else generated
        if not gen and not is_dir:
            owner = self.source_owners.setdefault(path, owner) if owner else None
            owner = owner or self.source_owners.get(path)
        if owner is None:
            raise ValueError(f"no file record for {path}")
        base = path.rsplit("/", 1)[-1]
        rec = {
            "path": path,
            "short_path": short_path(path, self.configuration.bin_dir),
            "basename": base,
            "dirname": path.rsplit("/", 1)[0] if "/" in path else "",
            "extension": base.rsplit(".", 1)[1] if "." in base else "",
            "is_source": not gen,
            "is_directory": is_dir,
            "root": "/".join(path.split("/")[:3]) if gen else "",
            "owner": self.loader.label_info(owner),
        }
        if gen or is_dir:
            self.records[path] = rec
        return rec

    def output_info(self, label: Label) -> TargetInfo:
        f = self.file_info(label, generated=True)
        return TargetInfo(str(label), (f["path"],), None, (f["path"],))

    def file_table(self, keys: Iterable[str], infos: Infos) -> str:
        """Key, label and File record of each file target, as one string Starlark splits
        (`_file_rows` in builtins/ctx.bzl): a closure's tens of thousands of records cost
        seconds to convert into Starlark as dicts, and milliseconds as one string.

        Eleven lines a file. A field holding a newline (a file name may) would break the
        lines, so then the table goes as a JSON list of the same fields instead.
        """
        flat: list[str] = []
        for key in keys:
            label, path = infos.files[key]
            rec = self.record(path)
            owner = rec["owner"]
            flat += (
                key,
                label,
                path,
                rec["short_path"],
                "1" if rec["is_source"] else "",
                "1" if rec["is_directory"] else "",
                rec["root"],
                owner["canonical"],
                owner["name"],
                owner["package"],
                owner["workspace_name"],
            )
        if any("\n" in f for f in flat):
            return json.dumps(flat)
        return "\n".join(flat)


class Infos(dict[str, TargetInfo]):
    """TargetInfo by configured key; a file target's is made when asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, tuple[str, str]] = {}
        """(label, execroot path) of each file target, by configured key."""

    def __missing__(self, key: str) -> TargetInfo:
        _label, path = self.files[key]
        return TargetInfo(key, (path,), None, (path,))

    def get(self, key: str, default: TargetInfo | None = None) -> TargetInfo | None:  # type: ignore[override]
        """As `dict.get`, file targets included (`dict.get` skips `__missing__`)."""
        try:
            return self[key]
        except KeyError:
            return default
