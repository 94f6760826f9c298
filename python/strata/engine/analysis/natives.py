"""Bazel's native rules, analysed in Python: genrule, filegroup, sh_binary, py_binary.

They produce the same actions a Starlark rule would (through the same
`ActionRegistry.add_action`), so nothing downstream can tell them apart. Make
variables (`$(location ...)`, `$@`, `$(SRCS)`) follow Bazel's genrule docs:
https://bazel.build/reference/be/make-variables
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from strata.engine.analysis.runfiles import root_relative
from strata.engine.loading.labels import Label
from strata.errors import UserError

if TYPE_CHECKING:
    from strata.engine.analysis.result import TargetInfo
    from strata.engine.loading.targets import TargetDecl


class AnalysisView(Protocol):
    """What a native rule may use of the analysis running it (`analysis.Analysis` is one):
    the current configuration, file records and action registration, nothing else."""

    @property
    def config(self) -> str: ...

    @property
    def cpu(self) -> str: ...

    @property
    def bin_dir(self) -> str: ...

    @property
    def workspace_name(self) -> str: ...

    @property
    def infos(self) -> Mapping[str, TargetInfo]: ...

    def key(self, label: Label | str, config: str | None = None) -> str: ...

    def package_dir(self, label: Label) -> str: ...

    def file_info(
        self, label: Label, *, generated: bool, owner: Label | None = None, is_dir: bool = False
    ) -> dict[str, Any]: ...

    def record(
        self,
        path: str,
        owner: Label | None = None,
        *,
        is_dir: bool = False,
        generated: bool | None = None,
    ) -> dict[str, Any]: ...

    def output_info(self, label: Label) -> TargetInfo: ...

    def tool_inputs(self, info: TargetInfo) -> list[str]: ...

    def add_action(
        self,
        owner: Label,
        spec: dict[str, Any],
        *,
        check_owner: bool = True,
        key: str | None = None,
    ) -> None: ...


_MAKE_VAR = re.compile(r"\$(\$|@|<|\^|\(([A-Za-z_@][\w@]*)(?:\s+([^)]*))?\)|.?)")


def expand_make_vars(
    text: str,
    owner: Label,
    lookup: Callable[[Label], TargetInfo | None],
    simple: dict[str, str],
    bin_dir: str,
) -> str:
    """Expand `$(...)` in `text`; `lookup` finds the targets `$(location)` may name."""

    def files_of(arg: str, func: str) -> list[str]:
        lab = Label.parse(arg.strip(), repo=owner.repo, package=owner.package, where=str(owner))
        info = lookup(lab)
        if info is None:
            raise UserError(
                f"{owner}: $({func} {arg}) names a label that is not a declared prerequisite "
                f"(got {lab}); add it to srcs, tools, outs or data"
            )
        return [info.executable] if info.executable else list(info.files)

    def sub(m: re.Match[str]) -> str:
        whole, name, arg = m.group(1), m.group(2), m.group(3)
        if whole == "$":
            return "$"
        if whole in ("@", "<", "^") or (name in simple and arg is None):
            key = whole if whole in ("@", "<", "^") else name
            if key not in simple:
                raise UserError(
                    f"{owner}: ${key} is not defined here (got {text!r}); "
                    "it needs exactly one output (or input)"
                )
            return simple[key]
        if name and arg is not None:
            paths = files_of(arg, name)
            if name in ("rootpath", "rootpaths"):
                paths = [short_path(p, bin_dir) for p in paths]
            if name in ("location", "execpath", "rootpath"):
                if len(paths) != 1:
                    raise UserError(
                        f"{owner}: $({name} {arg}) expands to {len(paths)} files (got "
                        f"{paths}); use $({name}s ...) for several"
                    )
                return paths[0]
            if name in ("locations", "execpaths", "rootpaths"):
                return " ".join(paths)
        raise UserError(
            f"{owner}: unknown make variable (got {m.group(0)!r} in {text!r}); "
            "write $$ for a literal $"
        )

    return _MAKE_VAR.sub(sub, text)


def short_path(path: str, bin_dir: str) -> str:
    """Bazel's File.short_path for an execroot path (an output of any configuration)."""
    path = path[len(bin_dir) + 1 :] if path.startswith(bin_dir + "/") else root_relative(path)
    if path.startswith("external/"):
        return "../" + path[len("external/") :]
    return path


