"""Realistic broken variants of the vLLM adapter: each changes ONE behaviour (issue 13).

Two shapes, as real adapters go wrong:

* subclasses of :class:`adapters.vllm.VllmAdapter` that build the engine request, the version
  or the log records wrongly (the bug sits where a vendor would write it);
* wrappers around the real adapter that change its event stream or its surface.

``CASES`` (in ``broken_adapters``) says which requirement each must fail. Nothing here is
imported by the suite itself: these are the suite's own test subjects.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio

from llorch_conformance.adapters import BUILTIN_ADAPTERS
from llorch_conformance.adapters.api import (
    Capabilities,
    TaskRequest,
    TokenEvent,
    WorkerHealth,
    WorkerProps,
)
from llorch_conformance.adapters.vllm import VllmAdapter

_LOG = logging.getLogger("vendor.broken_vllm")


# -- subclasses: the engine request, the version, the logs ----------------------------------
class _Body(VllmAdapter):
    """Changes the JSON body of the generation request (``edit``)."""

    def edit(self, request: TaskRequest, body: dict[str, Any]) -> None:
        raise NotImplementedError

    def _stream_request(self, request: TaskRequest, prompt: str) -> tuple[str, dict[str, Any]]:
        path, body = super()._stream_request(request, prompt)
        self.edit(request, body)
        return path, body


class DropsMaxTokens(_Body):
    def edit(self, request: TaskRequest, body: dict[str, Any]) -> None:
        body.pop("max_tokens", None)  # "the engine has a sensible default"


class MaxTokensOffByOne(_Body):
    def edit(self, request: TaskRequest, body: dict[str, Any]) -> None:
        body["max_tokens"] = request.max_tokens + 1  # counts the EOS token as output


class CapsMaxTokens(_Body):
    def edit(self, request: TaskRequest, body: dict[str, Any]) -> None:
        body["max_tokens"] = min(request.max_tokens, 2)  # a "safety" cap nobody asked for


class DropsStop(_Body):
    def edit(self, request: TaskRequest, body: dict[str, Any]) -> None:
        body.pop("stop", None)


class StopAsString(_Body):
    def edit(self, request: TaskRequest, body: dict[str, Any]) -> None:
        if body.get("stop"):
            body["stop"] = body["stop"][:1]  # only the first stop sequence survives


class DropsSeed(_Body):
    def edit(self, request: TaskRequest, body: dict[str, Any]) -> None:
        body.pop("seed", None)


class FixedSeed(_Body):
    def edit(self, request: TaskRequest, body: dict[str, Any]) -> None:
        body["seed"] = 42  # a hard-coded seed "for reproducibility"


class TruncatesPrompt(_Body):
    def edit(self, request: TaskRequest, body: dict[str, Any]) -> None:
        if isinstance(body.get("prompt"), str):
            body["prompt"] = body["prompt"][:8]


class PrefixesPrompt(_Body):
    def edit(self, request: TaskRequest, body: dict[str, Any]) -> None:
        if isinstance(body.get("prompt"), str):
            body["prompt"] = "You are a helpful assistant.\n" + body["prompt"]
        elif isinstance(body.get("messages"), list):
            body["messages"][0]["content"] = "You are a helpful assistant.\n" + str(
                body["messages"][0]["content"]
            )


class ChatAddsSystemMessage(_Body):
    def edit(self, request: TaskRequest, body: dict[str, Any]) -> None:
        if isinstance(body.get("messages"), list):
            body["messages"].insert(0, {"role": "system", "content": "Be concise."})


class NoGreedyUnderStrict(_Body):
    def edit(self, request: TaskRequest, body: dict[str, Any]) -> None:
        body.pop("temperature", None)
        body.pop("top_p", None)


class DropsEngineParams(VllmAdapter):
    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        extra = {k: v for k, v in request.extra.items() if k != "engine_params"}
        return super().submit(dataclasses.replace(request, extra=extra))


class StaticEngineVersion(VllmAdapter):
    async def _fetch_engine_version(self, *, retry: bool) -> str:
        return "vllm"  # the engine name, not its version


class VersionChangesAfterSubmit(VllmAdapter):
    """Reports the engine's version until a task ran, then the model id."""

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        self._engine_version = f"{request.model_ref}-latest"
        return super().submit(request)


