"""leadrisk: loadtest package."""
