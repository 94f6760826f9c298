"""Fuzzers for strata's parsers of untrusted input (run with `tools/fuzz`).

One module per family, each with a `TARGETS` list (see `harness.Target`):
`images` (docker-archive and OCI layout readers), `layers` (the tar readers
of layers), `cache` (REAPI and disk cache entries), `registry` (registry
answers) and `requests` (action requests).
"""

from __future__ import annotations

from fuzzers import cache, images, layers, registry, requests
from fuzzers.harness import Target

TARGETS: dict[str, Target] = {
    t.name: t for module in (images, layers, cache, registry, requests) for t in module.TARGETS
}
