"""`select()`: resolved while loading, against strata's one configuration.

strata builds for one configuration (the host's, with Bazel's defaults), so the
branch a `select()` takes is known as soon as the BUILD file calls it. A key is a
platform constraint, a `config_setting` (through aliases), or the default;
among several matches the most specific wins, as in Bazel 4.
"""

from __future__ import annotations

import platform
from typing import Any, Protocol

from strata.engine.loading.build_settings import OptionError, convert
from strata.engine.loading.labels import Label
from strata.engine.loading.loader import Loader
from strata.engine.loading.targets import Package, TargetDecl
from strata.engine.outputbase import host_cpu
from strata.errors import UserError


class PackagesView(Protocol):
    """What resolving a `select()` needs of the packages being loaded."""

    loader: Loader

    def current(self, what: str) -> Package:
        """The package whose BUILD file is being evaluated."""
        ...

    def target(self, label: Label, *, where: str = "") -> TargetDecl:
        """The declaration of `label`, loading its package if needed."""
        ...

    def setting_value(self, decl: TargetDecl) -> Any:
        """`ctx.build_setting_value` of build setting `decl`."""
        ...


def select(packages: PackagesView, conditions: Any, no_match_error: Any) -> Any:
    """`select()`: the value of the one condition strata's configuration meets."""
    pkg = packages.current("select")
    if not isinstance(conditions, dict) or not conditions:
        raise UserError(
            f"select() needs a non-empty dict of condition to value (got {conditions!r}); "
            'e.g. select({"//conditions:default": ...})'
        )
    machine = platform.machine()
    cpu = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(
        machine.lower(), machine
    )
    true_labels = {
        "@platforms//os:linux",
        f"@platforms//cpu:{cpu}",
        "@bazel_tools//src/conditions:linux",
        f"@bazel_tools//src/conditions:linux_{cpu}",
    }
    if cpu == "x86_64":
        true_labels.add("@platforms//cpu:x86_64")
    default = "//conditions:default"
    matched: list[tuple[Any, Any, frozenset[str]]] = []
    for key, value in conditions.items():
        where = f"select key {key!r}"
        lab = Label.parse(key, repo=pkg.repo, package=pkg.name, where=where)
        lab = Label(packages.loader.canonical_repo(lab.repo), lab.package, lab.name)
        text = str(lab)
        if key == default or text in (default, "@bazel_tools//conditions:default"):
            continue
        if text in true_labels:
            matched.append((key, value, frozenset()))
        elif text.startswith(("@platforms//", "@bazel_tools//")):
            continue
        else:
            needs = _config_setting(packages, lab, true_labels, where)
            if needs is not None:
                matched.append((key, value, needs))
    # Bazel 4 picks the condition whose flag values include every other match's
    # (constraint values do not make a condition more specific).
    best = [m for m in matched if all(other[2] <= m[2] for other in matched)]
    if len(matched) > 1 and len(best) != 1:
        raise UserError(
            f"select() matches more than one condition (got {[k for k, _, _ in matched]}); "
            "make the conditions exclusive, or one a specialization of the other"
        )
    if matched:
        return best[0][1]
    if default in conditions:
        return conditions[default]
    raise UserError(
        no_match_error
        or f"select() has no condition matching this platform (got keys "
        f"{sorted(conditions)}); add a //conditions:default branch"
    )


