"""Features of the cancel area (package data)."""
