"""What analysis hands to execution: the actions and the requested targets' files.

Kept apart from analysis.py, which needs starlark, so a cached result can be
loaded (see analysis_cache.py) without importing the Starlark interpreter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from strata.engine.action import Action
from strata.engine.analysis.runfiles import runfiles_paths

if TYPE_CHECKING:
    from strata.engine.analysis.graph import ActionGraph


@dataclass(frozen=True)
class TestSpec:
    """What `strata test` needs of a test rule (`test = True`, `sh_test`) beyond its files."""

    size: str = "medium"
    timeout: str = "moderate"
    """Bazel's timeout name, from the `timeout` attribute or else the size."""
    tags: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    """The `args` attribute, `$(location)`s expanded and split as a shell would."""
    env: tuple[tuple[str, str], ...] = ()
    """The `env` attribute, `$(location)`s expanded."""


@dataclass(frozen=True)
class TargetInfo:
    label: str
    files: tuple[str, ...]
    """DefaultInfo files (what `build` produces), execroot-relative."""
    executable: str | None = None
    runfiles: tuple[str, ...] = ()
    output_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """OutputGroupInfo's groups (see output_groups.py for which a build makes)."""
    test: TestSpec | None = None
    """Set for a test target."""


@dataclass(frozen=True)
class AnalysisResult:
    actions: list[Action]
    targets: dict[str, TargetInfo]
    workspace_name: str
    workspace_root: Path
    repo_roots: dict[str, Path]
    bin_dir: str
    dep_graph: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Direct dependencies (label attributes, implicit ones included) of every target
    analysis visited that has any, for `query 'deps(...)'`."""
    errors: tuple[str, ...] = ()
    """With `--keep_going`: the analysis errors of targets left out of `targets`."""
    graph: ActionGraph | None = field(default=None, compare=False, repr=False)
    """`build_graph(actions)`, made once and stored with the analysis (None if the
    actions do not make a valid graph: the build reports why)."""

    def transitive_deps(self, label: str) -> set[str]:
        """`label` and everything it depends on, directly or not."""
        seen = {label}
        todo = [label]
        while todo:
            for dep in self.dep_graph.get(todo.pop(), ()):
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    def source_path(self, execroot_path: str) -> Path:
        """The file on disk behind a source input's execroot path."""
        if execroot_path.startswith("external/"):
            repo, _, rest = execroot_path[len("external/") :].partition("/")
            return self.repo_roots[repo] / rest
        return self.repo_roots[""] / execroot_path

    def runfiles_paths(self, execroot_path: str) -> list[str]:
        """Where a file appears under `<exe>.runfiles/` (external files: twice, as in Bazel 4)."""
        return runfiles_paths(execroot_path, self.workspace_name, self.bin_dir)
