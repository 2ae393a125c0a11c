"""Features of the harness area (package data)."""
