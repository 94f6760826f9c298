"""Loading the engine's large stored state without the cyclic garbage collector.

A no-op build unpickles its analysis (every action, its inputs and outputs)
and its action records (every action's result): hundreds of thousands of
objects at closure size. Allocating them wakes the collector every 700
objects to scan what is young, although none of it is garbage; and once
loaded they live until the command ends. So they are loaded with the
collector off, then frozen (`gc.freeze`): later collections skip them, and
reference counting still frees what is dropped.
"""

from __future__ import annotations

import gc
import io
import pickle
from typing import Any


def load(f: io.BytesIO) -> Any:
    """`pickle.load(f)`, without collector passes over what it makes (see above)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return pickle.load(f)
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def loads(data: bytes) -> Any:
    return load(io.BytesIO(data))
