"""Fixtures of the adapter tests: the anyio backend, request builders and a log capture."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest

from llorch_conformance.adapters.api import TaskRequest, TokenEvent

#: Every test's hard upper bound: a bug fails the test, it never hangs the run.
TEST_TIMEOUT_S = 15.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_request(**overrides: Any) -> TaskRequest:
    fields: dict[str, Any] = {
        "task_id": "t-1",
        "session_id": "s-1",
        "workload": "completion",
        "model_ref": "hf:mock/tiny",
        "engine": "llamacpp",
        "ctx": 4096,
        "priority": "interactive",
        "max_tokens": 12,
        "deadline_ms": 10_000,
        "seed": 7,
        "determinism": "strict",
        "prompt": "Hello there",
    }
    fields.update(overrides)
    return TaskRequest(**fields)


async def collect(
    stream: AsyncIterator[TokenEvent], *, limit_s: float = TEST_TIMEOUT_S
) -> list[TokenEvent]:
    """All events of a stream, bounded in time."""
    out: list[TokenEvent] = []
    with anyio.fail_after(limit_s):
        async for ev in stream:
            out.append(ev)
    return out


def terminal(events: list[TokenEvent]) -> TokenEvent:
    assert events, "empty stream"
    return events[-1]


class LogCapture(logging.Handler):
    """Collects the adapter log records (and their rendered text) of one test."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        from llorch_conformance.adapters._observability import JsonLogFormatter

        fmt = JsonLogFormatter()
        return "\n".join(fmt.format(r) for r in self.records)

    def actions(self) -> list[str]:
        return [getattr(r, "llorch", {}).get("action", "") for r in self.records]


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    handler = LogCapture()
    logger = logging.getLogger("llorch.adapters")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
