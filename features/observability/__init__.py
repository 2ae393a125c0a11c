"""Features of the observability area (package data)."""
