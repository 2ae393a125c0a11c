"""ACME's vLLM adapter, written from README.md and docs/writing-an-adapter.md alone.

This is the suite's "new user" check: a vendor reads the two documents, writes an adapter for
the vLLM OpenAI-compatible server, and iterates on the suite's failure output until
``llorch-conformance run --adapter acme_adapter:make --dialect vllm`` exits 0. It deliberately
uses only what the docs name (the factory config, ``adapters.api`` types, the
``adapters.http_util`` helpers the docs recommend) and knowledge of vLLM's public HTTP API.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import anyio
import httpx

from llorch_conformance.adapters.api import (
    Capabilities,
    TaskRequest,
    TokenEvent,
    UpstreamCondition,
    WorkerError,
    WorkerHealth,
    WorkerProps,
    error_for_condition,
    error_for_status,
)
from llorch_conformance.adapters.http_util import (
    HttpClientConfig,
    RetryPolicy,
    aiter_sse,
    build_client,
    fetch,
    open_stream,
    redact,
    retry_async,
)

__all__ = ["AcmeVllmAdapter", "make"]

_LOG = logging.getLogger("acme.vllm")


class AcmeVllmAdapter:
    """WorkerAdapter for ``vllm serve`` (completions API, streaming)."""

    engine = "vllm"

    def __init__(
        self,
        base_url: str,
        *,
        http: HttpClientConfig | None = None,
        retry: RetryPolicy | None = None,
        model: str | None = None,
        api_key: str | None = None,
        pool_id: str = "default",
        replica_id: str = "r0",
        **_: Any,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        http = http or HttpClientConfig()
        headers = dict(http.headers)
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.http = dataclasses.replace(http, headers=headers)
        self.retry = retry or RetryPolicy()
        self.model = model
        self.pool_id = pool_id
        self.replica_id = replica_id
        self._secrets = [api_key] if api_key else []
        self.client = build_client(self.http)
        self._version: str | None = None
        self._responses: dict[str, httpx.Response] = {}
        self._cancelled: set[str] = set()

    # -- plain calls -------------------------------------------------------------------------
    async def _get(self, path: str) -> httpx.Response:
        return await fetch(
            self.client,
            "GET",
            f"{self.base_url}{path}",
            total_timeout_s=self.http.total_timeout_s,
            secrets=self._secrets,
        )

    async def health(self) -> WorkerHealth:
        try:
            await self._get("/health")
        except WorkerError as err:
            # 503: the engine is up but not ready; a refused connection: not even live
            return WorkerHealth(live=err.upstream_status is not None, ready=False)
        return WorkerHealth(live=True, ready=True)

    async def props(self) -> WorkerProps:
        return WorkerProps(None, None)

    async def engine_version(self) -> str:
        if self._version is None:
            r = await self._get("/version")
            self._version = str(r.json()["version"])
        return self._version

    async def capabilities(self) -> Capabilities:
        return Capabilities(engine=self.engine, engine_version=await self.engine_version())

    async def _served_model(self) -> str:
        if self.model is None:
            r = await self._get("/v1/models")
            self.model = str(r.json()["data"][0]["id"])
        return self.model

    async def cancel(self, task_id: str) -> None:
        response = self._responses.get(task_id)
        if response is not None:
            self._cancelled.add(task_id)
            await response.aclose()  # the engine sees the disconnect and stops

    async def aclose(self) -> None:
        await self.client.aclose()

    # -- streaming ---------------------------------------------------------------------------
    @staticmethod
    def _chat(request: TaskRequest) -> bool:
        return request.extra.get("endpoint") == "chat"

    def _body(self, request: TaskRequest, model: str) -> dict[str, Any]:
        prompt = request.prompt if request.prompt is not None else "\n".join(request.inputs or ())
        body: dict[str, Any] = {"model": model}
        if self._chat(request):
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        body.update(max_tokens=request.max_tokens, stream=True)
        body["stream_options"] = {"include_usage": True}
        params = request.extra.get("engine_params")
        if isinstance(params, dict):
            body.update(params)
        stop = request.extra.get("stop")
        if stop:
            body["stop"] = [stop] if isinstance(stop, str) else list(stop)
        if request.seed is not None:
            body["seed"] = request.seed
        if request.determinism is not None and request.determinism.value == "strict":
            body["temperature"] = 0
            body["top_p"] = 1
        return body

    def _log(self, level: int, msg: str, request: TaskRequest, **fields: Any) -> None:
        data = {
            "job_id": request.task_id,
            "session_id": request.session_id,
            "engine": self.engine,
            "pool_id": self.pool_id,
            "replica_id": self.replica_id,
        }
        data.update(fields)
        _LOG.log(level, redact(msg, self._secrets), extra={"llorch": data})

    async def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        t0 = anyio.current_time()
        deadline = t0 + request.deadline_ms / 1000.0
        emitted = 0
        try:
            version = await self.engine_version()
            model = await self._served_model()
            chat = self._chat(request)
            async with AsyncExitStack() as stack:

                async def attempt(n: int) -> httpx.Response:
                    return await stack.enter_async_context(
                        open_stream(
                            self.client,
                            "POST",
                            f"{self.base_url}/v1/{'chat/completions' if chat else 'completions'}",
                            first_byte_timeout_s=self.http.first_byte_timeout_s,
                            secrets=self._secrets,
                            json=self._body(request, model),
                        )
                    )

                response = await retry_async(
                    attempt, self.retry, idempotent=True, deadline=deadline
                )
                self._responses[request.task_id] = response
                yield TokenEvent.started(
                    engine=self.engine,
                    engine_version=version,
                    seed=request.seed,
                    sampler_profile_version=request.sampler_profile_version,
                    model=model,
                )
                self._log(logging.INFO, "stream started", request, engine_version=version)
                ctype = response.headers.get("content-type", "")
                if not ctype.startswith("text/event-stream"):
                    raise error_for_condition(
                        UpstreamCondition.PROTOCOL, f"unexpected Content-Type {ctype!r}"
                    )
                t_first: float | None = None
                reason = "eos"
                tokens_in: int | None = None
                done = False
                events = aiter_sse(response, inter_chunk_timeout_s=self.http.inter_chunk_timeout_s)
                while True:
                    with anyio.move_on_after(max(0.0, deadline - anyio.current_time())) as scope:
                        try:
                            ev = await events.__anext__()
                        except StopAsyncIteration:
                            break
                    if scope.cancelled_caught:
                        raise error_for_condition(
                            UpstreamCondition.DEADLINE,
                            f"deadline_ms {request.deadline_ms} exceeded after {emitted} tokens",
                        )
                    if done:
                        continue  # read to the end so the connection goes back to the pool
                    if ev.data == "[DONE]":
                        done = True
                        continue
                    frame = json.loads(ev.data)
                    if "error" in frame:
                        err = frame["error"]
                        raise error_for_status(int(err.get("code") or 500), str(err.get("message")))
                    usage = frame.get("usage")
                    if isinstance(usage, dict) and usage.get("prompt_tokens") is not None:
                        tokens_in = int(usage["prompt_tokens"])
                    if not frame.get("choices"):
                        continue
                    choice = frame["choices"][0]
                    text = (
                        (choice.get("delta") or {}).get("content") if chat else choice.get("text")
                    )
                    if text:
                        if t_first is None:
                            t_first = anyio.current_time()
                        yield TokenEvent.token(text, emitted)
                        emitted += 1
                    finish = choice.get("finish_reason")
                    if finish == "length":
                        reason = "length"
                    elif finish == "stop":
                        # vLLM names the matched stop string in stop_reason; None: end of sequence
                        reason = "stop" if isinstance(choice.get("stop_reason"), str) else "eos"
                if not done:
                    raise error_for_condition(
                        UpstreamCondition.RESET, "the stream ended without data: [DONE]"
                    )
                t_end = anyio.current_time()
                decode_ms = int((t_end - (t_first or t_end)) * 1000)
                first_ms = int(((t_first or t_end) - t0) * 1000)
                yield TokenEvent.metrics(
                    latency_first_token_ms=first_ms, latency_decode_ms=decode_ms, tokens_out=emitted
                )
                self._log(
                    logging.INFO,
                    "completed",
                    request,
                    engine_version=version,
                    tokens_in=tokens_in,
                    tokens_out=emitted,
                    decode_time_ms=decode_ms,
                )
                yield TokenEvent.end(emitted, decode_ms, stop_reason=reason)
        except Exception as exc:
            if request.task_id in self._cancelled:  # the read broke because cancel() closed it
                self._log(logging.INFO, "cancelled", request, tokens_out=emitted)
                yield TokenEvent.end(emitted, 0, stop_reason="cancelled")
            elif isinstance(exc, WorkerError):
                self._log(logging.WARNING, f"failed: {exc.message}", request)
                yield TokenEvent.error(exc)
            else:  # a bug in here: still one terminal event
                bug = error_for_condition(UpstreamCondition.ADAPTER_BUG, type(exc).__name__)
                yield TokenEvent.error(bug)
        finally:
            self._responses.pop(request.task_id, None)
            self._cancelled.discard(request.task_id)


def make(base_url: str, **config: Any) -> AcmeVllmAdapter:
    """The factory the suite calls: ``make(base_url, **config)``."""
    return AcmeVllmAdapter(base_url, **config)


make.dialect = "vllm"  # type: ignore[attr-defined]
