"""Deliberately broken adapters: the harness's self-test (each must fail the right requirement).

Every factory wraps the real llama.cpp adapter and breaks exactly one rule, the way real adapters
get it wrong. ``EXPECTED`` maps each factory to the requirement the suite must fail it on; the
self-test runs ``llorch-conformance run --adapter broken_adapters:<name> --dialect llamacpp``
restricted to that requirement and checks the verdict.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from adapters import BUILTIN_ADAPTERS
from adapters.api import Capabilities, TaskRequest, TokenEvent, WorkerHealth, WorkerProps

__all__ = ["EXPECTED"]

_LOG = logging.getLogger("vendor.broken_adapter")


class _Wrapper:
    """Delegates everything to the real adapter; subclasses override the broken part."""

    def __init__(self, base_url: str, **config: Any) -> None:
        self.config = config
        self.inner = BUILTIN_ADAPTERS["llamacpp"](base_url, **config)

    async def health(self) -> WorkerHealth:
        return await self.inner.health()

    async def props(self) -> WorkerProps:
        return await self.inner.props()

    async def capabilities(self) -> Capabilities:
        return await self.inner.capabilities()

    async def engine_version(self) -> str:
        return await self.inner.engine_version()

    async def cancel(self, task_id: str) -> None:
        await self.inner.cancel(task_id)

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        return self.inner.submit(request)

    async def aclose(self) -> None:
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()


class DropLastToken(_Wrapper):
    async def _gen(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        held: TokenEvent | None = None
        async for ev in self.inner.submit(request):
            if ev.kind == "token":
                if held is not None:
                    yield held
                held = ev
                continue
            held = None  # the bug: the last token is lost when the stream winds down
            yield ev

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        return self._gen(request)


class NeverStarted(_Wrapper):
    async def _gen(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        async for ev in self.inner.submit(request):
            if ev.kind != "started":
                yield ev

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        return self._gen(request)


class RetriesAfterFirstByte(_Wrapper):
    """Hides a mid-stream failure by silently re-submitting and continuing."""

    async def _gen(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        emitted = 0
        async for ev in self.inner.submit(request):
            if ev.kind == "error" and emitted > 0:
                again = TaskRequest.from_dict(
                    {**request.to_dict(), "task_id": request.task_id + "-retry"}
                )
                n = 0
                async for ev2 in self.inner.submit(again):
                    if ev2.kind == "token":
                        if n >= emitted:
                            yield TokenEvent.token(ev2.data["t"], n)
                        n += 1
                    elif ev2.kind in ("end", "error", "metrics"):
                        yield ev2
                return
            if ev.kind == "token":
                emitted += 1
            yield ev

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        return self._gen(request)


class LogsApiKey(_Wrapper):
    def __init__(self, base_url: str, **config: Any) -> None:
        super().__init__(base_url, **config)
        _LOG.info("connecting to %s with api key %s", base_url, config.get("api_key"))


class IgnoresCancel(_Wrapper):
    async def cancel(self, task_id: str) -> None:
        return None  # the bug: acknowledged, nothing stops


class Maps429NonRetriable(_Wrapper):
    async def _gen(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        async for ev in self.inner.submit(request):
            if ev.kind == "error" and ev.data.get("code") == "POOL_UNAVAILABLE":
                data = {**ev.data, "retriable": False}
                data.pop("retry_after_ms", None)
                yield TokenEvent("error", data)
            else:
                yield ev

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        return self._gen(request)


class DuplicatesTokenAfterReset(_Wrapper):
    """After a reset it replays the last token (same index) before the error."""

    async def _gen(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        last: TokenEvent | None = None
        async for ev in self.inner.submit(request):
            if ev.kind == "error" and ev.data.get("code") == "WORKER_RESET" and last is not None:
                yield last
            if ev.kind == "token":
                last = ev
            yield ev

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        return self._gen(request)


class WrongErrorCode(_Wrapper):
    async def _gen(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        async for ev in self.inner.submit(request):
            if ev.kind == "error":
                yield TokenEvent("error", {**ev.data, "code": "INTERNAL"})
            else:
                yield ev

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        return self._gen(request)


class BuffersWholeBody(_Wrapper):
    async def _gen(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        events = [ev async for ev in self.inner.submit(request)]
        for ev in events:
            yield ev

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        return self._gen(request)


class NoTimeouts(_Wrapper):
    """Ignores the configured timeouts: a silent engine holds the caller for as long as it likes."""

    def __init__(self, base_url: str, **config: Any) -> None:
        from adapters.http_util import HttpClientConfig

        config = {
            **config,
            "http": HttpClientConfig(first_byte_timeout_s=60.0, inter_chunk_timeout_s=60.0),
        }
        super().__init__(base_url, **config)


class RaisesInsteadOfError(_Wrapper):
    async def _gen(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        async for ev in self.inner.submit(request):
            if ev.kind == "error":
                raise RuntimeError(f"upstream failed: {ev.data.get('message')}")
            yield ev

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        return self._gen(request)


def _factory(cls: type[_Wrapper]) -> Any:
    def make(base_url: str, **config: Any) -> _Wrapper:
        return cls(base_url, **config)

    make.__name__ = cls.__name__
    return make


drop_last_token = _factory(DropLastToken)
never_started = _factory(NeverStarted)
retries_after_first_byte = _factory(RetriesAfterFirstByte)
logs_api_key = _factory(LogsApiKey)
ignores_cancel = _factory(IgnoresCancel)
maps_429_non_retriable = _factory(Maps429NonRetriable)
duplicates_token_after_reset = _factory(DuplicatesTokenAfterReset)
wrong_error_code = _factory(WrongErrorCode)
buffers_whole_body = _factory(BuffersWholeBody)
no_timeouts = _factory(NoTimeouts)
raises_instead_of_error = _factory(RaisesInsteadOfError)


def explodes(base_url: str, **config: Any) -> Any:
    """Not an adapter bug but a broken factory: the harness must report an error, not a fail."""
    raise RuntimeError("factory exploded")


#: factory name -> requirement the suite must fail it on
EXPECTED: dict[str, str] = {
    "drop_last_token": "WA-INT-3001",
    "never_started": "WA-INT-3001",
    "retries_after_first_byte": "WA-INT-3008",
    "logs_api_key": "WA-INT-3005",
    "ignores_cancel": "WA-INT-3002",
    "maps_429_non_retriable": "WA-INT-3003",
    "duplicates_token_after_reset": "WA-INT-3008",
    "wrong_error_code": "ADAPT-3002",
    "buffers_whole_body": "HTU-PERF-1302",
    "no_timeouts": "ADAPT-3005",
    "raises_instead_of_error": "ADAPT-3002",
}
