"""The conformance runner: requirement catalogue, targets, pytest plugin and the CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("llorch-conformance")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
