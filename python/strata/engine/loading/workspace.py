"""External repositories: WORKSPACE functions and repository rules.

A repository rule runs on first use of its repository, in
`<output_base>/external/<name>`, with the `repository_ctx` subset from
builtins/repository_ctx.bzl; the Python half here does the file system and
process work. A marker file next to the directory records a digest of the rule,
its attributes, its .bzl source and the values of the client environment
variables it declares (`repository_rule(environ = [...])`), so an unchanged repository is
not fetched again. As in Bazel, a rule sees the client environment
(`repository_ctx.os.environ`, and `execute()` inherits it plus its `environment`
argument), but only declared variables make it fetch again when they change.
Build actions never see this environment (see action_env in execution/running.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from strata.engine.action import DEFAULT_PATH
from strata.engine.loading.labels import Label
from strata.engine.loading.loader import BUILTINS_PREFIX, Loader, RepoSpec
from strata.engine.loading.starlark_env import evaluate, parse
from strata.errors import UserError


class Repositories:
    """The WORKSPACE hooks and the repository-rule runner for one Loader."""

    def __init__(self, loader: Loader, environ: Mapping[str, str] | None = None) -> None:
        self.loader = loader
        self.environ = dict(os.environ if environ is None else environ)
        """The client environment, as repository rules see it."""
        self._dir: Path | None = None
        loader.fetch_repo = self.fetch
        loader.hooks.update(
            _strata_workspace=self._workspace,
            _strata_local_repository=self._local_repository,
            _strata_add_repository=self._add_repository,
            _strata_repo_path=self._path,
            _strata_repo_file=self._file,
            _strata_repo_template=self._template,
            _strata_repo_symlink=self._symlink,
            _strata_repo_read=lambda p: self.loader.reads.read_text(self._resolve(p)),
            _strata_repo_delete=self._delete,
            _strata_repo_execute=self._execute,
            _strata_repo_which=lambda prog: shutil.which(prog, path=self._search_path()),
            _strata_repo_environ=lambda: dict(self.environ),
        )

    # ---- WORKSPACE --------------------------------------------------------

    def _workspace(self, name: Any) -> None:
        if not isinstance(name, str) or not name:
            raise UserError(f'workspace() needs a name (got {name!r}); e.g. workspace(name = "x")')
        self.loader.workspace_name = name

    def _local_repository(self, name: Any, path: Any, extra: Any) -> None:
        if not isinstance(path, str):
            raise UserError(
                f"local_repository '{name}': path must be a string (got {path!r}); "
                "give a path relative to the workspace"
            )
        root = (self.loader.workspace_root / path).resolve()
        if not self.loader.reads.is_dir(root):
            raise UserError(
                f"local_repository '{name}': directory not found (got {path!r}); "
                "give an existing directory, relative to the workspace"
            )
        if extra:
            build_file, content = extra.get("build_file"), extra.get("build_file_content")
            if (build_file is None) == (content is None):
                raise UserError(
                    f"new_local_repository '{name}': needs exactly one of build_file and "
                    f"build_file_content (got {'both' if build_file else 'neither'}); set one"
                )
            attrs = {"path": str(root), "build_file": build_file, "build_file_content": content}
            self.loader.add_repo(RepoSpec(name=name, attrs=attrs, where="new_local_repository"))
            return
        self.loader.add_repo(RepoSpec(name=name, path=root))

    def _add_repository(
        self,
        module: str,
        index: int,
        name: Any,
        schema: dict[str, Any],
        attrs: dict[str, Any],
        environ: Any,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise UserError(f'repository rule needs a name (got {name!r}); add name = "..."')
        if not isinstance(environ, list) or not all(isinstance(v, str) for v in environ):
            raise UserError(
                f"@{name}: repository_rule environ must be a list of variable names "
                f'(got {environ!r}); e.g. environ = ["HOME"]'
            )
        values: dict[str, Any] = {}
        for attr, spec in schema.items():
            if attr in attrs:
                value = attrs[attr]
            elif spec.get("mandatory"):
                raise UserError(
                    f"@{name}: missing value for mandatory attribute '{attr}' (got none); "
                    f"set {attr} = ..."
                )
            else:
                value = spec.get("default")
            if spec["type"] == "label" and value is not None:
                text = value["canonical"] if isinstance(value, dict) else value
                lab = Label.parse(text, where=f"@{name}: attribute '{attr}'")
                value = self.loader.label_info(lab)
            values[attr] = value
        unknown = sorted(set(attrs) - set(schema) - {"visibility", "tags"})
        if unknown:
            raise UserError(
                f"@{name}: repository rule has no attribute '{unknown[0]}' (got "
                f"{unknown[0]} = {attrs[unknown[0]]!r}); remove it or declare it in attrs"
            )
        self.loader.add_repo(
            RepoSpec(
                name=name,
                rule_module=module,
                rule_index=index,
                attrs=values,
                environ=tuple(sorted(set(environ))),
            )
        )

    # ---- fetching ---------------------------------------------------------

    def fetch(self, spec: RepoSpec) -> Path:
        if not spec.rule_module:
            return self._new_local(spec)
        target = self.loader.output_base / "external" / spec.name
        marker = self.loader.output_base / "external" / f"@{spec.name}.marker"
        mod_label = Label.parse(spec.rule_module)
        source_path = self.loader.repo_root(mod_label.repo) / mod_label.package / mod_label.name
        reads = self.loader.reads
        declared = {name: reads.env(name, self.environ) for name in spec.environ}
        digest = hashlib.sha256(
            json.dumps(
                [
                    spec.rule_module,
                    spec.rule_index,
                    spec.attrs,
                    reads.read_text(source_path),
                    *([declared] if declared else []),
                ],
                sort_keys=True,
            ).encode()
        ).hexdigest()
        if target.is_dir() and marker.is_file() and marker.read_text() == digest:
            reads.is_dir(target)
            reads.read_text(marker)
            return target
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        marker.unlink(missing_ok=True)
        module, file_loader = self.loader.new_module(f"@{spec.name}//:<fetch>", "", "")
        driver = (
            f'load("{spec.rule_module}", r0 = "strata_registry__")\n'
            f'load("{BUILTINS_PREFIX}repository_ctx.bzl", "run_repository_rule__")\n'
            f"run_repository_rule__([r0], 0, {spec.rule_index}, {json.dumps(spec.name)}, "
            f"json.decode({json.dumps(json.dumps(spec.attrs))}))\n"
        )
        # A fetch may start another (rctx.path of a label in a repository not yet there):
        # the outer rule's directory is its own again after it.
        outer, self._dir = self._dir, target
        try:
            evaluate(
                module, parse(f"<fetch @{spec.name}>", driver), file_loader, self.loader.errors
            )
        finally:
            self._dir = outer
        marker.write_text(digest)
        reads.is_dir(target)
        reads.read_text(marker)
        return target

    def _new_local(self, spec: RepoSpec) -> Path:
        """new_local_repository: links to the directory's entries, plus the given BUILD file.

        Laid out as Bazel lays it out in `external/<name>`, so source paths match.
        """
        reads = self.loader.reads
        source = Path(spec.attrs["path"])
        content = spec.attrs["build_file_content"]
        if content is None:
            lab = Label.parse(spec.attrs["build_file"], where=f"@{spec.name}: build_file")
            path = self.loader.repo_root(lab.repo) / lab.package / lab.name
            if not reads.is_file(path):
                raise UserError(
                    f"new_local_repository '{spec.name}': build_file not found (got "
                    f"{spec.attrs['build_file']}); point it at an existing file"
                )
            content = reads.read_text(path)
        target = self.loader.output_base / "external" / spec.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        target.mkdir(parents=True)
        skip = {"BUILD", "BUILD.bazel", "WORKSPACE", "WORKSPACE.bazel"}
        for entry, _kind in reads.listdir(source):
            if entry not in skip:
                (target / entry).symlink_to(source / entry)
        (target / "WORKSPACE").write_text(f'workspace(name = "{spec.name}")\n')
        (target / "BUILD.bazel").write_text(str(content))
        return target

    def _here(self) -> Path:
        if self._dir is None:
            raise UserError(
                "repository_ctx used outside a repository rule (got a call from "
                "elsewhere); only use it in the rule's implementation"
            )
        return self._dir

    def _resolve(self, p: Any) -> Path:
        if isinstance(p, str) and p.startswith(("//", "@")):
            lab = Label.parse(p)
            return self.loader.repo_root(lab.repo) / lab.package / lab.name
        path = Path(str(p))
        return path if path.is_absolute() else self._here() / path

    def _search_path(self) -> str:
        return self.environ.get("PATH") or DEFAULT_PATH

    def _path(self, p: Any) -> dict[str, Any]:
        path = self._resolve(p)
        return {
            "path": str(path),
            "basename": path.name,
            "dirname": str(path.parent),
            "exists": path.exists(),
        }

    def _file(self, p: Any, content: Any, executable: Any) -> None:
        path = self._resolve(p)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(content))
        path.chmod(0o755 if executable else 0o644)

    def _template(self, p: Any, template: Any, subs: dict[str, str], executable: Any) -> None:
        text = self._resolve(template).read_text()
        for key, value in subs.items():
            text = text.replace(key, value)
        self._file(p, text, executable)

    def _symlink(self, target: Any, link: Any) -> None:
        path = self._resolve(link)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(self._resolve(target))

    def _delete(self, p: Any) -> bool:
        path = self._resolve(p)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
            return True
        if path.exists() or path.is_symlink():
            path.unlink()
            return True
        return False

    def _execute(
        self, argv: list[Any], env: dict[str, str], cwd: str, timeout: int
    ) -> dict[str, Any]:
        environ = {**self.environ, **{str(k): str(v) for k, v in env.items()}}
        environ.setdefault("PATH", DEFAULT_PATH)
        workdir = self._resolve(cwd) if cwd else self._here()
        try:
            proc = subprocess.run(
                [str(a) for a in argv],
                cwd=workdir,
                env=environ,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError:
            return {"return_code": 127, "stdout": "", "stderr": f"{argv[0]}: not found"}
        except subprocess.TimeoutExpired:
            return {"return_code": 124, "stdout": "", "stderr": "timed out"}
        return {
            "return_code": proc.returncode,
            "stdout": proc.stdout.decode(errors="replace"),
            "stderr": proc.stderr.decode(errors="replace"),
        }
