"""leadrisk: features sources package."""
