"""Features of the http util area (package data)."""
