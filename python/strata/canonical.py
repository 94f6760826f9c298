"""Canonical JSON: the one way every strata output serialises JSON.

Sorted keys, no insignificant white space, UTF-8. Two builds of the same
thing must produce the same bytes, so nothing else may call `json.dumps` for
an output that is hashed.
"""

from __future__ import annotations

import json
from typing import Any


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
