"""Analysis: from target patterns to the actions that build them.

API for the execution half:

    analyze(workspace_root, patterns, *, cwd_package="", output_base) -> AnalysisResult
      .actions      list[Action], deduplicated, only those the requested targets need
      .targets      {label: TargetInfo(files, executable, runfiles, output_groups)}
                    for every requested target; paths are execroot-relative
      .source_path(execroot_path) -> Path   where a source input lives on disk
                    (main repository, local_repository, repository-rule output)
      .runfiles_paths(execroot_path) -> list[str]  its paths inside `<exe>.runfiles/`

Loading (attr_check.py) checks every target's attributes; this module orders
the target graph (a cycle is an error that prints the cycle), then runs one
Starlark evaluation (`analyze__` in builtins.bzl) that calls each rule's
implementation in dependency order. Implementations reach back here through
the `_strata_declare` / `_strata_action` / `_strata_report` hooks.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from strata.engine.action import DEFAULT_PATH, Action
from strata.engine.analysis.graph import is_generated
from strata.engine.analysis.natives import (
    analyze_native,
    expand_make_vars,
    short_path,
)
from strata.engine.analysis.output_groups import every_group_file
from strata.engine.analysis.result import AnalysisResult, TargetInfo, TestSpec
from strata.engine.analysis.runfiles import runfiles_paths
from strata.engine.analysis.test_rules import test_spec
from strata.engine.loading.attr_check import NATIVE_ATTRS
from strata.engine.loading.build_settings import BuildSettings, SettingFlag
from strata.engine.loading.labels import Label, TargetPattern, label_structs_as_text
from strata.engine.loading.loader import Loader
from strata.engine.loading.packages import Packages
from strata.engine.loading.reads import Reads
from strata.engine.loading.starlark_env import evaluate, parse
from strata.engine.loading.targets import NoSuchTarget, TargetDecl, output_labels
from strata.engine.loading.workspace import Repositories
from strata.engine.outputbase import host_cpu
from strata.errors import UsageError, UserError

__all__ = ["Analysis", "AnalysisResult", "TargetInfo", "analyze"]

_EXEC_TAGS = (
    "no-cache",
    "no-remote-cache",
    "no-remote",
    "no-remote-exec",
    "no-sandbox",
    "local",
    "requires-network",
    "no-remote-cache-upload",
)


class TargetError(UserError):
    """An analysis error of one target; `--keep_going` skips the requested targets needing it."""

    def __init__(self, message: str, *, where: str | None, label: str) -> None:
        super().__init__(message, where=where)
        self.label = label


TARGET, HOST, EXEC = "target", "host", "exec"
"""Configurations, as Bazel 4.2.3 builds them with default flags: the requested
targets in the target configuration; `cfg = "host"` dependencies and genrule
`tools` in the host configuration (`bazel-out/host/bin`); `cfg = "exec"`
dependencies and genrule `exec_tools` in the exec configuration (the output
directory name Bazel 4.2.3 derives for it). A dependency of a host or exec target
stays in that configuration."""


def config_key(label: str, config: str) -> str:
    """The key of a configured target: its label, with ` (host)` / ` (exec)` unless target."""
    return label if config == TARGET else f"{label} ({config})"


def split_key(key: str) -> tuple[str, str]:
    """(label, configuration) of a configured-target key."""
    for config in (HOST, EXEC):
        if key.endswith(f" ({config})"):
            return key[: -len(config) - 3], config
    return key, TARGET


class Analysis:
    def __init__(
        self,
        workspace_root: Path,
        output_base: Path,
        reads: Reads | None = None,
        setting_flags: Sequence[SettingFlag] = (),
    ) -> None:
        self.cpu = host_cpu()
        self.bin_dirs = {
            TARGET: f"bazel-out/{self.cpu}-fastbuild/bin",
            HOST: "bazel-out/host/bin",
            EXEC: f"bazel-out/{self.cpu}-opt-exec-2B5CBBC6/bin",
        }
        self.target_bin_dir = self.bin_dirs[TARGET]
        self.config = TARGET
        """The configuration of the target being analysed (set by `enter`)."""
        self.bin_dir = self.target_bin_dir
        """`ctx.bin_dir.path` of that configuration."""
        self.loader = Loader(workspace_root, output_base, reads)
        self.packages = Packages(self.loader)
        self.repositories = Repositories(self.loader)
        self.infos = _Infos()
        self.records: dict[str, dict[str, Any]] = {}
        self.declared: dict[str, str] = {}
        self.tree_artifacts: set[str] = set()
        self.producers: dict[str, Action] = {}
        self.actions: list[Action] = []
        self.decls: dict[str, TargetDecl] = {}
        self._params = 0
        self._source_owners: dict[str, Label] = {}
        """The first owner of each source file (see `record`)."""
        self._tool_inputs: dict[str, list[str]] = {}
        """`tool_inputs` of each tool target: every action running it shares the one list."""
        self._batches: list[list[dict[str, Any]]] = []
        """The driver's targets, in dependency order, one slice per top-level statement."""
        self._reports = 0
        """Targets analyze__ has reported so far (files are not: see _driver_entry)."""
        self.exe_infos: dict[str, TargetInfo] = {}
        self._implicit_executables: set[str] = set()
        """`ctx.outputs.executable` of executable rules: needed only if the rule uses it."""
        self.loader.hooks.update(
            _strata_declare=self._declare,
            _strata_action=lambda owner, spec: self.add_action(self.enter(owner), spec, key=owner),
            _strata_param_file=self._param_file,
            _strata_expand_location=self._expand_location,
            _strata_report=self._report,
            _strata_native=lambda key: analyze_native(self, self.decls[str(self.enter(key))]),
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

    def enter(self, key: str) -> Label:
        """Switch to the configuration of configured target `key`; return its label.

        Analysis runs one target at a time (dependencies first), and every hook
        names its target, so the current configuration is always the caller's.
        """
        label, self.config = split_key(key)
        self.bin_dir = self.bin_dirs[self.config]
        return Label.parse(label)

    def key(self, label: Label | str, config: str | None = None) -> str:
        """Key of `label` configured as `config` (default: the current configuration)."""
        return config_key(str(label), self.config if config is None else config)

    @property
    def workspace_name(self) -> str:
        return self.loader.workspace_name

    # ---- files ------------------------------------------------------------

    def package_dir(self, label: Label) -> str:
        parts = [self.bin_dir] + ([f"external/{label.repo}"] if label.repo else [])
        return "/".join(parts + ([label.package] if label.package else []))

    def file_path(self, label: Label, *, generated: bool) -> str:
        """The execroot path of file `label` (an output of the current configuration)."""
        rel = f"{label.package}/{label.name}" if label.package else label.name
        src = f"external/{label.repo}/{rel}" if label.repo else rel
        return f"{self.bin_dir}/{src}" if generated else src

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
            owner = self._source_owners.setdefault(path, owner) if owner else None
            owner = owner or self._source_owners.get(path)
        if owner is None:
            raise ValueError(f"no file record for {path}")
        base = path.rsplit("/", 1)[-1]
        rec = {
            "path": path,
            "short_path": short_path(path, self.bin_dir),
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

    def tool_inputs(self, info: TargetInfo) -> list[str]:
        """Inputs an action needs to run `info` as a tool, as Bazel 4.2.3 stages them.

        An executable made by a rule: the executable and its runfiles tree
        (`<exe>.runfiles/`, the executable itself included), not the runfiles at
        their own paths and not the runfiles manifest. Anything else: its files
        and runfiles.
        """
        known = self._tool_inputs.get(info.label)
        if known is None:
            known = self._tool_inputs[info.label] = self._new_tool_inputs(info)
        return known

    def _new_tool_inputs(self, info: TargetInfo) -> list[str]:
        exe = info.executable
        if exe is None or not is_generated(exe):
            return list(dict.fromkeys(list(info.files) + list(info.runfiles)))
        paths = [exe]
        tree = exe + ".runfiles"
        for p in dict.fromkeys([*info.runfiles, exe]):
            for rel in runfiles_paths(p, self.workspace_name):
                link = f"{tree}/{rel}"
                if link not in self.producers:
                    self.add_action(
                        Label.parse(split_key(info.label)[0]),
                        {
                            "kind": "symlink",
                            "outputs": [link],
                            "target": p,
                            "is_executable": False,
                            "mnemonic": "SymlinkTree",
                            "progress_message": f"Runfiles for {info.label}",
                        },
                        check_owner=False,
                        key=info.label,
                    )
                paths.append(link)
        return list(dict.fromkeys(paths))

    # ---- hooks ------------------------------------------------------------

    def _declare(self, owner: str, filename: str, sibling: str | None, is_dir: bool) -> Any:
        label = self.enter(owner)
        if not isinstance(filename, str) or not filename or filename.startswith("/"):
            raise UserError(
                f"{owner}: declare_file needs a relative file name (got "
                f'{filename!r}); e.g. ctx.label.name + ".out"'
            )
        if any(part in ("", ".", "..") for part in filename.split("/")):
            raise UserError(
                f"{owner}: output {filename!r} must stay inside the package (got '.', '..' or "
                "an empty component); name a file below the package"
            )
        if sibling is not None:
            path = f"{sibling.rsplit('/', 1)[0]}/{filename}"
        else:
            path = f"{self.package_dir(label)}/{filename}"
        prev = self.declared.get(path)
        if prev is not None and prev != owner:
            raise UserError(
                f"{owner}: output {path} is already declared by {prev} (got a "
                "second declaration); use a name unique to the target"
            )
        self.declared[path] = owner
        if is_dir:
            self.tree_artifacts.add(path)
        self.records.pop(path, None)
        return self.record(path, label, is_dir=is_dir, generated=True)

    def _param_file(self, owner: str, args: list[str], fmt: str) -> str:
        label = self.enter(owner)
        self._params += 1
        path = f"{self.package_dir(label)}/{label.name}-{self._params}.params"
        self.declared[path] = owner
        if fmt == "shell":
            content = "".join(shlex.quote(a) + "\n" for a in args)
        else:
            content = "".join(a + "\n" for a in args)
        self.add_action(
            label,
            {"kind": "write", "outputs": [path], "content": content, "mnemonic": "ParamFile"},
            key=owner,
        )
        return path

    def _expand_location(self, owner: str, text: str, labels: list[str]) -> str:
        """`ctx.expand_location`: as in Bazel, `$(location)` may name the rule's direct
        dependencies and its declared outputs, besides the `targets` passed."""
        label = self.enter(owner)
        config = self.config
        decl = self.decls[str(label)]
        known: dict[str, TargetInfo] = {}
        for dep, dep_config in self.configured_deps(decl, config):
            info = self.infos.get(config_key(str(dep), dep_config))
            if info is not None:
                known[str(dep)] = info
        for out in output_labels(decl):
            known[str(out)] = self.output_info(out)
        known.update({split_key(key)[0]: self.infos[key] for key in labels})
        return expand_make_vars(text, label, lambda lab: known.get(str(lab)), {}, self.bin_dir)

    def _report(self, label: str, info: dict[str, Any]) -> None:
        """analyze__ finished a target (every kind but files, see _driver_entry)."""
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
            self.exe_infos[info["executable"]] = self.infos[label]

    def add_action(
        self,
        owner: Label,
        spec: dict[str, Any],
        *,
        check_owner: bool = True,
        key: str | None = None,
    ) -> None:
        """Register an action of `owner` (configured target `key`, default: `owner` in the
        current configuration)."""
        key = self.key(owner) if key is None else key
        outputs = [str(o) for o in spec["outputs"]]
        if not outputs:
            raise UserError(
                f"{owner}: {spec.get('mnemonic')} action has no outputs (got "
                "outputs = []); every action must declare an output"
            )
        for out in outputs:
            declared_by = self.declared.get(out)
            if check_owner and declared_by is not None and declared_by != key:
                raise UserError(
                    f"{owner}: action output {out} belongs to {declared_by} (got it "
                    "as an output here); declare outputs with ctx.actions.declare_file"
                )
            if out in self.producers:
                raise UserError(
                    f"{owner}: output {out} is produced by two actions (got "
                    f"{self.producers[out].mnemonic} and {spec.get('mnemonic')}); "
                    "give each action its own outputs"
                )
        kind = spec["kind"]
        inputs = [sys.intern(str(p)) for p in spec.get("inputs", []) + spec.get("tools", [])]
        argv: tuple[str, ...] = ()
        env: dict[str, str] = {}
        content = b""
        target = ""
        if kind == "run":
            argv = tuple(label_structs_as_text(str(a)) for a in spec["argv"])
            if spec.get("use_default_shell_env"):
                env = {"PATH": DEFAULT_PATH}
            else:
                raw_env = spec.get("env", {}).items()
                env = {str(k): label_structs_as_text(str(v)) for k, v in raw_env}
            extra: list[str] = []
            for p in inputs:
                info = self.exe_infos.get(p)
                if info is not None:
                    extra.extend(self.tool_inputs(info))
            inputs += extra
        elif kind == "write":
            raw = spec["content"]
            content = label_structs_as_text(raw).encode() if isinstance(raw, str) else bytes(raw)
        elif kind == "template":
            content = self._expand_template(owner, spec)
            inputs = [spec["template"]]
            kind = "write"
        elif kind == "symlink":
            target = spec["target"]
            inputs = [target]
        decl = self.decls.get(str(owner))
        tags = tuple(
            sorted(
                {t for t in (decl.attrs.get("tags") or []) if t in _EXEC_TAGS}
                | set(spec.get("execution_requirements", {}))
            )
            if decl
            else ()
        )
        action = Action(
            owner=str(owner),
            mnemonic=str(spec.get("mnemonic") or "Action"),
            progress_message=label_structs_as_text(
                str(spec.get("progress_message") or f"{spec.get('mnemonic')} {owner}")
            ),
            kind=kind,
            argv=argv,
            env=tuple(sorted(env.items())),
            inputs=tuple(sorted(set(inputs))),
            outputs=tuple(sorted(sys.intern(o) for o in outputs if o not in self.tree_artifacts)),
            output_dirs=tuple(sorted(sys.intern(o) for o in outputs if o in self.tree_artifacts)),
            content=content,
            is_executable=bool(spec.get("is_executable")),
            symlink_target=target,
            tags=tags,
        )
        for out in outputs:
            self.producers[out] = action
        self.actions.append(action)

    def _expand_template(self, owner: Label, spec: dict[str, Any]) -> bytes:
        tpl = spec["template"]
        if is_generated(tpl):
            raise UserError(
                f"{owner}: expand_template with a generated template is not "
                f"supported by strata (got {tpl}); use a source file as template"
            )
        text = self.loader.reads.read_text(self._source(tpl))
        for key, value in spec.get("substitutions", {}).items():
            text = text.replace(key, label_structs_as_text(value))
        return text.encode()

    def _source(self, path: str) -> Path:
        if path.startswith("external/"):
            repo, _, rest = path[len("external/") :].partition("/")
            return self.loader.repo_root(repo) / rest
        return self.loader.workspace_root / path

    # ---- graph ------------------------------------------------------------

    def expand(
        self, patterns: list[str], cwd_package: str, errors: list[str] | None = None
    ) -> list[Label]:
        """The targets `patterns` name. With `errors` (`--keep_going`), a pattern or a
        package that fails to load is reported there and skipped, as Bazel carries on."""
        out: list[Label] = []
        for text in patterns:
            try:
                labels = self._expand_one(text, cwd_package, errors)
            except NoSuchTarget as err:
                if errors is None:
                    raise UserError(err.detail, where=text) from None
                errors.append(str(UserError(err.detail, where=text)))
                continue
            except UserError as err:
                if errors is None:
                    raise
                errors.append(str(err))
                continue
            out.extend(lab for lab in labels if lab not in out)
        return out

    def _expand_one(
        self, text: str, cwd_package: str, errors: list[str] | None = None
    ) -> list[Label]:
        pat = TargetPattern.parse(text, cwd_package=cwd_package)
        if pat.recursive:
            labels = self.packages.targets_under(pat.repo, pat.package, errors)
            if pat.name:
                labels = [lab for lab in labels if lab.name == pat.name]
            if not labels:
                raise UserError(
                    f"no targets found beneath '{pat.package or '//'}' (got {text}); "
                    "check the directory and that it has BUILD files declaring rules",
                    where=text,
                )
            return self._not_manual(labels)
        if pat.name is None:
            pkg = self.packages.package(pat.repo, pat.package, where=text)
            return self._not_manual([pkg.label(n) for n in pkg.rules])
        lab = Label(self.loader.canonical_repo(pat.repo), pat.package, pat.name)
        self.packages.target(lab, where=text)
        return [lab]

    def _not_manual(self, labels: list[Label]) -> list[Label]:
        """A wildcard (`//...`, `:all`) leaves out targets tagged `manual`, as in Bazel."""
        return [
            lab
            for lab in labels
            if "manual" not in (self.packages.target(lab).attrs.get("tags") or ())
        ]

    def configured_deps(self, decl: TargetDecl, config: str) -> list[tuple[Label, str]]:
        """`decl`'s dependencies with the configuration each is built in."""
        out: list[tuple[Label, str]] = []
        for name, kind in decl.types.items():
            value = decl.attrs.get(name)
            if value is None:
                continue
            dep_config = config
            if config == TARGET:
                if decl.schema is not None:
                    cfg = decl.schema.attrs.get(name, {}).get("cfg")
                    dep_config = cfg if cfg in (HOST, EXEC) else TARGET
                elif decl.kind == "genrule" and name in ("tools", "exec_tools"):
                    dep_config = HOST if name == "tools" else EXEC
            if kind == "label":
                out.append((value, dep_config))
            elif kind == "label_list":
                out.extend((v, dep_config) for v in value)
            elif kind == "label_keyed_string_dict":
                out.extend((k, dep_config) for k, _ in value)
        if decl.generator is not None:
            out.append((decl.generator, config))
        return out

    def order(self, roots: list[Label]) -> list[tuple[TargetDecl, str]]:
        """Configured targets reachable from `roots`, dependencies first; a cycle is an error."""
        done: set[str] = set()
        order: list[tuple[TargetDecl, str]] = []
        for root in roots:
            if str(root) in done:
                continue
            stack: list[tuple[TargetDecl, str, list[tuple[Label, str]]]] = []
            on_path: list[str] = []
            decl = self.packages.target(root)
            stack.append((decl, TARGET, list(reversed(self.configured_deps(decl, TARGET)))))
            on_path.append(str(root))
            while stack:
                decl, config, todo = stack[-1]
                if not todo:
                    stack.pop()
                    on_path.pop()
                    done.add(config_key(str(decl.label), config))
                    order.append((decl, config))
                    continue
                dep, dep_config = todo.pop()
                key = config_key(str(dep), dep_config)
                if key in done:
                    continue
                if key in on_path:
                    cycle = " -> ".join(
                        split_key(k)[0] for k in [*on_path[on_path.index(key) :], key]
                    )
                    raise self.located(
                        decl, f"dependency cycle (got {cycle}); remove one of these dependencies"
                    )
                try:
                    child = self.packages.target(dep, where=key)
                except NoSuchTarget as err:
                    raise self.located(decl, err.detail) from None
                if child.kind == "generated file" and child.generator is not None:
                    self.packages.target(child.generator)
                deps = self.configured_deps(child, dep_config)
                stack.append((child, dep_config, list(reversed(deps))))
                on_path.append(key)
        return order

    def orderable(self, roots: list[Label], errors: list[str]) -> list[Label]:
        """The roots whose dependency graph loads (no cycle, no missing target); the
        others' errors go to `errors`."""
        out: list[Label] = []
        for root in roots:
            try:
                self.order([root])
            except UserError as err:
                errors.append(str(err))
                continue
            out.append(root)
        return out

    def reaches(self, root: Label, label: str) -> bool:
        """Whether `root` is `label` or depends on it (after `run` ordered the targets)."""
        seen: set[str] = set()
        todo = [str(root)]
        while todo:
            key = todo.pop()
            if key == label:
                return True
            if key in seen or key not in self.decls:
                continue
            seen.add(key)
            todo.extend(str(d) for d in self.decls[key].deps())
        return False

    def run(self, roots: list[Label]) -> None:
        order = self.order(roots)
        modules: list[str] = []
        targets: list[dict[str, Any]] = []
        for decl, config in order:
            self.decls[str(decl.label)] = decl
            targets.append(self._driver_entry(decl, config, modules))
        reporting = [i for i, t in enumerate(targets) if t["kind"] != "file"]
        self._batches = _batches([targets[i] for i in reporting])
        del targets
        loads = "".join(f'load("{m}", r{i} = "strata_registry__")\n' for i, m in enumerate(modules))
        driver = (
            loads + 'load("@strata_builtins__//:builtins.bzl", "analyze__")\n'
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
            raise self.located(decl, err.detail, at=err.where) from None
        finally:
            self._batches = []

    def _batch(self, k: int) -> list[dict[str, Any]]:
        """The driver's `k`-th slice of targets, handed over once (then freed here)."""
        batch, self._batches[k] = self._batches[k], []
        for entry in batch:
            # the file targets the entry depends on, as one string (see _file_table)
            entry["files"] = self._file_table(entry.get("files", ()))
        return batch

    def _file_table(self, keys: Iterable[str]) -> str:
        """Key, label and File record of each file target, as one string Starlark splits
        (`_file_rows` in builtins.bzl): a closure's tens of thousands of records cost
        seconds to convert into Starlark as dicts, and milliseconds as one string.

        Eleven lines a file. A field holding a newline (a file name may) would break the
        lines, so then the table goes as a JSON list of the same fields instead.
        """
        flat: list[str] = []
        for key in keys:
            label, path = self.infos.files[key]
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

    def located(self, decl: TargetDecl, message: str, *, at: str | None = None) -> TargetError:
        """An error of target `decl` placed as Bazel places it: at the BUILD call that
        declared the target, `in <rule> rule <label>: <message>`; `at` is where in the
        rule's code it was raised (a .bzl line), shown on the next line."""
        label = str(decl.label)
        first, _, rest = message.partition("\n")
        if first.startswith(label + ": "):
            first = first[len(label) + 2 :]  # the rule's own text names the target already
        head = f"in {decl.kind} rule {label}: " if decl.schema or decl.kind in NATIVE_ATTRS else ""
        lines = [head + first if head else f"{label}: {first}"]
        if at is not None:
            lines.append(f"  at {at}")
        if rest:
            lines.append(rest)
        where = self.packages.location(decl) or label
        return TargetError("\n".join(lines), where=where, label=label)

    def check_generated(self) -> None:
        """Every declared output has an action writing it (Bazel: "no generating action")."""
        for path, owner in self.declared.items():
            # The implicit executable is exempt only when the rule returned another one.
            implicit_unused = path in self._implicit_executables and path not in self.exe_infos
            if path not in self.producers and not implicit_unused:
                raise self.located(
                    self.decls[split_key(owner)[0]],
                    f"declared output {short_path(path, self.target_bin_dir)} has no "
                    "generating action "
                    "(got no ctx.actions call that writes it); write it with an action or do "
                    "not declare it",
                )

    def _driver_entry(self, decl: TargetDecl, config: str, modules: list[str]) -> dict[str, Any]:
        label = str(decl.label)
        key = config_key(label, config)
        if decl.kind == "source file":
            # A source file's DefaultInfo is known here: no round trip into Python per file
            # (a closure's BUILD file can name tens of thousands of them), and no switch of
            # configuration. Its Target goes to Starlark only inside the entries of rules
            # using it.
            path = self.file_path(decl.label, generated=False)
            self._source_owners.setdefault(path, decl.label)
            self.infos.files[key] = (label, path)
            return {"label": label, "key": key, "kind": "file"}
        self.enter(key)
        if decl.kind == "alias":
            actual = config_key(str(decl.attrs["actual"]), config)
            files = [actual] if actual in self.infos.files else []
            return {"label": label, "key": key, "kind": "alias", "actual": actual, "files": files}
        schema = decl.schema
        if decl.kind == "generated file":
            path = self.file_info(decl.label, generated=True)["path"]
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
            k: self.file_info(v, generated=True, owner=decl.label)
            for k, v in decl.attrs.get("__outputs__", {}).items()
        }
        predeclared = list(outputs.values())
        for name, kind in decl.types.items():
            if kind == "output" and decl.attrs.get(name) is not None:
                predeclared.append(self.file_info(decl.attrs[name], generated=True))
            elif kind == "output_list":
                predeclared.extend(self.file_info(v, generated=True) for v in decl.attrs[name])
        exe = None
        if "__executable__" in decl.attrs:
            exe = self.file_info(decl.label, generated=True)
            outputs["executable"] = exe
            self._implicit_executables.add(exe["path"])
        for f in [*predeclared, *([exe] if exe else [])]:
            self.declared[f["path"]] = key
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
                for k in _label_keys(a["type"], a["value"])
                if k in self.infos.files
            ],
            "registry": modules.index(schema.module),
            "rule": schema.index,
            "attrs": attrs,
            "outputs": outputs,
            "predeclared": predeclared,
            "executable": exe,
            "label_info": self.loader.label_info(decl.label),
            "bin_dir": self.bin_dir,
            "workspace_name": self.workspace_name,
            "build_file_path": self.loader.display_path(decl.label.sibling("BUILD")),
            "var": {
                "BINDIR": self.bin_dir,
                "GENDIR": self.bin_dir,
                "TARGET_CPU": self.cpu,
                "COMPILATION_MODE": "fastbuild",
            },
        }

    def _output_entry(self, label: Label, owner: Label) -> dict[str, Any]:
        return {
            "label": self.loader.label_info(label),
            "file": self.file_info(label, generated=True, owner=owner),
        }

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
            action = self.producers.get(path)
            if action is None or id(action) in seen:
                continue
            seen.add(id(action))
            out.append(action)
            want.extend(action.inputs)
        order = {id(a): i for i, a in enumerate(self.actions)}
        return sorted(out, key=lambda a: order[id(a)])


