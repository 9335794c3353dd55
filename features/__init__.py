"""leadrisk: features package."""