def analyze_native(an: AnalysisView, decl: TargetDecl) -> dict[str, Any]:
    """DefaultInfo of a native target as file records, after registering its actions."""
    kind = decl.kind
    label = decl.label
    if kind == "source file":
        f = an.file_info(label, generated=False)
        return {"files": [f], "executable": None, "runfiles": [f]}
    if kind == "generated file":
        f = an.file_info(label, generated=True)
        return {"files": [f], "executable": None, "runfiles": [f]}
    if kind == "genrule":
        return _genrule(an, decl)
    if kind == "filegroup":
        return _filegroup(an, decl)
    if kind in ("sh_binary", "sh_test"):
        return _sh_binary(an, decl)
    if kind == "py_binary":
        return _py_binary(an, decl)
    return {"files": [], "executable": None, "runfiles": []}


def _infos(an: AnalysisView, labels: list[Label], config: str | None = None) -> list[TargetInfo]:
    """The infos of `labels` in `config` (default: the current target's configuration)."""
    return [an.infos[an.key(lab, config)] for lab in labels]


def _uniq(paths: list[str]) -> list[str]:
    return list(dict.fromkeys(paths))


def _genrule(an: AnalysisView, decl: TargetDecl) -> dict[str, Any]:
    label = decl.label
    srcs = _infos(an, decl.attrs["srcs"])
    # Bazel 4.2.3: `tools` in the host configuration, `exec_tools` in the exec one.
    in_target = an.config == "target"
    tools = _infos(an, decl.attrs["tools"], "host" if in_target else None) + _infos(
        an, decl.attrs["exec_tools"], "exec" if in_target else None
    )
    for o in decl.attrs["outs"]:
        name = getattr(o, "name", str(o))
        if any(part in ("", ".", "..") for part in name.split("/")):
            raise UserError(
                f"{decl.label}: output {name!r} must stay inside the package (got '.', '..' or "
                "an empty component); name a file below the package"
            )
    outs = [an.file_info(o, generated=True) for o in decl.attrs["outs"]]
    out_paths = [o["path"] for o in outs]
    src_paths = _uniq([p for i in srcs for p in i.files])
    cmd = decl.attrs["cmd_bash"] or decl.attrs["cmd"]
    if not cmd:
        raise UserError(f'{label}: genrule needs a command (got cmd = ""); set cmd = "..."')
    rule_dir = an.package_dir(label)
    simple = {
        "SRCS": " ".join(src_paths),
        "OUTS": " ".join(out_paths),
        "^": " ".join(src_paths),
        "RULEDIR": rule_dir,
        "GENDIR": an.bin_dir,
        "BINDIR": an.bin_dir,
        "TARGET_CPU": an.cpu,
        "COMPILATION_MODE": "fastbuild",
        "@D": out_paths[0].rsplit("/", 1)[0] if len(out_paths) == 1 else rule_dir,
    }
    if len(out_paths) == 1:
        simple["@"] = out_paths[0]
    if len(src_paths) == 1:
        simple["<"] = src_paths[0]
    known: dict[str, TargetInfo] = {}
    for lab, info in zip(
        decl.attrs["srcs"] + decl.attrs["tools"] + decl.attrs["exec_tools"],
        srcs + tools,
        strict=True,
    ):
        known[str(lab)] = info
    for o in decl.attrs["outs"]:
        known[str(o)] = an.output_info(o)
    command = expand_make_vars(cmd, label, lambda lab: known.get(str(lab)), simple, an.bin_dir)
    tool_inputs = [p for i in tools for p in an.tool_inputs(i)]
    an.add_action(
        label,
        {
            "kind": "run",
            "argv": ["/bin/bash", "-c", f"set -euo pipefail; {command}"],
            "inputs": src_paths + [p for i in srcs for p in i.runfiles if p not in src_paths],
            "tools": tool_inputs,
            "outputs": out_paths,
            "mnemonic": "Genrule",
            "progress_message": decl.attrs["message"] + " " + str(label)
            if decl.attrs["message"]
            else f"Executing genrule {label}",
            "use_default_shell_env": True,
            "env": {},
            "execution_requirements": {},
        },
    )
    exe = outs[0] if decl.attrs["executable"] and len(outs) == 1 else None
    return {"files": outs, "executable": exe, "runfiles": outs}