class VersionCounter(VllmAdapter):
    _calls = 0

    async def engine_version(self) -> str:
        self._calls += 1
        return f"{await super().engine_version()}+{self._calls}"


class LogsWrongTokensOut(VllmAdapter):
    def _log(
        self, level: int, action: str, human: str, request: TaskRequest, **fields: Any
    ) -> None:
        if action == "end" and "tokens_out" in fields:
            fields["tokens_out"] = request.max_tokens  # the budget, not what was produced
        super()._log(level, action, human, request, **fields)


class LogsNoTokensIn(VllmAdapter):
    def _log(
        self, level: int, action: str, human: str, request: TaskRequest, **fields: Any
    ) -> None:
        if action == "end":
            fields["tokens_in"] = None
        super()._log(level, action, human, request, **fields)


class LogsSessionAsJob(VllmAdapter):
    def _log(
        self, level: int, action: str, human: str, request: TaskRequest, **fields: Any
    ) -> None:
        super()._log(
            level, action, human, dataclasses.replace(request, task_id=request.session_id), **fields
        )


class LogsStringDecodeTime(VllmAdapter):
    def _log(
        self, level: int, action: str, human: str, request: TaskRequest, **fields: Any
    ) -> None:
        if "decode_time_ms" in fields:
            fields["decode_time_ms"] = f"{fields['decode_time_ms']}ms"
        super()._log(level, action, human, request, **fields)


# -- wrappers: the event stream and the surface ---------------------------------------------
class Delegating:
    """Delegates everything to the real adapter of :attr:`dialect`; subclasses override the
    broken part (``broken_adapters`` wraps the llama.cpp adapter with it too)."""

    dialect = "vllm"

    def __init__(self, base_url: str, **config: Any) -> None:
        self.config = config
        self.inner = BUILTIN_ADAPTERS[self.dialect](base_url, **config)

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


_Wrapper = Delegating


