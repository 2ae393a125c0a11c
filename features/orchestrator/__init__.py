"""Features of the orchestrator facade area (package data)."""
