"""leadrisk: leadrisk package."""
