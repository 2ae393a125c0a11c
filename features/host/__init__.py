"""Features of the adapter host area (package data)."""
