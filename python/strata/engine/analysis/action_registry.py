"""The action registry: every action analysis registers, and the outputs they write.

Rule implementations (through the `_strata_declare` / `_strata_action` /
`_strata_param_file` hooks) and native rules declare outputs and register
actions here. The checks Bazel makes are made as they arrive (an output
declared by another target, or written by two actions) or at the end (a
declared output no action writes: `check_generated`).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from strata.engine.action import DEFAULT_PATH, Action
from strata.engine.analysis.configuration import Configuration, split_key
from strata.engine.analysis.files import FileRecords
from strata.engine.analysis.graph import is_generated
from strata.engine.analysis.natives import short_path
from strata.engine.analysis.result import TargetInfo
from strata.engine.analysis.runfiles import runfiles_paths
from strata.engine.analysis.target_graph import TargetGraph
from strata.engine.loading.labels import Label, label_structs_as_text
from strata.engine.loading.loader import Loader
from strata.errors import UserError

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


class ActionRegistry:
    """Declared outputs and the actions writing them, in registration order."""

    def __init__(
        self, configuration: Configuration, files: FileRecords, graph: TargetGraph, loader: Loader
    ) -> None:
        self.configuration = configuration
        self.files = files
        self.graph = graph
        self.loader = loader
        self.declared: dict[str, str] = {}
        """The configured target that declared each output path."""
        self.tree_artifacts: set[str] = set()
        self.producers: dict[str, Action] = {}
        self.actions: list[Action] = []
        self.exe_infos: dict[str, TargetInfo] = {}
        """The target whose executable each path is (set as targets are analysed)."""
        self.implicit_executables: set[str] = set()
        """`ctx.outputs.executable` of executable rules: needed only if the rule uses it."""
        self._params = 0
        self._tool_inputs: dict[str, list[str]] = {}
        """`tool_inputs` of each tool target: every action running it shares the one list."""

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
            for rel in runfiles_paths(p, self.loader.workspace_name):
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

    def declare(self, owner: str, filename: str, sibling: str | None, is_dir: bool) -> Any:
        label = self.configuration.enter(owner)
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
            path = f"{self.files.package_dir(label)}/{filename}"
        prev = self.declared.get(path)
        if prev is not None and prev != owner:
            raise UserError(
                f"{owner}: output {path} is already declared by {prev} (got a "
                "second declaration); use a name unique to the target"
            )
        self.declared[path] = owner
        if is_dir:
            self.tree_artifacts.add(path)
        self.files.records.pop(path, None)
        return self.files.record(path, label, is_dir=is_dir, generated=True)

    def param_file(self, owner: str, args: list[str], fmt: str) -> str:
        label = self.configuration.enter(owner)
        self._params += 1
        path = f"{self.files.package_dir(label)}/{label.name}-{self._params}.params"
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
        key = self.configuration.key(owner) if key is None else key
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
        decl = self.graph.decls.get(str(owner))
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

    def check_generated(self) -> None:
        """Every declared output has an action writing it (Bazel: "no generating action")."""
        for path, owner in self.declared.items():
            # The implicit executable is exempt only when the rule returned another one.
            implicit_unused = path in self.implicit_executables and path not in self.exe_infos
            if path not in self.producers and not implicit_unused:
                raise self.graph.located(
                    self.graph.decls[split_key(owner)[0]],
                    f"declared output {short_path(path, self.configuration.target_bin_dir)} has no "
                    "generating action "
                    "(got no ctx.actions call that writes it); write it with an action or do "
                    "not declare it",
                )
