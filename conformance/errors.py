"""Harness-side names of the one exception tree (defined in :mod:`adapters.api`)."""

from llorch_conformance.adapters.api import (
    ConfigError,
    ConformanceFailure,
    HarnessError,
    LlorchError,
    UsageError,
)

__all__ = ["ConfigError", "ConformanceFailure", "HarnessError", "LlorchError", "UsageError"]
