"""Analysis: from target patterns to the actions that build them.

API for the execution half:

    analyze(workspace_root, patterns, *, cwd_package="", output_base) -> AnalysisResult
      .actions      list[Action], deduplicated, only those the requested targets need
      .targets      {label: TargetInfo(files, executable, runfiles, output_groups)}
                    for every requested target; paths are execroot-relative
      .source_path(execroot_path) -> Path   where a source input lives on disk
                    (main repository, local_repository, repository-rule output)
      .runfiles_paths(execroot_path) -> list[str]  its paths inside `<exe>.runfiles/`

Loading (attr_check.py) checks every target's attributes; the target graph
(target_graph.py) orders the configured targets (a cycle is an error that prints
the cycle); this module then runs one Starlark evaluation (`analyze__` in
loading/builtins/analysis.bzl) that calls each rule's implementation in
dependency order. Implementations reach back through the `_strata_declare` /
`_strata_action` / `_strata_report` hooks, into the file records (files.py) and
the action registry (action_registry.py); `Analysis` composes them, and is the
`AnalysisView` that native rules see (natives.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from strata.engine.action import Action
from strata.engine.analysis.action_registry import ActionRegistry
from strata.engine.analysis.batches import batches
from strata.engine.analysis.configuration import (
    Configuration,
    config_key,
    split_key,
)
from strata.engine.analysis.driver_entries import DriverEntries
from strata.engine.analysis.files import FileRecords, Infos
from strata.engine.analysis.natives import analyze_native, expand_make_vars
from strata.engine.analysis.output_groups import every_group_file
from strata.engine.analysis.result import AnalysisResult, TargetInfo, TestSpec
from strata.engine.analysis.target_graph import TargetError, TargetGraph
from strata.engine.analysis.test_rules import test_spec
from strata.engine.loading.build_settings import BuildSettings, SettingFlag
from strata.engine.loading.labels import Label
from strata.engine.loading.loader import BUILTINS_PREFIX, Loader
from strata.engine.loading.packages import Packages
from strata.engine.loading.reads import Reads
from strata.engine.loading.starlark_env import evaluate, parse
from strata.engine.loading.targets import NoSuchTarget, output_labels
from strata.engine.loading.workspace import Repositories
from strata.errors import UsageError, UserError

__all__ = ["Analysis", "AnalysisResult", "TargetInfo", "analyze"]


class Analysis:
    """One analysis: the Starlark driver over the target graph, file records and actions."""

    def __init__(
        self,
        workspace_root: Path,
        output_base: Path,
        reads: Reads | None = None,
        setting_flags: Sequence[SettingFlag] = (),
    ) -> None:
        self.configuration = Configuration()
        self.loader = Loader(workspace_root, output_base, reads)
        self.packages = Packages(self.loader)
        self.repositories = Repositories(self.loader)
        self.graph = TargetGraph(self.loader, self.packages)
        self.files = FileRecords(self.configuration, self.loader)
        self.registry = ActionRegistry(self.configuration, self.files, self.graph, self.loader)
        self.infos = Infos()
        self.entries = DriverEntries(
            self.configuration, self.files, self.registry, self.infos, self.packages, self.loader
        )
        self._batches: list[list[dict[str, Any]]] = []
        """The driver's targets, in dependency order, one slice per top-level statement."""
        self._reports = 0
        """Targets analyze__ has reported so far (files are not: see DriverEntries.entry)."""
        conf, registry = self.configuration, self.registry
        self.loader.hooks.update(
            _strata_declare=registry.declare,
            _strata_action=lambda owner, spec: registry.add_action(
                conf.enter(owner), spec, key=owner
            ),
            _strata_param_file=registry.param_file,
            _strata_expand_location=self._expand_location,
            _strata_report=self._report,
            _strata_native=lambda key: analyze_native(self, self.graph.decls[str(conf.enter(key))]),
            _strata_batch=self._batch,
        )
        self.loader.load_workspace()
        self.packages.settings = BuildSettings(setting_flags, self.loader.canonical_repo)
        for label in self.packages.settings.labels():
            try:
                decl = self.packages.target(label, where=str(label))
            except NoSuchTarget as err:
                raise UsageError(
                    f"Error loading option {label}: {err.detail}", where=f"--{label}"
                ) from None
            setting = decl.schema.build_setting if decl.schema is not None else None
            self.packages.settings.check(label, decl.kind, setting)

    # ---- what native rules see (natives.AnalysisView) --------------------

    @property
    def config(self) -> str:
        return self.configuration.config

    @property
    def cpu(self) -> str:
        return self.configuration.cpu

    @property
    def bin_dir(self) -> str:
        return self.configuration.bin_dir

    @property
    def workspace_name(self) -> str:
        return self.loader.workspace_name

    def key(self, label: Label | str, config: str | None = None) -> str:
        return self.configuration.key(label, config)

    def package_dir(self, label: Label) -> str:
        return self.files.package_dir(label)

    def file_info(
        self, label: Label, *, generated: bool, owner: Label | None = None, is_dir: bool = False
    ) -> dict[str, Any]:
        return self.files.file_info(label, generated=generated, owner=owner, is_dir=is_dir)

    def record(
        self,
        path: str,
        owner: Label | None = None,
        *,
        is_dir: bool = False,
        generated: bool | None = None,
    ) -> dict[str, Any]:
        return self.files.record(path, owner, is_dir=is_dir, generated=generated)

    def output_info(self, label: Label) -> TargetInfo:
        return self.files.output_info(label)

    def tool_inputs(self, info: TargetInfo) -> list[str]:
        return self.registry.tool_inputs(info)

    def add_action(
        self,
        owner: Label,
        spec: dict[str, Any],
        *,
        check_owner: bool = True,
        key: str | None = None,
    ) -> None:
        self.registry.add_action(owner, spec, check_owner=check_owner, key=key)

    # ---- the driver -------------------------------------------------------

    def _expand_location(self, owner: str, text: str, labels: list[str]) -> str:
        """`ctx.expand_location`: as in Bazel, `$(location)` may name the rule's direct
        dependencies and its declared outputs, besides the `targets` passed."""
        label = self.configuration.enter(owner)
        config = self.config
        decl = self.graph.decls[str(label)]
        known: dict[str, TargetInfo] = {}
        for dep, dep_config in self.graph.configured_deps(decl, config):
            info = self.infos.get(config_key(str(dep), dep_config))
            if info is not None:
                known[str(dep)] = info
        for out in output_labels(decl):
            known[str(out)] = self.output_info(out)
        known.update({split_key(key)[0]: self.infos[key] for key in labels})
        return expand_make_vars(text, label, lambda lab: known.get(str(lab)), {}, self.bin_dir)

    def _report(self, label: str, info: dict[str, Any]) -> None:
        """analyze__ finished a target (every kind but files, see DriverEntries.entry)."""
        self._reports += 1
        self._set_info(label, info)

    def _set_info(self, label: str, info: dict[str, Any]) -> None:
        files = tuple(info["files"])
        runfiles = tuple(info["runfiles"])
        self.infos[label] = TargetInfo(
            label=label,
            files=files,
            executable=info["executable"],
            runfiles=files if runfiles == files else runfiles,
            output_groups={k: tuple(v) for k, v in info["output_groups"].items()},
        )
        if info["executable"]:
            self.registry.exe_infos[info["executable"]] = self.infos[label]

    def run(self, roots: list[Label]) -> None:
        order = self.graph.order(roots)
        modules: list[str] = []
        targets: list[dict[str, Any]] = []
        for decl, config in order:
            self.graph.decls[str(decl.label)] = decl
            targets.append(self.entries.entry(decl, config, modules))
        reporting = [i for i, t in enumerate(targets) if t["kind"] != "file"]
        self._batches = batches([targets[i] for i in reporting])
        del targets
        loads = "".join(f'load("{m}", r{i} = "strata_registry__")\n' for i, m in enumerate(modules))
        driver = (
            loads + f'load("{BUILTINS_PREFIX}analysis.bzl", "analyze__")\n'
            f"registries__ = [{', '.join(f'r{i}' for i in range(len(modules)))}]\n"
            "results__ = {}\n"
            + "".join(
                f"analyze__(registries__, results__, {k})\n" for k in range(len(self._batches))
            )
        )
        module, file_loader = self.loader.new_module("//:<analysis>", "", "")
        self._reports = 0
        try:
            evaluate(module, parse("<analysis>", driver), file_loader, self.loader.errors)
        except UserError as err:
            # analyze__ reports each target but files once it is analysed, in this order.
            if isinstance(err, TargetError | UsageError) or self._reports >= len(reporting):
                raise
            decl = order[reporting[self._reports]][0]
            raise self.graph.located(decl, err.detail, at=err.where) from None
        finally:
            self._batches = []

    def _batch(self, k: int) -> list[dict[str, Any]]:
        """The driver's `k`-th slice of targets, handed over once (then freed here)."""
        batch, self._batches[k] = self._batches[k], []
        for entry in batch:
            # the file targets the entry depends on, as one string (see FileRecords.file_table)
            entry["files"] = self.files.file_table(entry.get("files", ()), self.infos)
        return batch

    def needed_actions(self, labels: list[Label]) -> list[Action]:
        """Actions producing the requested targets' files, runfiles, output groups and inputs.

        Every output group is kept, so one analysis serves any `--output_groups`;
        the build runs only the actions the requested groups need.
        """
        want: list[str] = []
        for lab in labels:
            info = self.infos[str(lab)]
            want.extend(every_group_file(info))
            if info.executable:
                want.extend(self.tool_inputs(info))
        seen: set[int] = set()
        out: list[Action] = []
        while want:
            path = want.pop()
            action = self.registry.producers.get(path)
            if action is None or id(action) in seen:
                continue
            seen.add(id(action))
            out.append(action)
            want.extend(action.inputs)
        order = {id(a): i for i, a in enumerate(self.registry.actions)}
        return sorted(out, key=lambda a: order[id(a)])


