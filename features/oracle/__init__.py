"""Features of the oracle area (package data)."""
