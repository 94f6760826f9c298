"""Analysis: configured targets, the actions they register and the graph of those actions.

Runs rule implementations on what loading declared (natives, runfiles, output groups,
build settings' values) and stores the result with everything it read (analysis_cache).
It imports loading and the shared records, never execution or the cache.
"""
