"""leadrisk: loadtest package. How we know the service holds: locust runs, baseline, summaries."""

TARGETS = ("baseline", "leadrisk_unbatched", "leadrisk")
PLAN_ENV = "LOADTEST_PLAN"
