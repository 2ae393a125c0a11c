"""The worker bridge: any :class:`~adapters.api.WorkerAdapter` served as an rbee worker.

Routes (reference §8.4): ``GET /health`` → 200 ``text/plain`` ``ok``; ``GET /info`` → WorkerInfo;
``POST /v1/infer`` → InferResponse JSON or an SSE stream of ``data: {"token": t}`` frames ending
with ``data: [DONE]`` (no ``event:`` lines). Errors are ``{"error": message}`` (plus an additive
``code``) with 400 for bad input and 503 when the worker is busy or not ready.

Decisions where the contract is silent, and why:

* **Status.** ``starting`` until the adapter's ``health()`` says ready (polled), ``busy`` while
  every slot is taken, ``ready`` otherwise, ``stopping`` from the moment a stop is requested
  (SIGTERM or :meth:`WorkerBridge.request_stop`) and ``stopped`` after the drain. An engine that
  loses readiness sends the worker back to ``starting`` (it cannot serve; ``starting`` is the one
  not-available, not-stopped status). Slots: ``slots`` config, else the adapter's
  ``props().slots_total``, else 1.
* **Mapping events to the worker API.** ``started`` is not sent (the worker API has no such
  frame); ``token`` → ``data: {"token": t}``; ``end`` → ``data: [DONE]``; ``metrics`` are dropped.
  The HTTP status is decided after the first token or terminal event, so an error *before* the
  first token is an HTTP error: ``INVALID_PARAMS`` → 400, other retriable codes → 503 (with
  ``Retry-After`` when the adapter gave ``retry_after_ms``), the rest → 500. An error *after* the
  first token cannot change the status any more: it becomes one frame
  ``data: {"error": message, "code": code, "retriable": bool}`` and the stream closes **without**
  ``[DONE]`` — a client that waits for ``[DONE]`` therefore never mistakes a broken stream for a
  complete one.
* **InferRequest → TaskRequest.** ``max_tokens`` defaults to ``default_max_tokens`` (256); the
  TaskRequest has no temperature, so ``temperature 0`` asks for ``determinism: strict`` (greedy)
  and any other value travels in ``extra["temperature"]`` for adapters that read it.
* **Bodies** over ``max_body_bytes`` (1 MiB) are refused with 400 before they are read whole.
* **Client disconnect** closes the adapter stream (the adapter cancels upstream) and frees the slot.
* The per-token path does one small ``json.dumps`` per token and nothing else (no logging).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from llorch_conformance.adapters.api import (
    ErrorCode,
    InvalidTaskRequest,
    TaskRequest,
    TokenEvent,
    WorkerAdapter,
    WorkerError,
)

from ._contract import (
    BadInferRequest,
    InferRequest,
    InferResponse,
    WorkerApiSpec,
    WorkerInfo,
    WorkerStatus,
)
from ._heartbeat import HeartbeatSender

__all__ = [
    "IMPLEMENTATION_NAMES",
    "BridgeConfig",
    "WorkerBridge",
    "error_status",
    "worker_app",
    "worker_lifespan",
]

_LOG = logging.getLogger("llorch.rbee_worker")

#: A route's handler and an app's lifespan, as :func:`worker_app` takes them.
Endpoint = Callable[[Request], Awaitable[Response]]
Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]

#: Dialect → ``WorkerInfo.implementation`` (the OpenAPI enum names where one exists).
IMPLEMENTATION_NAMES = {
    "llamacpp": "llama-cpp-adapter",
    "vllm": "vllm-adapter",
    "tgi": "tgi-adapter",
    "triton": "triton-adapter",
    "openai": "openai-adapter",
    "mock": "mock-adapter",
}

_DONE = b"data: [DONE]\n\n"
FALLBACK_MODEL_ID = "mock-model"
_ENGINES = ("llamacpp", "vllm", "tgi", "triton", "openai", "mock")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("llorch-conformance")
    except Exception:
        return "0.0.0+source"


@dataclass
class BridgeConfig:
    """What the worker says about itself and how it behaves (all explicit, no environment)."""

    dialect: str = "mock"
    worker_id: str = field(default_factory=lambda: f"worker-{uuid.uuid4().hex[:8]}")
    #: The model this worker serves; ``None`` = ask the engine once it is ready (the adapter's
    #: ``served_models()``, i.e. ``GET /v1/models`` on the OpenAI-style engines), falling back
    #: to ``FALLBACK_MODEL_ID`` where the adapter cannot say.
    model_id: str | None = None
    device: str = "CPU-0"
    implementation: str | None = None
    version: str = field(default_factory=_version)
    queen_url: str | None = None
    heartbeat_interval_s: float = 30.0
    heartbeat_seed: int | None = None
    readiness_poll_s: float = 0.5
    health_poll_s: float = 5.0
    slots: int | None = None
    default_max_tokens: int = 256
    max_body_bytes: int = 1 << 20
    deadline_ms: int = 600_000
    ctx: int = 4096
    drain_s: float = 5.0
    final_heartbeat_s: float = 2.0
    call_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.implementation is None:
            self.implementation = IMPLEMENTATION_NAMES.get(self.dialect, f"{self.dialect}-adapter")
        if self.slots is not None and self.slots < 1:
            raise ValueError("slots must be at least 1")
        if not self.heartbeat_interval_s > 0:
            raise ValueError("heartbeat interval must be positive")


def worker_app(
    health: Endpoint, info: Endpoint, infer: Endpoint, *, lifespan: Lifespan
) -> Starlette:
    """A worker's HTTP surface: the three :class:`WorkerApiSpec` routes and nothing else.

    One definition for the bridge and the mock worker, so both serve the same paths with the
    same methods (anything else is starlette's 404/405)."""
    return Starlette(
        routes=[
            Route(WorkerApiSpec.HEALTH, health, methods=["GET"]),
            Route(WorkerApiSpec.INFO, info, methods=["GET"]),
            Route(WorkerApiSpec.INFER, infer, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


@asynccontextmanager
async def worker_lifespan(
    sender: HeartbeatSender | None,
    become_ready: Callable[[], Coroutine[Any, Any, None]],
    shut_down: Callable[[], Awaitable[None]],
) -> AsyncIterator[None]:
    """A worker's life inside its server's lifespan, for the bridge and the mock worker: its
    heartbeats and its way to ``ready`` run beside the requests; when the server stops,
    ``shut_down`` (drain, final heartbeat) runs shielded from the cancellation, then both end."""
    async with anyio.create_task_group() as tg:
        if sender is not None:
            tg.start_soon(sender.run)
        tg.start_soon(become_ready)
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                await shut_down()
            tg.cancel_scope.cancel()


def error_status(err: WorkerError) -> int:
    """The worker-API status for an adapter error that happened before the first token."""
    if err.code is ErrorCode.INVALID_PARAMS:
        return 400
    return 503 if err.retriable else 500


def _error(
    status: int, message: str, *, code: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if code is not None:
        body["code"] = code
    return JSONResponse(body, status_code=status, headers=headers)


class _BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class WorkerBridge:
    """Holds the adapter, the status machine, the heartbeat sender and the Starlette app.

    ``port`` must be set (by the runner, from the pre-bound socket) before the app starts.
    """

    def __init__(
        self,
        adapter: WorkerAdapter,
        config: BridgeConfig | None = None,
        *,
        port: int = 0,
        own_adapter: bool = False,
    ) -> None:
        self.adapter = adapter
        self.config = config or BridgeConfig()
        self.port = port
        self.own_adapter = own_adapter
        self._lifecycle = WorkerStatus.STARTING
        self._slots = self.config.slots or 1
        self._model_id: str | None = self.config.model_id
        self._in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: anyio.Event | None = None
        self.transitions: list[tuple[float, WorkerStatus]] = [
            (time.monotonic(), WorkerStatus.STARTING)
        ]
        self.sender: HeartbeatSender | None = None
        if self.config.queen_url:
            self.sender = HeartbeatSender(
                self.config.queen_url,
                self.info,
                interval_s=self.config.heartbeat_interval_s,
                seed=self.config.heartbeat_seed,
            )
        self.served = 0
        self.app = worker_app(self._health, self._info, self._infer, lifespan=self._lifespan)

    # -- status ------------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        """The configured model, else the engine's served one once known, else the fallback."""
        return self._model_id or FALLBACK_MODEL_ID

    async def _discover_model(self) -> None:
        """Ask the adapter which model the engine serves (only when none was configured)."""
        served_models = getattr(self.adapter, "served_models", None)
        if served_models is None:
            self._model_id = FALLBACK_MODEL_ID
            return
        try:
            with anyio.fail_after(self.config.call_timeout_s):
                served = await served_models()
        except Exception as exc:  # the engine cannot say: never keep the worker unready for it
            _LOG.warning(
                "could not ask the engine for its model (%r); using %s", exc, FALLBACK_MODEL_ID
            )
            served = ()
        self._model_id = str(served[0]) if served else FALLBACK_MODEL_ID
        self._note_model()

    def _note_model(self) -> None:
        if self.sender is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self.sender.poke)

    @property
    def slots(self) -> int:
        return self._slots

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def status(self) -> WorkerStatus:
        life = self._lifecycle
        if life is not WorkerStatus.READY:
            return life
        return WorkerStatus.BUSY if self._in_flight >= self._slots else WorkerStatus.READY

    def _note(self) -> None:
        s = self.status
        if self.transitions[-1][1] is not s:
            self.transitions.append((time.monotonic(), s))

    def _set_lifecycle(self, status: WorkerStatus, *, poke: bool = True) -> None:
        if self._lifecycle is status:
            return
        self._lifecycle = status
        self._note()
        if poke and self.sender is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self.sender.poke)

    def info(self) -> WorkerInfo:
        c = self.config
        return WorkerInfo(
            id=c.worker_id,
            model_id=self.model_id,
            device=c.device,
            port=self.port,
            status=self.status,
            implementation=c.implementation or "",
            version=c.version,
        )

    def request_stop(self) -> None:
        """Start a graceful stop: ``stopping`` at once (thread-safe; the runner calls it)."""
        if self._lifecycle is not WorkerStatus.STOPPED:
            self._set_lifecycle(WorkerStatus.STOPPING)

    # -- lifecycle ---------------------------------------------------------------------------
    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._loop = asyncio.get_running_loop()
        async with worker_lifespan(self.sender, self._watch_readiness, self._shutdown):
            yield

    async def _shutdown(self) -> None:
        self.request_stop()
        if self._in_flight:
            self._idle = anyio.Event()
            with anyio.move_on_after(self.config.drain_s):
                await self._idle.wait()
        self._set_lifecycle(WorkerStatus.STOPPED, poke=False)
        if self.sender is not None:
            await self.sender.final(WorkerStatus.STOPPED, budget_s=self.config.final_heartbeat_s)
            await self.sender.aclose()
        if self.own_adapter:
            aclose = getattr(self.adapter, "aclose", None)
            if aclose is not None:
                with anyio.move_on_after(self.config.call_timeout_s):
                    await aclose()

    async def _watch_readiness(self) -> None:
        """Poll the adapter's health: ``starting`` → ``ready`` (and back when the engine is lost)."""
        learned_slots = self.config.slots is not None
        while True:
            life = self._lifecycle
            if life.is_stopped:
                return
            ready = False
            try:
                with anyio.fail_after(self.config.call_timeout_s):
                    health = await self.adapter.health()
                ready = bool(health.live and health.ready)
                if ready and self._model_id is None:
                    await self._discover_model()
                if ready and not learned_slots:
                    with anyio.fail_after(self.config.call_timeout_s):
                        props = await self.adapter.props()
                    if props.slots_total and props.slots_total > 0:
                        self._slots = int(props.slots_total)
                    learned_slots = True
            except Exception as exc:
                _LOG.debug("adapter health failed: %r", exc)
                ready = False
            if self._lifecycle.is_stopped:
                return
            self._set_lifecycle(WorkerStatus.READY if ready else WorkerStatus.STARTING)
            await anyio.sleep(self.config.health_poll_s if ready else self.config.readiness_poll_s)

    # -- routes ------------------------------------------------------------------------------
    async def _health(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def _info(self, request: Request) -> Response:
        return JSONResponse(self.info().to_dict())

    def _task(self, req: InferRequest) -> TaskRequest:
        extra: dict[str, Any] = {}
        fields: dict[str, Any] = {
            "task_id": f"wkr-{uuid.uuid4().hex[:16]}",
            "session_id": f"wkr-{self.config.worker_id}",
            "workload": "completion",
            "model_ref": f"hf:{self.model_id}"
            if "://" not in self.model_id and ":" not in self.model_id
            else self.model_id,
            "engine": self.config.dialect if self.config.dialect in _ENGINES else "mock",
            "ctx": self.config.ctx,
            "priority": "interactive",
            "max_tokens": req.max_tokens or self.config.default_max_tokens,
            "deadline_ms": self.config.deadline_ms,
            "prompt": req.prompt,
        }
        if req.temperature is not None:
            if req.temperature == 0.0:
                fields["determinism"] = "strict"
            else:
                extra["temperature"] = req.temperature
        task = TaskRequest.from_dict(fields)
        if extra:
            object.__setattr__(task, "extra", extra)
        return task

    async def _infer(self, request: Request) -> Response:
        try:
            body = await _read_body(request, self.config.max_body_bytes)
        except _BodyTooLarge:
            return _error(400, f"request body exceeds {self.config.max_body_bytes} bytes")
        try:
            raw = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _error(400, "request body is not valid JSON")
        try:
            req = InferRequest.from_dict(raw)
        except BadInferRequest as exc:
            return _error(400, str(exc))
        status = self.status
        if status is WorkerStatus.BUSY:
            return _error(503, "worker is busy", headers={"Retry-After": "1"})
        if status is not WorkerStatus.READY:
            return _error(503, f"worker is {status.value}")
        try:
            task = self._task(req)
        except InvalidTaskRequest as exc:
            return _error(400, str(exc))
        # Take the slot before the first await: the event loop makes this check-and-take atomic.
        self._in_flight += 1
        self._note()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._in_flight -= 1
                self._note()
                if not self._in_flight and self._idle is not None:
                    self._idle.set()

        t0 = time.monotonic()
        agen = self.adapter.submit(task)
        try:
            first, _ = await self._first_event(agen)
        except BaseException:
            await _aclose(agen)
            release()
            raise
        if first is not None and first.kind == "error":
            await _aclose(agen)
            release()
            return self._error_response(first)
        if not req.stream:
            try:
                return await self._collect(agen, first, t0)
            finally:
                await _aclose(agen)
                release()
        return StreamingResponse(
            self._sse(agen, first, release),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def _first_event(self, agen: AsyncIterator[TokenEvent]) -> tuple[TokenEvent | None, int]:
        """Skip ``started``/``metrics``; return the first token or terminal event (``None`` at EOF)."""
        skipped = 0
        async for ev in agen:
            if ev.kind in ("token", "end", "error"):
                return ev, skipped
            skipped += 1
        return None, skipped

    def _error_response(self, ev: TokenEvent) -> Response:
        err = WorkerError.from_event_data(ev.data)
        headers: dict[str, str] | None = None
        if err.retry_after_ms is not None:
            headers = {"Retry-After": str(max(1, -(-err.retry_after_ms // 1000)))}
        return _error(
            error_status(err), err.message or err.code.value, code=err.code.value, headers=headers
        )

    async def _collect(
        self, agen: AsyncIterator[TokenEvent], first: TokenEvent | None, t0: float
    ) -> Response:
        parts: list[str] = []
        count = 0
        ev = first
        while ev is not None:
            if ev.kind == "token":
                parts.append(str(ev.data.get("t", "")))
                count += 1
            elif ev.kind == "end":
                tokens_out = ev.data.get("tokens_out")
                n = (
                    tokens_out
                    if isinstance(tokens_out, int)
                    and not isinstance(tokens_out, bool)
                    and tokens_out >= 0
                    else count
                )
                self.served += 1
                resp = InferResponse("".join(parts), n, round((time.monotonic() - t0) * 1000))
                return JSONResponse(resp.to_dict())
            elif ev.kind == "error":
                return self._error_response(ev)
            ev = await anext(agen, None)
        return _error(500, "the adapter's stream ended without a terminal event", code="INTERNAL")

    async def _sse(
        self, agen: AsyncIterator[TokenEvent], first: TokenEvent | None, release: Callable[[], None]
    ) -> AsyncIterator[bytes]:
        dumps = json.dumps
        try:
            ev = first
            while ev is not None:
                kind = ev.kind
                if kind == "token":
                    yield (
                        b'data: {"token": '
                        + dumps(ev.data.get("t", ""), ensure_ascii=False).encode()
                        + b"}\n\n"
                    )
                elif kind == "end":
                    self.served += 1
                    yield _DONE
                    return
                elif kind == "error":
                    err = WorkerError.from_event_data(ev.data)
                    frame = {
                        "error": err.message or err.code.value,
                        "code": err.code.value,
                        "retriable": err.retriable,
                    }
                    yield b"data: " + dumps(frame, ensure_ascii=False).encode() + b"\n\n"
                    return
                ev = await anext(agen, None)
            frame = {
                "error": "the adapter's stream ended without a terminal event",
                "code": "INTERNAL",
                "retriable": False,
            }
            yield b"data: " + dumps(frame).encode() + b"\n\n"
        finally:
            with anyio.CancelScope(shield=True):
                await _aclose(agen)
            release()


async def _aclose(agen: Any) -> None:
    aclose = getattr(agen, "aclose", None)
    if aclose is None:
        return
    with anyio.move_on_after(5.0):
        try:
            await aclose()
        except Exception:
            _LOG.debug("closing the adapter stream failed", exc_info=True)
