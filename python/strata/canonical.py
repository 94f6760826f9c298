"""Canonical JSON: the one way every strata output serialises JSON.

Sorted keys, no insignificant white space, UTF-8. Two builds of the same
thing must produce the same bytes, so nothing else may call `json.dumps` for
an output that is hashed. `read_json` reads a JSON input another action or
rule wrote, with one error shape for a file that is missing or malformed;
`parse_json` does the same for bytes already read (a layout's blob).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from strata.errors import UserError


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def read_json(path: str | os.PathLike[str], what: str, fix: str, where: str) -> Any:
    """The JSON value of the input file `path`; if it cannot be read or parsed, the
    UserError `cannot read <what> (got <path>: <why>); <fix>`."""
    try:
        return json.loads(Path(path).read_bytes())
    except (OSError, ValueError, RecursionError) as e:
        raise UserError(f"cannot read {what} (got {path}: {e}); {fix}", where=where) from None


def parse_json(data: bytes, what: str, fix: str, where: str) -> Any:
    """The JSON value of the bytes `data` (a blob named by `what`); if they do not parse,
    the UserError `<what> is not JSON (got <why>); <fix>`."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:
        raise UserError(f"{what} is not JSON (got {e!s:.80}); {fix}", where=where) from None
