"""leadrisk: monitoring package."""
