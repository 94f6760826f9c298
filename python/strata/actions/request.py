"""Reading and checking an action's JSON request.

Requests are written by rules (Bazel or the embedded engine) as one JSON
object with sorted keys and a `schema_version`. Checks here turn a malformed
request into a one-line `UserError` naming the request file and the key.

Keys several actions share are read here too: the ownership and time of a
layer's entries (`uid`, `gid`, `uname`, `gname`, `mtime`), and a list of path
mapping items (the `contents` of a store path, the `files` of a customisation
layer), applied in order, a later item replacing an earlier one:

    {"src": P, "dest": D, "mode"?: "0755"}   file, symlink or directory tree
    {"dest": D, "type": "dir", "mode"?: "1777"}
    {"dest": D, "type": "symlink", "target": T}
    {"dest": D, "type": "file", "content": TEXT, "mode"?: "0644"}

An action's request is a frozen dataclass deriving from `Request`: its fields
are the request's keys, and `from_json` checks and reads them (see there).
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Self

from strata.canonical import read_json
from strata.errors import UserError
from strata.oci.compress import check_compressor
from strata.oci.layer import Ownership
from strata.oci.tarwriter import check_id
from strata.oci.tree import LayerTree
from strata.store.closure import PathInfo
from strata.store.path import DEFAULT_STORE_DIR, check_store_dir

SCHEMA_VERSION = 1


def base_blobs(req: dict[str, Any], where: str) -> list[Path]:
    """`base_blobs`: directories of a shallow base's layer blobs (`BaseBlobs` outputs),
    for actions that write layer bytes; none by default."""
    dirs = req.get("base_blobs", [])
    if not isinstance(dirs, list) or not all(isinstance(d, str) for d in dirs):
        raise UserError(
            f"base_blobs must be a list of directory paths (got {str(dirs)[:80]}); "
            "pass the BaseBlobs outputs of the image's shallow bases",
            where=where,
        )
    return [Path(d) for d in dirs]


def load_request(arg: str) -> tuple[dict[str, Any], str]:
    """Parse `@path/to/request.json` (or a bare path); return (request, where)."""
    path = arg[1:] if arg.startswith("@") else arg
    where = path
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(
            f"cannot read request file ({e.strerror}); pass @request.json", where=where
        ) from None
    except UnicodeDecodeError as e:
        raise UserError(
            f"request is not UTF-8 (got byte {e.object[e.start]:#04x} at offset {e.start}); "
            "write the request as UTF-8 JSON",
            where=where,
        ) from None
    try:
        req = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(
            f"line {e.lineno}: request is not valid JSON ({e.msg}); fix the file", where=where
        ) from None
    if not isinstance(req, dict):
        raise UserError(f"request must be a JSON object (got {type(req).__name__})", where=where)
    version = req.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UserError(
            f"unsupported schema_version (got {version!r}); this strata reads "
            f"schema_version {SCHEMA_VERSION}: rebuild the request with the same strata",
            where=where,
        )
    return req, where


def field(
    req: dict[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    where: str,
    default: Any = ...,
) -> Any:
    """Fetch `req[key]`, checking its JSON type; `default` makes it optional."""
    if key not in req:
        if default is ...:
            raise UserError(f"missing required key {key!r}", where=where)
        return default
    value = req[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise UserError(f"key {key!r} must be {names} (got {json.dumps(value)[:60]})", where=where)
    return value


def _parse_mode(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            mode = int(value, 8)
        except ValueError:
            mode = -1
        if 0 <= mode <= 0o7777:
            return mode
    raise UserError(f'mode must be an octal string like "0755" (got {value!r})', where=where)


OWNERSHIP_KEYS = ("gid", "gname", "mtime", "uid", "uname")


def read_store_dir(req: dict[str, Any], where: str) -> str:
    """`store_dir`, checked (default "/nix/store")."""
    return check_store_dir(
        field(req, "store_dir", str, where, DEFAULT_STORE_DIR), f"{where}: store_dir"
    )


def ownership(req: dict[str, Any], where: str) -> Ownership:
    """`uid`, `gid`, `uname`, `gname`, `mtime` of every entry (0, 0, "", "", 1)."""
    for key in ("uid", "gid"):
        check_id(field(req, key, int, where, 0), f"{where}: {key}")
    return Ownership(
        uid=field(req, "uid", int, where, 0),
        gid=field(req, "gid", int, where, 0),
        uname=field(req, "uname", str, where, ""),
        gname=field(req, "gname", str, where, ""),
        mtime=field(req, "mtime", int, where, 1),
    )


def plan_tree(req: dict[str, Any], where: str) -> LayerTree:
    """The path mapping items of `req["contents"]` (see above), planned as one tree."""
    tree = LayerTree(
        keep_dirlinks=field(req, "keep_dirlinks", bool, where, False),
        execroot=os.getcwd(),  # actions run in the execroot, under both engines
    )
    for i, item in enumerate(field(req, "contents", list, where)):
        at = f"{where}: contents[{i}]"
        if not isinstance(item, dict):
            raise UserError(f"must be an object (got {item!r})", where=at)
        kind = field(item, "type", str, at, "path")
        dest = field(item, "dest", str, at)
        mode = _parse_mode(item.get("mode"), at)
        if kind == "path":
            tree.add_path(field(item, "src", str, at), dest, mode)
        elif kind == "dir":
            tree.add_dir(dest, mode, at)
        elif kind == "symlink":
            tree.add_symlink(dest, field(item, "target", str, at), at)
        elif kind == "file":
            content = field(item, "content", str, at).encode("utf-8")
            tree.add_bytes(dest, content, 0o644 if mode is None else mode, at)
        else:
            raise UserError(
                f"unknown content type (got {kind!r}); use path, dir, symlink or file", where=at
            )
    return tree


def check_keys(req: dict[str, Any], allowed: set[str] | tuple[str, ...], where: str) -> None:
    for key in req:
        if key not in allowed:
            raise UserError(
                f"unknown request key (got {key!r}); allowed keys: {', '.join(sorted(allowed))}",
                where=where,
            )


def read_info(path: str, where: str) -> dict[str, Any]:
    """A StorePath `info` file (also written by nix_store_import)."""
    info = read_json(path, "store path info", "pass a StorePath info output", where)
    if not isinstance(info, dict) or "path" not in info or "closure" not in info:
        raise UserError(f"not a store path info file (got {path})", where=where)
    return info


Reader = Callable[[dict[str, Any], str], Any]
"""A custom reader for one key: (request, where) -> value."""


def read_with(reader: Reader, keys: tuple[str, ...] = ()) -> Any:
    """A `Request` field read by `reader` instead of by its annotation; `keys`: the
    request keys it reads, if not the field's name (`ownership`: `OWNERSHIP_KEYS`)."""
    return dataclasses.field(metadata={"read": reader, "keys": keys})


