"""Loading: labels, the Starlark environment, and evaluating WORKSPACE, BUILD and .bzl files.

The first phase. It imports only the engine's shared records (`strata.engine.digests`,
`redact`), never analysis, execution or the cache.
"""
