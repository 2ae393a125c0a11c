"""Features of the determinism area (package data)."""