class _Events(_Wrapper):
    """Maps every event through ``fix`` (which returns the events to yield instead)."""

    def fix(self, ev: TokenEvent, request: TaskRequest) -> list[TokenEvent]:
        raise NotImplementedError

    async def _gen(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        async for ev in self.inner.submit(request):
            for out in self.fix(ev, request):
                yield out

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        return self._gen(request)


def _end_with(ev: TokenEvent, **changes: Any) -> TokenEvent:
    return TokenEvent("end", {**ev.data, **changes})


class NegativeTokensOut(_Events):
    def fix(self, ev: TokenEvent, request: TaskRequest) -> list[TokenEvent]:
        if ev.kind == "end" and ev.data.get("stop_reason") != "cancelled":
            return [_end_with(ev, tokens_out=-1)]
        return [ev]


class TokensOutOffByOne(_Events):
    def fix(self, ev: TokenEvent, request: TaskRequest) -> list[TokenEvent]:
        if ev.kind == "end":
            return [_end_with(ev, tokens_out=int(ev.data.get("tokens_out", 0)) + 1)]
        return [ev]


class NegativeDecodeTime(_Events):
    def fix(self, ev: TokenEvent, request: TaskRequest) -> list[TokenEvent]:
        if ev.kind == "end":
            return [_end_with(ev, decode_time_ms=-int(ev.data.get("decode_time_ms", 0)) - 1)]
        return [ev]


class UsageDisagrees(_Events):
    def fix(self, ev: TokenEvent, request: TaskRequest) -> list[TokenEvent]:
        if ev.kind == "end" and isinstance(ev.data.get("usage"), dict):
            usage = {**ev.data["usage"], "completion_tokens": request.max_tokens * 2}
            return [_end_with(ev, usage=usage)]
        return [ev]


class MetricsAsStrings(_Events):
    def fix(self, ev: TokenEvent, request: TaskRequest) -> list[TokenEvent]:
        if ev.kind == "metrics":
            return [TokenEvent("metrics", {k: f"{v}" for k, v in ev.data.items()})]
        return [ev]


class MetricsWithNone(_Events):
    def fix(self, ev: TokenEvent, request: TaskRequest) -> list[TokenEvent]:
        if ev.kind == "metrics":
            return [TokenEvent("metrics", {**ev.data, "latency_first_token_ms": None})]
        return [ev]


class MetricsNested(_Events):
    def fix(self, ev: TokenEvent, request: TaskRequest) -> list[TokenEvent]:
        if ev.kind == "metrics":
            return [TokenEvent("metrics", {"latency": dict(ev.data)})]
        return [ev]


class IndexFromOne(_Events):
    """The classic off-by-one: token indices start at 1."""

    def fix(self, ev: TokenEvent, request: TaskRequest) -> list[TokenEvent]:
        if ev.kind == "token":
            return [TokenEvent.token(ev.data["t"], int(ev.data["i"]) + 1)]
        return [ev]


class StartedWrongVersion(_Events):
    def fix(self, ev: TokenEvent, request: TaskRequest) -> list[TokenEvent]:
        if ev.kind == "started":
            return [TokenEvent("started", {**ev.data, "engine_version": "0.0.0-dev"})]
        return [ev]


class StartedNoSeed(_Events):
    def fix(self, ev: TokenEvent, request: TaskRequest) -> list[TokenEvent]:
        if ev.kind == "started":
            return [TokenEvent("started", {k: v for k, v in ev.data.items() if k != "seed"})]
        return [ev]


class DoubleEnd(_Events):
    def fix(self, ev: TokenEvent, request: TaskRequest) -> list[TokenEvent]:
        return [ev, ev] if ev.kind == "end" else [ev]


class MidstreamErrorAsInternal(_Events):
    """Any error after the first token becomes INTERNAL, non-retriable."""

    def __init__(self, base_url: str, **config: Any) -> None:
        super().__init__(base_url, **config)
        self._tokens = 0

    def fix(self, ev: TokenEvent, request: TaskRequest) -> list[TokenEvent]:
        if ev.kind == "token":
            self._tokens += 1
        if ev.kind == "error" and self._tokens:
            data = {**ev.data, "code": "INTERNAL", "retriable": False}
            data.pop("retry_after_ms", None)
            return [TokenEvent("error", data)]
        return [ev]


class ErrorRetriableFlipped(_Events):
    def fix(self, ev: TokenEvent, request: TaskRequest) -> list[TokenEvent]:
        if ev.kind == "error":
            return [TokenEvent("error", {**ev.data, "retriable": not ev.data.get("retriable")})]
        return [ev]


class DropsRetryAfter(_Events):
    def fix(self, ev: TokenEvent, request: TaskRequest) -> list[TokenEvent]:
        if ev.kind == "error" and "retry_after_ms" in ev.data:
            return [
                TokenEvent("error", {k: v for k, v in ev.data.items() if k != "retry_after_ms"})
            ]
        return [ev]


class DecodeTimeoutAsReset(_Events):
    def fix(self, ev: TokenEvent, request: TaskRequest) -> list[TokenEvent]:
        if ev.kind == "error" and ev.data.get("code") == "DECODE_TIMEOUT":
            return [TokenEvent("error", {**ev.data, "code": "WORKER_RESET"})]
        return [ev]


class InvalidParamsRetriable(_Events):
    def fix(self, ev: TokenEvent, request: TaskRequest) -> list[TokenEvent]:
        if ev.kind == "error" and ev.data.get("code") == "INVALID_PARAMS":
            return [TokenEvent("error", {**ev.data, "retriable": True})]
        return [ev]


class RaisesAfterFirstToken(_Events):
    """An unguarded bug in the stream loop: raises once the first token went out."""

    def fix(self, ev: TokenEvent, request: TaskRequest) -> list[TokenEvent]:
        if ev.kind == "token" and int(ev.data["i"]) >= 1:
            raise KeyError("logprobs")  # reads a field this engine build does not send
        return [ev]


class RaisesInHealth(_Wrapper):
    async def health(self) -> WorkerHealth:
        raise RuntimeError("health probe not implemented for this engine build")


class HealthAlwaysReady(_Wrapper):
    async def health(self) -> WorkerHealth:
        return WorkerHealth(live=True, ready=True)  # never asks the engine


class _Cancel(_Wrapper):
    """Tracks cancelled task ids so a stream can misbehave after cancel."""

    def __init__(self, base_url: str, **config: Any) -> None:
        super().__init__(base_url, **config)
        self.cancelled: set[str] = set()

    async def cancel(self, task_id: str) -> None:
        self.cancelled.add(task_id)
        await self.inner.cancel(task_id)


class SlowCancelEnd(_Cancel):
    """Drains a "grace period" before ending a cancelled stream."""

    async def _gen(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        async for ev in self.inner.submit(request):
            if ev.is_terminal and request.task_id in self.cancelled:
                await anyio.sleep(1.5)
            yield ev

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        return self._gen(request)


class CancelEndsInError(_Cancel):
    async def _gen(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        async for ev in self.inner.submit(request):
            if ev.kind == "end" and request.task_id in self.cancelled:
                yield TokenEvent(
                    "error", {"code": "INTERNAL", "message": "cancelled", "retriable": False}
                )
                return
            yield ev

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        return self._gen(request)


class CancelStopReasonEos(_Cancel):
    async def _gen(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        async for ev in self.inner.submit(request):
            if ev.kind == "end" and request.task_id in self.cancelled:
                yield _end_with(ev, stop_reason="eos")
                continue
            yield ev

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        return self._gen(request)


class CancelTokensOutPlanned(_Cancel):
    async def _gen(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        async for ev in self.inner.submit(request):
            if ev.kind == "end" and request.task_id in self.cancelled:
                yield _end_with(ev, tokens_out=request.max_tokens)
                continue
            yield ev

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        return self._gen(request)


class CancelOnlyFilters(_Cancel):
    """Stops yielding tokens after cancel but never closes the engine stream."""

    async def cancel(self, task_id: str) -> None:
        self.cancelled.add(task_id)

    async def _gen(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        async for ev in self.inner.submit(request):
            if request.task_id in self.cancelled and ev.kind == "token":
                continue
            yield ev

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        return self._gen(request)


class _Declares(_Wrapper):
    DECLARED: tuple[str, ...] = ()

    async def capabilities(self) -> Capabilities:
        caps = await self.inner.capabilities()
        return dataclasses.replace(
            caps, declared_unsupported=(*caps.declared_unsupported, *self.DECLARED)
        )


class DeclaresCancel(_Declares):
    DECLARED = ("cancel",)


class DeclaresDeadline(_Declares):
    DECLARED = ("deadline",)


class DeclaresTls(_Declares):
    DECLARED = ("tls",)


class LogsBearerToken(_Wrapper):
    """Logs the upstream session token it minted (not the configured key) at info level."""

    def __init__(self, base_url: str, **config: Any) -> None:
        super().__init__(base_url, **config)
        self.session = "Bearer " + secrets.token_urlsafe(24)

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        _LOG.info("submitting %s with Authorization: %s", request.task_id, self.session)
        return self.inner.submit(request)


class LogsApiKeyShaped(_Wrapper):
    def __init__(self, base_url: str, **config: Any) -> None:
        super().__init__(base_url, **config)
        self.key = "sk-" + secrets.token_hex(20)

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        _LOG.warning("engine call for %s: api_key=%s", request.task_id, self.key)
        return self.inner.submit(request)


class ErrorEchoesApiKey(_Events):
    def fix(self, ev: TokenEvent, request: TaskRequest) -> list[TokenEvent]:
        key = self.config.get("api_key")
        if ev.kind == "error" and key:
            return [
                TokenEvent("error", {**ev.data, "message": f"{ev.data.get('message')} ({key})"})
            ]
        return [ev]


class LongStreamTimeouts(VllmAdapter):
    """Replaces the configured stream timeouts by a minute "to be safe"."""

    def __init__(self, base_url: str, **config: Any) -> None:
        from llorch_conformance.adapters.http_util import HttpClientConfig

        http = config.get("http") or HttpClientConfig()
        config = {
            **config,
            "http": dataclasses.replace(
                http, first_byte_timeout_s=60.0, inter_chunk_timeout_s=60.0
            ),
        }
        super().__init__(base_url, **config)


def factory(cls: Callable[..., Any]) -> Callable[..., Any]:
    def make(base_url: str, **config: Any) -> Any:
        return cls(base_url, **config)

    make.__name__ = getattr(cls, "__name__", "broken")
    return make
