"""Features of the engines area (package data)."""
