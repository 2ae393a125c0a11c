"""Features of the contract area (package data)."""
