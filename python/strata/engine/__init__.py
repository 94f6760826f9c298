"""The embedded Bazel-like engine: load, analyse, schedule, execute, cache.

One package per phase, each importing only the ones before it: `loading`
(labels, Starlark, WORKSPACE/BUILD/.bzl) → `analysis` (configured targets,
actions, the action graph) → `execution` (keys, scheduler, executor, tests),
which reads and writes results through `cache` (the interface and its
backends). The modules here are what every phase shares (the action record,
source digests, the output base, redaction, unpickling) and the drivers above
them all (build.py, bzl_api.py/bzl_docs.py); none of the shared ones imports
a phase.

Nothing in here knows about container images.
"""
