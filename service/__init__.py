"""leadrisk: service package."""