def _config_setting(
    packages: PackagesView, label: Label, true_labels: set[str], where: str
) -> frozenset[str] | None:
    """What a config_setting requires, if strata's one configuration meets it, else None.

    strata builds with Bazel's defaults on the host: `--cpu` is the host's
    (k8, aarch64), `--compilation_mode` is fastbuild, no `--define`.
    """
    decl = _declared(packages, label, where, "config_setting")
    seen = [str(label)]
    while decl.kind == "alias":  # e.g. skylib's selects.config_setting_group
        label = decl.attrs["actual"]
        if str(label) in seen:
            raise UserError(
                f"{where}: select() key is an alias cycle (got "
                f"{' -> '.join([*seen, str(label)])}); point an alias at a config_setting"
            )
        seen.append(str(label))
        decl = _declared(packages, label, where, "config_setting")
    if decl.kind != "config_setting":
        raise UserError(
            f"{where}: select() keys must be config_setting targets or platform "
            f"constraints (got a {decl.kind} {label}); point the key at a config_setting"
        )
    flags = {"cpu": host_cpu(), "compilation_mode": "fastbuild", "host_cpu": host_cpu()}
    values = decl.attrs.get("values") or {}
    unknown = sorted(set(values) - set(flags) - {"define"} - set(_BOOL_OPTIONS))
    if unknown:
        raise UserError(
            f"{label}: config_setting on {unknown[0]!r} is not supported by strata (got "
            f"{values}); use values with cpu, compilation_mode or stamp, define_values, "
            "flag_values or constraint_values"
        )
    needs = {f"{k}={v}" for k, v in values.items()}
    needs |= {f"define:{k}={v}" for k, v in (decl.attrs.get("define_values") or {}).items()}
    constraints = set()
    for c in decl.attrs.get("constraint_values") or []:
        lab = Label.parse(c, repo=label.repo, package=label.package, where=str(label))
        constraints.add(str(lab))
    ok = all(
        _bool_option(k, v, label) == _BOOL_OPTIONS[k] if k in _BOOL_OPTIONS else flags[k] == v
        for k, v in values.items()
        if k != "define"
    )
    ok = ok and "define" not in values and not decl.attrs.get("define_values")
    ok = ok and constraints <= true_labels
    for flag, wanted in _flag_values(packages, decl, where):
        needs.add(f"flag:{flag}={wanted!r}")
        ok = (
            ok
            and packages.setting_value(_declared(packages, flag, where, "build setting")) == wanted
        )
    return frozenset(needs) if ok else None


def _declared(packages: PackagesView, label: Label, where: str, what: str) -> TargetDecl:
    """The declaration of `label`; in the package being loaded, it must come first."""
    current = packages.current("select")
    if (label.repo, label.package) == (current.repo, current.name):
        if label.name not in current.rules:
            raise UserError(
                f"{where}: {what} {label} is not declared before this select() "
                "(got a later or missing declaration); strata resolves select() while "
                f"loading, so declare the {what} above its first use"
            )
        return current.rules[label.name]
    return packages.target(label, where=where)


def _flag_values(packages: PackagesView, decl: TargetDecl, where: str) -> list[tuple[Label, Any]]:
    """A config_setting's `flag_values`: (build setting, the value it must have)."""
    raw = decl.attrs.get("flag_values") or {}
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise UserError(
            f"{decl.label}: attribute 'flag_values' of config_setting must be a dict of "
            f"label string to string (got {raw!r}); fix the value in the BUILD file"
        )
    out: list[tuple[Label, Any]] = []
    for text, wanted in raw.items():
        flag = Label.parse(
            text, repo=decl.label.repo, package=decl.label.package, where=str(decl.label)
        )
        flag = Label(packages.loader.canonical_repo(flag.repo), flag.package, flag.name)
        setting = _declared(packages, flag, where, "build setting")
        kind = (setting.schema.build_setting or {}).get("type") if setting.schema else None
        if kind is None:
            raise UserError(
                f"{decl.label}: flag_values key {text!r} is not a build setting (got a "
                f"{setting.kind}); use a target of a rule with build_setting = config.*()"
            )
        try:
            out.append((flag, convert(kind, wanted, f"{flag}={wanted}")))
        except OptionError as err:
            raise UserError(f"{decl.label}: attribute 'flag_values': {err.detail}") from None
    return out


_BOOL_OPTIONS = {"stamp": False}
"""Boolean options config_setting `values` may name, with Bazel's default."""


def _bool_option(name: str, text: str, label: Label) -> bool:
    low = text.lower()
    if low not in ("true", "1", "yes", "t", "y", "false", "0", "no", "f", "n"):
        raise UserError(
            f"{label}: config_setting value of {name!r} is not a boolean (got {text!r}); use 0 or 1"
        )
    return low in ("true", "1", "yes", "t", "y")
