"""Fixtures of the rbee tests: a mock queen with a small interval/timeout, a bridge over MockAdapter.

Every server is real (uvicorn in a thread on a pre-bound loopback port 0); every wait is bounded
(``QueenState.wait_for``, :func:`wait_until`), never a fixed sleep.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from llorch_conformance.adapters.mock import MockAdapter
from llorch_conformance.adapters.rbee_worker import BridgeConfig, WorkerServer, run_worker_bridge
from llorch_conformance.mock_engines.rbee import MockQueen, run_mock_queen

INTERVAL_S = 0.05
TIMEOUT_S = 0.3
WAIT_S = 10.0


def wait_until(pred: Callable[[], Any], within_s: float = WAIT_S, what: str = "condition") -> Any:
    """Poll ``pred`` (cheap, in-process) until truthy; AssertionError after ``within_s``."""
    deadline = time.monotonic() + within_s
    ev = threading.Event()
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {within_s:g} s")
        ev.wait(0.005)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def queen() -> Iterator[MockQueen]:
    with run_mock_queen(interval_s=INTERVAL_S, timeout_s=TIMEOUT_S) as q:
        yield q


def bridge_config(queen: MockQueen | None, **kw: Any) -> BridgeConfig:
    base: dict[str, Any] = {
        "queen_url": None if queen is None else queen.url,
        "heartbeat_interval_s": INTERVAL_S,
        "heartbeat_seed": 7,
        "readiness_poll_s": 0.01,
        "health_poll_s": 0.05,
        "drain_s": 2.0,
    }
    base.update(kw)
    return BridgeConfig(**base)


@pytest.fixture
def mock_adapter() -> MockAdapter:
    return MockAdapter(seed=0)


@pytest.fixture
def worker(queen: MockQueen, mock_adapter: MockAdapter) -> Iterator[WorkerServer]:
    with run_worker_bridge(mock_adapter, bridge_config(queen)) as w:
        wait_until(lambda: w.bridge.status.value == "ready", what="ready")
        yield w
