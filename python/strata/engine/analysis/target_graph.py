"""The target graph: target patterns to labels, configured dependencies, their order.

Loading gives each target's declaration; here they become configured targets
(a `cfg = "host"` dependency is another node than the same label in the target
configuration), ordered dependencies first for the one Starlark driver. A cycle
is an error that prints the cycle, placed as Bazel places it (`located`).
"""

from __future__ import annotations

from strata.engine.analysis.configuration import EXEC, HOST, TARGET, config_key, split_key
from strata.engine.loading.attr_check import NATIVE_ATTRS
from strata.engine.loading.labels import Label, TargetPattern
from strata.engine.loading.loader import Loader
from strata.engine.loading.packages import Packages
from strata.engine.loading.targets import NoSuchTarget, TargetDecl
from strata.errors import UserError


class TargetError(UserError):
    """An analysis error of one target; `--keep_going` skips the requested targets needing it."""

    def __init__(self, message: str, *, where: str | None, label: str) -> None:
        super().__init__(message, where=where)
        self.label = label


class TargetGraph:
    """The configured targets reachable from the requested ones, and their order."""

    def __init__(self, loader: Loader, packages: Packages) -> None:
        self.loader = loader
        self.packages = packages
        self.decls: dict[str, TargetDecl] = {}
        """The declaration of each target analysed, by label (set by the driver)."""

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
