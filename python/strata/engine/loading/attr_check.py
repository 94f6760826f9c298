"""Attribute schemas and type checks: a rule call's values against its rule's schema.

Every rule call is checked while its BUILD file loads, so an error names the
BUILD line that made it. Labels are made canonical here (and their repository
must exist); outputs become labels in the rule's package. The common attributes
every rule has, and the schemas of the native rules strata implements, live here
with the checks that read them.
"""

from __future__ import annotations

from typing import Any

from strata.engine.loading.labels import Label
from strata.engine.loading.loader import Loader
from strata.errors import UserError

LABEL_TYPES = {"label", "label_list", "label_keyed_string_dict"}
COMMON: dict[str, str] = {
    "name": "string",
    "visibility": "any",
    "tags": "string_list",
    "testonly": "bool",
    "deprecation": "string",
    "features": "string_list",
    "licenses": "any",
    "compatible_with": "any",
    "restricted_to": "any",
    "target_compatible_with": "any",
    "exec_compatible_with": "any",
    "exec_properties": "any",
    "generator_name": "any",
    "generator_function": "any",
    "generator_location": "any",
}
EXECUTABLE_COMMON = {"args": "string_list", "env": "string_dict"}
TEST_COMMON = {
    "size": "string",
    "timeout": "string",
    "flaky": "bool",
    "shard_count": "int",
    "local": "bool",
    "env_inherit": "string_list",
}
NATIVE_ATTRS: dict[str, dict[str, str]] = {
    "genrule": {
        "srcs": "label_list",
        "outs": "output_list",
        "cmd": "string",
        "cmd_bash": "string",
        "tools": "label_list",
        "exec_tools": "label_list",
        "executable": "bool",
        "output_to_bindir": "bool",
        "message": "string",
        "local": "bool",
        "stamp": "any",
        "toolchains": "any",
    },
    "filegroup": {"srcs": "label_list", "data": "label_list", "output_group": "string"},
    "alias": {"actual": "label"},
    "sh_binary": {
        "srcs": "label_list",
        "data": "label_list",
        "deps": "label_list",
        **EXECUTABLE_COMMON,
    },
    "sh_test": {
        "srcs": "label_list",
        "data": "label_list",
        "deps": "label_list",
        **EXECUTABLE_COMMON,
        **TEST_COMMON,
    },
    "py_binary": {
        "srcs": "label_list",
        "main": "label",
        "deps": "label_list",
        "data": "label_list",
        "imports": "string_list",
        "python_version": "string",
        "srcs_version": "string",
        "legacy_create_init": "any",
        **EXECUTABLE_COMMON,
    },
    "config_setting": {
        "constraint_values": "string_list",
        "values": "string_dict",
        "define_values": "string_dict",
        "flag_values": "any",
    },
}
MANDATORY = {"alias": {"actual"}, "genrule": {"outs"}}
_TYPE_NAMES = {
    "string": "a string",
    "string_list": "a list of strings",
    "string_dict": "a dict of string to string",
    "string_list_dict": "a dict of string to list",
    "int": "an integer",
    "int_list": "a list of integers",
    "bool": "a boolean",
    "label": "a label string",
    "label_list": "a list of label strings",
    "label_keyed_string_dict": "a dict of label string to string",
    "output": "a file name",
    "output_list": "a list of file names",
}


EMPTY: dict[str, Any] = {
    "string": "",
    "string_list": [],
    "string_dict": {},
    "int": 0,
    "int_list": [],
    "bool": False,
    "label_list": [],
    "label_keyed_string_dict": {},
    "output_list": [],
    "string_list_dict": {},
}


def _type_error(label: Label, kind: str, attr: str, kind_of: str, value: Any) -> UserError:
    return UserError(
        f"{label}: attribute '{attr}' of {kind} must be {_TYPE_NAMES.get(kind_of, kind_of)} "
        f"(got {value!r} of type {_starlark_type(value)}); fix the value in the BUILD file"
    )


def _starlark_type(value: Any) -> str:
    return {
        bool: "bool",
        int: "int",
        str: "string",
        list: "list",
        dict: "dict",
        type(None): "NoneType",
    }.get(type(value), type(value).__name__)


def _as_label(value: Any, base: tuple[str, str], where: str, loader: Loader) -> Label | None:
    if isinstance(value, dict) and "canonical" in value:
        text = value["canonical"]
    elif isinstance(value, str):
        text = value
    else:
        return None
    lab = Label.parse(text, repo=base[0], package=base[1], where=where)
    repo = loader.canonical_repo(lab.repo)
    if not loader.knows_repo(repo):
        # now, while the BUILD line that names it is known (analysis would only know the target)
        raise loader.no_such_repository(repo, text, where)
    return lab if repo == lab.repo else Label(repo, lab.package, lab.name)


def check(
    label: Label,
    kind: str,
    attr: str,
    spec: dict[str, Any],
    value: Any,
    base: tuple[str, str],
    loader: Loader,
) -> Any:
    t = spec["type"]

    def err() -> UserError:  # made only when raised: `value` may be a large dict
        return _type_error(label, kind, attr, t, value)

    where = f"{label}: attribute '{attr}'"
    if t == "any":
        return value
    if t == "string":
        if not isinstance(value, str):
            raise err()
    elif t == "bool":
        if not (isinstance(value, bool) or value in (0, 1)):
            raise err()
        value = bool(value)
    elif t == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise err()
        if not -(1 << 31) <= value < 1 << 31:  # as Bazel's attr.int: Java int
            raise UserError(
                f"{where} of {kind} must be in the signed 32-bit range (got {value}); "
                "use a number from -2147483648 to 2147483647"
            )
    elif t in ("string_list", "int_list"):
        want = str if t == "string_list" else int
        if not isinstance(value, list) or not all(
            isinstance(v, want) and not isinstance(v, bool) for v in value
        ):
            raise err()
    elif t == "string_dict":
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise err()
    elif t == "string_list_dict":
        if not isinstance(value, dict):
            raise err()
    elif t == "label":
        lab = _as_label(value, base, where, loader)
        if lab is None:
            raise err()
        return lab
    elif t == "label_list":
        if not isinstance(value, list):
            raise err()
        labs = [_as_label(v, base, where, loader) for v in value]
        if any(lab is None for lab in labs):
            raise err()
        return labs
    elif t == "label_keyed_string_dict":
        if not isinstance(value, dict):
            raise err()
        pairs = []
        for k, v in value.items():
            lab = _as_label(k, base, where, loader)
            if lab is None or not isinstance(v, str):
                raise err()
            pairs.append((lab, v))
        return pairs
    elif t == "output":
        if not isinstance(value, str) or ":" in value.lstrip(":"):
            raise err()
        return label.sibling(value.lstrip(":"))
    elif t == "output_list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise err()
        return [label.sibling(v.lstrip(":")) for v in value]
    values = spec.get("values") or []
    if values and value not in values:
        raise UserError(
            f"{label}: attribute '{attr}' of {kind} must be one of {values} (got {value!r}); "
            "pick one of the allowed values"
        )
    return value
