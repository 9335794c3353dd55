"""leadrisk: training package."""
