"""Execution: action keys, the scheduler, the executor and its sandbox and workers, reports.

Runs the action graph analysis made, through the cache interface (`strata.engine.cache`),
and runs tests above the scheduler (test_runner). It imports analysis, loading and the
cache; nothing imports it but the drivers (build.py, the CLI).
"""