def _test_specs(an: Analysis, roots: list[Label]) -> dict[str, TestSpec]:
    """The requested targets that are tests, with what running them takes."""
    out: dict[str, TestSpec] = {}
    for lab in roots:
        decl = an.graph.decls.get(str(lab))
        if decl is None:
            continue
        try:
            spec = test_spec(
                decl, lambda dep: an.infos.get(str(dep)), an.configuration.target_bin_dir
            )
        except UserError as err:
            raise TargetError(err.detail, where=err.where, label=str(lab)) from None
        if spec is not None:
            out[str(lab)] = spec
    return out


def analyze(
    workspace_root: Path,
    patterns: list[str],
    *,
    cwd_package: str = "",
    output_base: Path,
    reads: Reads | None = None,
    keep_going: bool = False,
    setting_flags: Sequence[SettingFlag] = (),
) -> AnalysisResult:
    """Load and analyse `patterns`; every file-system read goes through `reads`.

    With `keep_going`, a target whose analysis fails is left out, with every
    requested target that depends on it, and its error is returned in
    `AnalysisResult.errors` (Bazel: "not all targets were analyzed"); so is a
    pattern naming nothing, or a package that `//...` reaches and that fails
    to load: the other packages are still built, as Bazel does.
    """
    an = Analysis(workspace_root, output_base, reads, setting_flags)
    errors: list[str] = []
    roots = an.graph.expand(patterns, cwd_package, errors if keep_going else None)
    if keep_going:
        roots = an.graph.orderable(roots, errors)
    while True:
        try:
            an.run(roots)
            an.registry.check_generated()
            tests = _test_specs(an, roots)
            break
        except TargetError as err:
            if not keep_going:
                raise
            left = [r for r in roots if not an.graph.reaches(r, err.label)]
            if len(left) == len(roots):
                raise  # no requested target needs it: nothing to leave out
            errors.append(str(err))
            roots = left
            an = Analysis(workspace_root, output_base, reads, setting_flags)
    targets = {str(lab): an.infos[str(lab)] for lab in roots}
    for label, spec in tests.items():
        targets[label] = dataclasses.replace(targets[label], test=spec)
    return AnalysisResult(
        actions=an.needed_actions(roots),
        targets=targets,
        workspace_name=an.workspace_name,
        workspace_root=an.loader.workspace_root,
        repo_roots=dict(an.loader.repo_roots),
        bin_dir=an.configuration.target_bin_dir,
        dep_graph={  # targets without dependencies (files) are left out: ~58k in a closure
            label: tuple(dict.fromkeys(str(d) for d in deps))
            for label, decl in an.graph.decls.items()
            if (deps := decl.deps())
        },
        errors=tuple(errors),
    )
