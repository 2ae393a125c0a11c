"""Features of the security area (package data)."""
