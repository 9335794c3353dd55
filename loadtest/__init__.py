"""How we know the service holds: locust runs, the Flask baseline, summaries and benchmarks.
Imports ``service``, ``monitoring``, ``features`` and ``core``."""

TARGETS = ("baseline", "leadrisk_unbatched", "leadrisk")
PLAN_ENV = "LOADTEST_PLAN"
