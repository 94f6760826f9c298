"""Reading and checking an action's JSON request.

Requests are written by rules (Bazel or the embedded engine) as one JSON
object with sorted keys and a `schema_version`. Checks here turn a malformed
request into a one-line `UserError` naming the request file and the key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from strata.errors import UserError

SCHEMA_VERSION = 1


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
