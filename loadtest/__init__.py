"""leadrisk: loadtest package. How we know the service holds: locust runs, baseline, summaries."""

TARGETS = ("leadrisk", "leadrisk_unbatched", "baseline")
