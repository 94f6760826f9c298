"""Driver entries: what the Starlark driver (`analyze__`) is handed for each target.

A rule's entry carries its attributes with labels as configured keys, its
predeclared outputs as File records and what `ctx` offers besides (bin_dir,
make variables, build setting value); a file target's entry is only its key,
its DefaultInfo being known in Python already.
"""

from __future__ import annotations

from typing import Any

from strata.engine.analysis.action_registry import ActionRegistry
from strata.engine.analysis.batches import label_keys
from strata.engine.analysis.configuration import EXEC, HOST, TARGET, Configuration, config_key
from strata.engine.analysis.files import FileRecords, Infos
from strata.engine.loading.labels import Label
from strata.engine.loading.loader import Loader
from strata.engine.loading.packages import Packages
from strata.engine.loading.targets import TargetDecl


class DriverEntries:
    """Makes each configured target's driver entry, recording its files and outputs."""

    def __init__(
        self,
        configuration: Configuration,
        files: FileRecords,
        registry: ActionRegistry,
        infos: Infos,
        packages: Packages,
        loader: Loader,
    ) -> None:
        self.configuration = configuration
        self.files = files
        self.registry = registry
        self.infos = infos
        self.packages = packages
        self.loader = loader

    def entry(self, decl: TargetDecl, config: str, modules: list[str]) -> dict[str, Any]:
        label = str(decl.label)
        key = config_key(label, config)
        if decl.kind == "source file":
            # A source file's DefaultInfo is known here: no round trip into Python per file
            # (a closure's BUILD file can name tens of thousands of them), and no switch of
            # configuration. Its Target goes to Starlark only inside the entries of rules
            # using it.
            path = self.files.file_path(decl.label, generated=False)
            self.files.source_owners.setdefault(path, decl.label)
            self.infos.files[key] = (label, path)
            return {"label": label, "key": key, "kind": "file"}
        self.configuration.enter(key)
        if decl.kind == "alias":
            actual = config_key(str(decl.attrs["actual"]), config)
            files = [actual] if actual in self.infos.files else []
            return {"label": label, "key": key, "kind": "alias", "actual": actual, "files": files}
        schema = decl.schema
        if decl.kind == "generated file":
            path = self.files.file_info(decl.label, generated=True)["path"]
            self.infos.files[key] = (label, path)
            return {"label": label, "key": key, "kind": "file"}
        if schema is None:
            return {"label": label, "key": key, "kind": "native"}
        if schema.module not in modules:
            modules.append(schema.module)
        attrs: dict[str, Any] = {}
        for name, value in decl.attrs.items():
            if name.startswith("__"):
                continue
            spec = schema.attrs.get(name, {})
            kind = decl.types.get(name, spec.get("type", "any"))
            dep_config = config
            if config == TARGET:
                cfg = spec.get("cfg")
                dep_config = cfg if cfg in (HOST, EXEC) else TARGET
            if kind == "label":
                value = config_key(str(value), dep_config) if value is not None else None
            elif kind == "label_list":
                value = [config_key(str(v), dep_config) for v in value]
            elif kind == "label_keyed_string_dict":
                value = [[config_key(str(k), dep_config), v] for k, v in value]
            elif kind == "output":
                value = None if value is None else self._output_entry(value, decl.label)
            elif kind == "output_list":
                value = [self._output_entry(v, decl.label) for v in value]
            attrs[name] = {
                "type": kind,
                "value": value,
                "allow_single_file": bool(spec.get("allow_single_file")),
                "executable": bool(spec.get("executable")),
            }
        outputs = {
            k: self.files.file_info(v, generated=True, owner=decl.label)
            for k, v in decl.attrs.get("__outputs__", {}).items()
        }
        predeclared = list(outputs.values())
        for name, kind in decl.types.items():
            if kind == "output" and decl.attrs.get(name) is not None:
                predeclared.append(self.files.file_info(decl.attrs[name], generated=True))
            elif kind == "output_list":
                predeclared.extend(
                    self.files.file_info(v, generated=True) for v in decl.attrs[name]
                )
        exe = None
        if "__executable__" in decl.attrs:
            exe = self.files.file_info(decl.label, generated=True)
            outputs["executable"] = exe
            self.registry.implicit_executables.add(exe["path"])
        for f in [*predeclared, *([exe] if exe else [])]:
            self.registry.declared[f["path"]] = key
        entry: dict[str, Any] = {}
        if schema.build_setting is not None:
            entry["build_setting_value"] = self.packages.setting_value(decl)
        return {
            **entry,
            "label": label,
            "key": key,
            "kind": "rule",
            "files": [
                k
                for a in attrs.values()
                if a["type"] in ("label", "label_list", "label_keyed_string_dict")
                for k in label_keys(a["type"], a["value"])
                if k in self.infos.files
            ],
            "registry": modules.index(schema.module),
            "rule": schema.index,
            "attrs": attrs,
            "outputs": outputs,
            "predeclared": predeclared,
            "executable": exe,
            "label_info": self.loader.label_info(decl.label),
            "bin_dir": self.configuration.bin_dir,
            "workspace_name": self.loader.workspace_name,
            "build_file_path": self.loader.display_path(decl.label.sibling("BUILD")),
            "var": {
                "BINDIR": self.configuration.bin_dir,
                "GENDIR": self.configuration.bin_dir,
                "TARGET_CPU": self.configuration.cpu,
                "COMPILATION_MODE": "fastbuild",
            },
        }

    def _output_entry(self, label: Label, owner: Label) -> dict[str, Any]:
        return {
            "label": self.loader.label_info(label),
            "file": self.files.file_info(label, generated=True, owner=owner),
        }
