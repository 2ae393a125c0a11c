"""Features of the stream area (package data)."""
