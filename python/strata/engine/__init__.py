"""The embedded Bazel-like engine: load, analyse, schedule, execute, cache.

Nothing in here knows about container images.
"""
