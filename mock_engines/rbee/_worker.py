"""A fault-capable mock rbee worker: the contract implemented directly, with named ways to break it.

It exists for the harness's self-tests: the black-box worker checks must pass against it when it
is healthy and fail the right WKR ID for each fault. It is deliberately *not* the bridge
(:mod:`adapters.rbee_worker`), so a bug in the bridge cannot hide a bug in the checks.

Tokens come from :func:`mock_engines._plan.make_plan` (the same seeded plan the mock engines
render), so ``text`` and the streamed tokens are deterministic for a prompt and seed. Statuses:
``starting`` for ``startup_s``, then ``ready``/``busy`` by slot use, ``stopping`` on a stop
request, ``stopped`` after it (with a final heartbeat). Heartbeats use the real
:class:`~adapters.rbee_worker.HeartbeatSender`, with a payload hook for the heartbeat faults.

Faults (``name[;key=value...]``) are listed in :data:`WORKER_FAULTS`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from llorch_conformance.adapters.rbee_worker import (
    BadInferRequest,
    HeartbeatSender,
    InferRequest,
    ServedApp,
    ServedHandle,
    WorkerInfo,
    WorkerStatus,
    bind_socket,
    worker_app,
    worker_lifespan,
)

__all__ = ["WORKER_FAULTS", "MockWorker", "MockWorkerConfig", "MockWorkerServer", "run_mock_worker"]

WORKER_FAULTS: Final[dict[str, str]] = {
    "health.wrong_body": 'GET /health answers JSON {"status": "healthy"} (what llm-worker-rbee serves)',
    "info.missing_field": "GET /info leaves out one WorkerInfo field (field=NAME, default port)",
    "info.bad_status": 'GET /info and heartbeats report status "Ready" (not the lowercase vocabulary)',
    "infer.no_done": "streams end after the last token without data: [DONE]",
    "infer.event_lines": 'stream frames use llama-orch framing: event: token / data: {"t": ...}',
    "infer.bad_response": "non-streaming answers leave out duration_ms",
    "input.500": "bad input is answered 500 instead of 400",
    "input.no_error_body": "bad input is answered 400 with a text/plain body, not {error}",
    "busy.accept": "never answers 503 busy: requests beyond the slots are served anyway",
    "oversize.accept": "no body limit: oversized bodies are read and served",
    "heartbeat.none": "never sends a heartbeat",
    "heartbeat.bad_timestamp": "heartbeat timestamps carry no UTC offset (not RFC 3339 UTC)",
    "shutdown.no_final": "no stopped heartbeat on graceful shutdown",
}


def _parse_fault(text: str) -> tuple[str, dict[str, str]]:
    name, *params = [p.strip() for p in text.split(";") if p.strip()]
    if name not in WORKER_FAULTS:
        raise ValueError(f"unknown worker fault {name!r} (known: {', '.join(WORKER_FAULTS)})")
    kv: dict[str, str] = {}
    for p in params:
        k, eq, v = p.partition("=")
        if not eq:
            raise ValueError(f"worker fault parameter {p!r} is not key=value")
        kv[k] = v
    return name, kv


@dataclass
class MockWorkerConfig:
    worker_id: str = field(default_factory=lambda: f"mock-worker-{uuid.uuid4().hex[:8]}")
    model_id: str = "mock-model"
    device: str = "CPU-0"
    implementation: str = "llm-worker-rbee"
    version: str = "0.1.0"
    slots: int = 1
    seed: int = 0
    token_delay_s: float = 0.0
    startup_s: float = 0.0
    default_max_tokens: int = 64
    max_body_bytes: int = 1 << 20
    queen_url: str | None = None
    heartbeat_interval_s: float = 30.0
    faults: Iterable[str] = ()


class MockWorker:
    """State and ASGI app of one mock worker."""

    def __init__(self, config: MockWorkerConfig, *, port: int = 0) -> None:
        self.config = config
        self.port = port
        self.faults: dict[str, dict[str, str]] = dict(_parse_fault(f) for f in config.faults)
        self._life = WorkerStatus.STARTING
        self._in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.requests = 0
        self.sender: HeartbeatSender | None = None
        if config.queen_url and "heartbeat.none" not in self.faults:
            self.sender = HeartbeatSender(
                config.queen_url,
                self.info,
                interval_s=config.heartbeat_interval_s,
                seed=config.seed,
                payload_hook=self._hook,
            )
        self.app = worker_app(self._health, self._info, self._infer, lifespan=self._lifespan)

    # -- status -----------------------------------------------------------------------------
    @property
    def status(self) -> WorkerStatus:
        if self._life is not WorkerStatus.READY:
            return self._life
        return WorkerStatus.BUSY if self._in_flight >= self.config.slots else WorkerStatus.READY

    def info(self) -> WorkerInfo:
        c = self.config
        return WorkerInfo(
            c.worker_id, c.model_id, c.device, self.port, self.status, c.implementation, c.version
        )

    def info_dict(self) -> dict[str, Any]:
        d = self.info().to_dict()
        if "info.bad_status" in self.faults:
            d["status"] = str(d["status"]).capitalize()
        if "info.missing_field" in self.faults:
            d.pop(self.faults["info.missing_field"].get("field", "port"), None)
        return d

    def _hook(self, payload: dict[str, Any]) -> dict[str, Any]:
        if "info.bad_status" in self.faults:
            payload["worker"]["status"] = str(payload["worker"]["status"]).capitalize()
        if "heartbeat.bad_timestamp" in self.faults:
            payload["timestamp"] = str(payload["timestamp"]).rstrip("Z").split(".")[0]
        return payload

    def request_stop(self) -> None:
        if self._life is not WorkerStatus.STOPPED:
            self._life = WorkerStatus.STOPPING
            if self.sender is not None and self._loop is not None:
                self._loop.call_soon_threadsafe(self.sender.poke)

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._loop = asyncio.get_running_loop()
        async with worker_lifespan(self.sender, self._become_ready, self._shut_down):
            yield

    async def _become_ready(self) -> None:
        await anyio.sleep(self.config.startup_s)
        if self._life is WorkerStatus.STARTING:
            self._life = WorkerStatus.READY
            if self.sender is not None:
                self.sender.poke()

    async def _shut_down(self) -> None:
        self._life = WorkerStatus.STOPPED
        if self.sender is not None:
            if "shutdown.no_final" not in self.faults:
                await self.sender.final(
                    WorkerStatus.STOPPED,
                    budget_s=min(2.0, 10 * self.config.heartbeat_interval_s),
                )
            await self.sender.aclose()

    # -- routes -------------------------------------------------------------------------------
    async def _health(self, request: Request) -> Response:
        if "health.wrong_body" in self.faults:
            return JSONResponse({"status": "healthy"})
        return PlainTextResponse("ok")

    async def _info(self, request: Request) -> Response:
        return JSONResponse(self.info_dict())

    def _bad(self, message: str) -> Response:
        if "input.500" in self.faults:
            return JSONResponse({"error": message}, status_code=500)
        if "input.no_error_body" in self.faults:
            return PlainTextResponse(message, status_code=400)
        return JSONResponse({"error": message}, status_code=400)

    async def _infer(self, request: Request) -> Response:
        limit = None if "oversize.accept" in self.faults else self.config.max_body_bytes
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if limit is not None and len(body) > limit:
                return self._bad(f"request body exceeds {limit} bytes")
        try:
            req = InferRequest.from_dict(json.loads(body))
        except (ValueError, UnicodeDecodeError) as exc:
            return self._bad(
                str(exc) if isinstance(exc, BadInferRequest) else "body is not valid JSON"
            )
        status = self.status
        if status is WorkerStatus.BUSY and "busy.accept" not in self.faults:
            return JSONResponse({"error": "worker is busy"}, status_code=503)
        if status not in (WorkerStatus.READY, WorkerStatus.BUSY):
            return JSONResponse({"error": f"worker is {status.value}"}, status_code=503)
        from llorch_conformance.mock_engines._plan import make_plan

        plan = make_plan(
            req.prompt,
            seed=self.config.seed,
            max_tokens=req.max_tokens or self.config.default_max_tokens,
        )
        self._in_flight += 1
        self.requests += 1
        t0 = time.monotonic()
        if not req.stream:
            try:
                if self.config.token_delay_s:
                    await anyio.sleep(self.config.token_delay_s * len(plan.tokens))
            finally:
                self._in_flight -= 1
            out: dict[str, Any] = {
                "text": plan.text,
                "tokens_generated": len(plan.tokens),
                "duration_ms": round((time.monotonic() - t0) * 1000),
            }
            if "infer.bad_response" in self.faults:
                del out["duration_ms"]
            return JSONResponse(out)
        return StreamingResponse(self._stream(plan.tokens), media_type="text/event-stream")

    async def _stream(self, tokens: tuple[str, ...]) -> AsyncIterator[bytes]:
        framing = "infer.event_lines" in self.faults
        try:
            for i, t in enumerate(tokens):
                if self.config.token_delay_s:
                    await anyio.sleep(self.config.token_delay_s)
                if framing:
                    yield b"event: token\ndata: " + json.dumps({"t": t, "i": i}).encode() + b"\n\n"
                else:
                    yield (
                        b"data: " + json.dumps({"token": t}, ensure_ascii=False).encode() + b"\n\n"
                    )
            if "infer.no_done" not in self.faults:
                yield b"data: [DONE]\n\n"
        finally:
            self._in_flight -= 1


class MockWorkerServer(ServedHandle):
    """Handle on a running mock worker (``worker`` plus the :class:`ServedHandle` surface)."""

    def __init__(self, worker: MockWorker, served: ServedApp) -> None:
        super().__init__(served)
        self.worker = worker


def run_mock_worker(
    config: MockWorkerConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    **overrides: Any,
) -> MockWorkerServer:
    """``with run_mock_worker(queen_url=q.url, faults=["infer.no_done"]) as w:``."""
    if config is None:
        config = MockWorkerConfig(**overrides)
    elif overrides:
        raise TypeError("give either a config or keyword overrides, not both")
    sock = bind_socket(host, port)
    worker = MockWorker(config, port=sock.getsockname()[1])
    served = ServedApp(
        worker.app, host=host, sock=sock, on_exit=worker.request_stop, graceful_s=2.0
    )
    return MockWorkerServer(worker, served)
