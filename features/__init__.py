"""The conformance suite's Gherkin features, shipped as package data.

One folder per area; every scenario is tagged with the catalogue IDs it proves
(``conformance.list requirements``). Locate them with :func:`features_root` — via
``importlib.resources``, so an installed distribution finds them as well as a source tree.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["AREAS", "feature_files", "features_root"]

AREAS = (
    "cancel",
    "contract",
    "determinism",
    "engines",
    "errors",
    "harness",
    "host",
    "http_util",
    "observability",
    "oracle",
    "orchestrator",
    "proof_bundle",
    "security",
    "stream",
    "worker",
)


def features_root() -> Path:
    """The directory holding the area folders (a real path: the suite needs files on disk)."""
    return Path(str(files("llorch_conformance.features")))


def feature_files() -> list[Path]:
    """Every ``.feature`` file of the suite, sorted."""
    return sorted(features_root().glob("*/*.feature"))