def json_kind(annotation: Any) -> type | tuple[type, ...]:
    """The JSON type(s) `field` checks for a field annotated `annotation`:
    str, int, bool, float, list[...], dict[...], or one of them `| None`."""
    if isinstance(annotation, types.UnionType):
        kinds: list[type] = []
        for arg in typing.get_args(annotation):
            kind = json_kind(arg)
            kinds.extend(kind if isinstance(kind, tuple) else (kind,))
        return tuple(kinds)
    origin = typing.get_origin(annotation) or annotation
    if origin in (str, int, bool, float, list, dict, type(None)):
        return typing.cast(type, origin)
    raise TypeError(f"no JSON type for a request field annotated {annotation!r}")


def compressor_field(default: str) -> Any:
    """A `compressor` field, checked: "none" | "gzip" | "zstd", `default` if absent."""

    def read(req: dict[str, Any], where: str) -> str:
        return check_compressor(field(req, "compressor", str, where, default), where)

    return read_with(read)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Request:
    """Base of an action's request: one frozen dataclass per mnemonic.

    `from_json` allows exactly the fields' names plus `schema_version`, then
    reads each field in declaration order with `field`: the JSON type comes
    from the annotation, a field with a default is optional, and a field
    made with `read_with` is read by its own reader. Subclasses are
    `@dataclass(frozen=True, kw_only=True)`, so fields can be declared in the
    order they are read (the order errors are found in), defaults or not.
    """

    schema_version: ClassVar[int] = SCHEMA_VERSION
    where_key: ClassVar[str] = ""
    """A str field whose value, if not empty, names the fields read after it in
    errors instead of the request file: the label the user wrote (`//app:push`)."""

    @classmethod
    def keys(cls) -> set[str]:
        names = {"schema_version"}
        for f in dataclasses.fields(cls):
            names.update(f.metadata.get("keys") or (f.name,))
        return names

    @classmethod
    def from_json(cls, req: dict[str, Any], where: str) -> Self:
        check_keys(req, cls.keys(), where)
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            reader: Reader | None = f.metadata.get("read")
            if reader is not None:
                values[f.name] = reader(req, where)
                continue
            default: Any = ...
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            values[f.name] = field(req, f.name, json_kind(hints[f.name]), where, default)
            if f.name == cls.where_key:
                where = values[f.name] or where
        return cls(**values)


def closure_infos(infos: list[dict[str, Any]], where: str) -> dict[str, PathInfo]:
    out: dict[str, PathInfo] = {}
    for info in infos:
        for item in info["closure"]:
            p = PathInfo.from_json(item, where)
            out[p.path] = p
    return out
