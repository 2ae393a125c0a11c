"""A vendor-style adapter factory that insists on the harness's documented config keys.

It wraps the built-in llama.cpp adapter; its factory refuses to build without ``pool_id`` and
``replica_id`` (the contract says the harness always passes them), and records what it got in
``$LLORCH_TEST_CONFIG_LOG`` (one JSON line per call) so a test can read it back.
"""

from __future__ import annotations

import json
import os
from typing import Any

from llorch_conformance.adapters import BUILTIN_ADAPTERS

__all__ = ["make"]

__version__ = "0.7.1"


def make(base_url: str, **config: Any) -> Any:
    missing = [k for k in ("pool_id", "replica_id", "http", "retry") if k not in config]
    if missing:
        raise TypeError(f"factory config lacks {missing}")
    log = os.environ.get("LLORCH_TEST_CONFIG_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(
                json.dumps({"pool_id": config["pool_id"], "replica_id": config["replica_id"]})
                + "\n"
            )
    return BUILTIN_ADAPTERS["llamacpp"](base_url, **config)