def _test_specs(an: Analysis, roots: list[Label]) -> dict[str, TestSpec]:
    """The requested targets that are tests, with what running them takes."""
    out: dict[str, TestSpec] = {}
    for lab in roots:
        decl = an.decls.get(str(lab))
        if decl is None:
            continue
        try:
            spec = test_spec(decl, lambda dep: an.infos.get(str(dep)), an.target_bin_dir)
        except UserError as err:
            raise TargetError(err.detail, where=err.where, label=str(lab)) from None
        if spec is not None:
            out[str(lab)] = spec
    return out


class _Infos(dict[str, TargetInfo]):
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


_BATCHES = 64
"""Top-level statements the analysis driver is split into. Starlark collects garbage
only between statements, each collection costs time in proportion to what is still
alive, and a closure's rule implementations make far more garbage than they keep."""


def _label_keys(kind: str, value: Any) -> list[str]:
    """The configured keys in a driver entry's label-typed attribute value."""
    if kind == "label":
        return [] if value is None else [value]
    if kind == "label_list":
        return list(value)
    return [k for k, _ in value]


def _weight(entry: dict[str, Any]) -> int:
    """Rough cost of analysing one driver entry: 1, plus the labels a rule receives."""
    attrs = entry.get("attrs", {})
    return 1 + sum(len(a["value"]) for a in attrs.values() if isinstance(a["value"], list))


def _batches(targets: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """`targets` cut, in order, into about `_BATCHES` slices of similar weight."""
    weights = [_weight(t) for t in targets]
    step = max(1, sum(weights) // _BATCHES)
    out: list[list[dict[str, Any]]] = [[]]
    acc = 0
    for t, w in zip(targets, weights, strict=True):
        out[-1].append(t)
        acc += w
        if acc >= step:
            out.append([])
            acc = 0
    return [b for b in out if b] or [[]]


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
    roots = an.expand(patterns, cwd_package, errors if keep_going else None)
    if keep_going:
        roots = an.orderable(roots, errors)
    while True:
        try:
            an.run(roots)
            an.check_generated()
            tests = _test_specs(an, roots)
            break
        except TargetError as err:
            if not keep_going:
                raise
            left = [r for r in roots if not an.reaches(r, err.label)]
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
        bin_dir=an.target_bin_dir,
        dep_graph={  # targets without dependencies (files) are left out: ~58k in a closure
            label: tuple(dict.fromkeys(str(d) for d in deps))
            for label, decl in an.decls.items()
            if (deps := decl.deps())
        },
        errors=tuple(errors),
    )
