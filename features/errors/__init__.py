"""Features of the errors area (package data)."""