def _filegroup(an: AnalysisView, decl: TargetDecl) -> dict[str, Any]:
    srcs = _infos(an, decl.attrs["srcs"])
    data = _infos(an, decl.attrs["data"])
    group = decl.attrs["output_group"]
    if group:
        paths = _uniq([p for i in srcs for p in i.output_groups.get(group, ())])
    else:
        paths = _uniq([p for i in srcs for p in i.files])
    runfiles = _uniq(paths + [p for i in srcs + data for p in (*i.files, *i.runfiles)])
    return {
        "files": [an.record(p) for p in paths],
        "executable": None,
        "runfiles": [an.record(p) for p in runfiles],
    }


def _sh_binary(an: AnalysisView, decl: TargetDecl) -> dict[str, Any]:
    label = decl.label
    srcs = _infos(an, decl.attrs["srcs"])
    src_files = [p for i in srcs for p in i.files]
    if len(src_files) != 1:
        raise UserError(
            f"{label}: {decl.kind} needs exactly one file in srcs (got {src_files}); "
            "put the script alone in srcs and other files in data"
        )
    exe = an.file_info(label, generated=True)
    an.add_action(
        label,
        {
            "kind": "symlink",
            "outputs": [exe["path"]],
            "target": src_files[0],
            "is_executable": True,
            "mnemonic": "Symlink",
            "progress_message": f"Symlinking {label}",
        },
    )
    others = _infos(an, decl.attrs["data"] + decl.attrs["deps"])
    runfiles = _uniq(
        [exe["path"], src_files[0], *[p for i in srcs + others for p in (*i.files, *i.runfiles)]]
    )
    return {"files": [exe], "executable": exe, "runfiles": [an.record(p) for p in runfiles]}


_PY_LAUNCHER = """#!/usr/bin/env python3
# Generated by strata for {label}: runs {main} from this binary's runfiles.
import os, runpy, sys
here = os.path.abspath(sys.argv[0])
root = os.environ.get("RUNFILES_DIR") or here + ".runfiles"
ws = os.path.join(root, {workspace!r})
sys.path[:0] = [ws] + [os.path.join(ws, p) for p in {imports!r}]
os.environ.setdefault("RUNFILES_DIR", root)
sys.argv[0] = os.path.join(ws, {main!r})
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _py_binary(an: AnalysisView, decl: TargetDecl) -> dict[str, Any]:
    label = decl.label
    srcs = _infos(an, decl.attrs["srcs"])
    src_files = [p for i in srcs for p in i.files]
    main_label = decl.attrs["main"]
    if main_label is not None:
        mains = list(an.infos[an.key(main_label)].files)
    else:
        want = label.name + ".py"
        mains = [p for p in src_files if p.rsplit("/", 1)[-1] == want] or (
            src_files if len(src_files) == 1 else []
        )
    if len(mains) != 1:
        raise UserError(
            f"{label}: py_binary cannot tell its main file (got srcs {src_files}); "
            f'set main = "..." or name a source {label.name}.py'
        )
    exe = an.file_info(label, generated=True)
    pkg_prefix = f"{label.package}/" if label.package else ""
    content = _PY_LAUNCHER.format(
        label=label,
        main=short_path(mains[0], an.bin_dir),
        workspace=an.workspace_name,
        imports=[pkg_prefix + i for i in decl.attrs["imports"]],
    )
    an.add_action(
        label,
        {
            "kind": "write",
            "outputs": [exe["path"]],
            "content": content,
            "is_executable": True,
            "mnemonic": "PyLauncher",
        },
    )
    others = _infos(an, decl.attrs["deps"] + decl.attrs["data"])
    runfiles = _uniq(
        [exe["path"], *src_files, *[p for i in srcs + others for p in (*i.files, *i.runfiles)]]
    )
    return {"files": [exe], "executable": exe, "runfiles": [an.record(p) for p in runfiles]}
