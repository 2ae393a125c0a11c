"""Scripted in-process adapters for host tests: each submit plays the next script."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from llorch_conformance.adapters.api import (
    Capabilities,
    TaskRequest,
    TokenEvent,
    WorkerHealth,
    WorkerProps,
    error_for_status,
)

Script = list[TokenEvent | Callable[[], Any]]


def ok(n: int = 3, text: str = "ab") -> Script:
    return [
        TokenEvent.started(engine_version="fake-1"),
        *[TokenEvent.token(text[i % len(text)], i) for i in range(n)],
        TokenEvent.end(tokens_out=n, decode_time_ms=1, stop_reason="length"),
    ]


def fail(status: int, retry_after_ms: int | None = None, *, started: bool = True) -> Script:
    head: Script = [TokenEvent.started(engine_version="fake-1")] if started else []
    return [
        *head,
        TokenEvent.error(
            error_for_status(status, f"upstream {status}", retry_after_ms=retry_after_ms)
        ),
    ]


@dataclass
class FakeAdapter:
    name: str = "fake"
    scripts: list[Script] = field(default_factory=list)
    default: Script = field(default_factory=ok)
    ready: bool = True
    slots: int = 1
    submits: list[TaskRequest] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    gate: anyio.Event | None = None  # when set, streams pause after the first token until set
    # The same for tests whose adapter runs in a server thread: set it from the test thread.
    thread_gate: threading.Event | None = None

    async def health(self) -> WorkerHealth:
        return WorkerHealth(live=True, ready=self.ready)

    async def props(self) -> WorkerProps:
        return WorkerProps(slots_total=self.slots, slots_free=self.slots)

    async def capabilities(self) -> Capabilities:
        return Capabilities(
            engine=self.name, engine_version="fake-1", ctx_max=4096, slots=self.slots
        )

    async def engine_version(self) -> str:
        return "fake-1"

    async def cancel(self, task_id: str) -> None:
        self.cancels.append(task_id)

    async def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        self.submits.append(request)
        script = self.scripts.pop(0) if self.scripts else self.default
        tokens = 0
        for item in script:
            if callable(item) and not isinstance(item, TokenEvent):
                item()
                continue
            yield item
            if item.kind == "token":
                tokens += 1
                if tokens == 1 and self.gate is not None:
                    await self.gate.wait()
                if tokens == 1 and self.thread_gate is not None:
                    await anyio.to_thread.run_sync(self.thread_gate.wait, abandon_on_cancel=True)
