"""Shared internal base of the HTTP adapters: everything except the engine's own wire dialect.

The five engine adapters differ in their URLs, request bodies, frame shapes and readiness
semantics; everything else is the same and lives here once, so each adapter module stays a thin
dialect description:

* construction from ``(base_url, **explicit config)`` — never the environment (OC-ADAPT 40 §1A);
* the in-flight task registry that ``cancel`` works on;
* opening the stream with retries *only before the first byte* (connect failure, 429/503 —
  DESIGN.md), recorded in a :class:`~adapters.http_util.RetryTimeline` kept per task;
* incremental reading: raw chunks → :class:`~adapters.http_util.SSEDecoder` → the dialect's
  ``_parse_frame`` → ``token`` events, with the adapter's own index ``i`` counting 0, 1, 2, ...;
* the ``deadline_ms`` budget, first-byte and inter-chunk timeouts and cancellation, all through
  one cancel scope per *chunk read* (never across a ``yield``), so a stall, a deadline or a
  cancel interrupts the read at once and the upstream connection is closed;
* every failure after submission as exactly one terminal ``error`` event built from the mapping
  table (``adapters.api.error_for_condition``), never raised;
* ``started`` / ``metrics`` / ``end`` payloads, lifecycle logs and contract metrics.

Hot path: per token the adapter does one SSE decode step, one JSON decode and one ``yield``.
Dialects decode their ordinary token frames through a typed ``msgspec`` view (only the fields
they need; about twice as fast as a generic parse) and hand anything unusual — final frames,
errors, shapes that do not fit — to a generic parser that names the violation precisely. There
is no logging, metric update or clock read per token (the clock is read once, for the first).

``TaskRequest.extra`` keys the HTTP adapters read: ``stop`` (a string or list of stop strings),
``endpoint`` (``"chat"`` or ``"completions"`` on the vLLM and OpenAI adapters) and
``engine_params`` (engine fields merged into the request body, e.g. ``{"ignore_eos": true}``).

Decisions recorded here (the contract left room):

* **Cancel** ends the stream with ``end`` carrying ``stop_reason: "cancelled"`` and the tokens
  delivered so far (not an ``error``): cancellation is the caller's wish, not a failure, and the
  orchestrator still learns that the stream is over. No ``token`` follows ``cancel()``'s return.
  ``cancel`` waits (bounded, 0.5 s) until the upstream response is closed, so a caller that
  inspects the engine right after ``cancel`` returns sees the disconnect.
* **started** is emitted at the first well-formed frame of a success response (the engine
  really started: TGI, for one, answers an overload as ``200`` plus one error event, which thus
  stays a lone ``error``); failures before that are a lone ``error`` event. ``started`` carries
  ``tokens_in`` where the engine reports it in every frame (llama.cpp ``tokens_evaluated``,
  Triton ``num_input_tokens``); the others report it with the usage at the end, and
  ``end.usage.prompt_tokens`` carries it for all.
* **Timeouts before the first byte** other than connect failures (slow headers, accept-then-close)
  are not retried: the engine may already be generating, and DESIGN.md allows stream retries only
  for connect failures and 429/503 before the body. Their terminal event still says
  ``retriable: true`` (the orchestrator may resubmit).
* **Upstream indices** (where a dialect carries one) must rise by exactly one; a repeated or
  reordered index is a protocol violation (``ADAPTER``/``INTERNAL``, not retriable), because the
  joined text could no longer be trusted.
* **Content-Type** of a success stream must be ``text/event-stream``; anything else (a proxy page,
  a JSON body) is a protocol violation.
* **health** is one probe without retries: the caller's polling is the retry loop, and a probe
  must answer "not ready" quickly while an engine loads.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar, Final

import anyio
import httpx
import msgspec

from ._observability import AdapterMetrics, log_event
from .api import (
    Capabilities,
    DeterminismLevel,
    InvalidTaskRequest,
    ProtocolError,
    TaskRequest,
    TokenEvent,
    UpstreamCondition,
    WorkerError,
    WorkerHealth,
    WorkerProps,
    Workload,
    error_for_condition,
)
from .http_util import (
    HttpClientConfig,
    RetryPolicy,
    RetryTimeline,
    SSEDecoder,
    aiter_chunks,
    build_client,
    error_from_exception,
    error_from_response,
    redact,
    retry_async,
)

__all__ = ["HttpAdapter", "StreamState", "json_frame", "protocol_error"]

_LOG = logging.getLogger("llorch.adapters")

#: How much of an error body is read before giving up (bounded memory on hostile engines).
_MAX_ERROR_BODY: Final = 64 * 1024
#: How many recent per-task retry timelines are kept as evidence.
_TIMELINES_KEPT: Final = 256
#: Upper bound for ``cancel`` waiting for the reader to close the upstream response.
_CANCEL_WAIT_S: Final = 0.5

_STOP_NORMAL: Final[Mapping[str, str]] = {
    # llama.cpp stop_type
    "limit": "length",
    "eos": "eos",
    "word": "stop",
    # OpenAI / vLLM finish_reason
    "length": "length",
    "stop": "stop",
    # TGI finish_reason
    "eos_token": "eos",
    "stop_sequence": "stop",
}


def protocol_error(message: str) -> WorkerError:
    """The table's PROTOCOL row (``ADAPTER``/``INTERNAL``, not retriable)."""
    return error_for_condition(UpstreamCondition.PROTOCOL, message)


class StreamState:
    """Mutable per-stream facts the dialect parser fills in while frames arrive.

    Slotted because it is touched once per frame on the hot path.
    """

    __slots__ = (
        "completion_tokens",
        "done",
        "engine_stop_reason",
        "extra",
        "last_index",
        "prompt_tokens",
        "stop_reason",
        "stop_string",
    )

    def __init__(self) -> None:
        self.done = False
        self.stop_reason: str | None = None
        self.engine_stop_reason: str | None = None
        self.stop_string: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.last_index: int | None = None
        self.extra: dict[str, Any] = {}

    def finished(self) -> bool:
        # A method so the reader re-reads the flag the parser sets (no stale type narrowing).
        return self.done

    def check_index(self, index: object) -> None:
        """Upstream indices must rise by exactly one (decision in the module docstring)."""
        if isinstance(index, bool) or not isinstance(index, int):
            return
        last = self.last_index
        if last is not None and index != last + 1:
            kind = "repeated" if index == last else "out of order"
            raise protocol_error(f"upstream token index {kind}: {index} after {last}")
        self.last_index = index

    def set_stop(self, raw: str | None) -> None:
        if raw is None:
            return
        self.engine_stop_reason = raw
        self.stop_reason = _STOP_NORMAL.get(raw, raw)


class _Task:
    __slots__ = ("cancelled", "closed", "response", "scope", "task_id")

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.response: httpx.Response | None = None
        self.scope: anyio.CancelScope | None = None
        self.cancelled = False
        self.closed = anyio.Event()

    def is_cancelled(self) -> bool:
        # A method, not the attribute: another task flips it while the reader is suspended,
        # which a type checker's narrowing of the attribute cannot know.
        return self.cancelled


class _NoRetry(Exception):
    """Carries a WorkerError out of ``retry_async`` without a retry (see module docstring)."""

    def __init__(self, error: WorkerError) -> None:
        super().__init__(error.message)
        self.error = error


class HttpAdapter:
    """Base of the engine adapters; subclasses describe their dialect.

    Subclasses set ``engine`` and implement ``_stream_request``, ``_parse_frame``,
    ``_fetch_engine_version``, ``health``, ``props`` and ``capabilities``. Construction takes only
    explicit configuration: ``http`` (timeouts, TLS, proxies), ``retry``, ``extra_headers`` (sent
    on every request — e.g. ``X-Mock-Fault`` in tests), ``api_key`` (sent as Bearer, never
    logged), ``model``, ``pool_id`` / ``replica_id`` (log and metric labels),
    ``sampler_profile_version``, ``metrics`` (an :class:`AdapterMetrics`; a private one by
    default), ``logger`` and ``client`` (an ``httpx.AsyncClient`` to share; built from ``http``
    otherwise and then owned by the adapter).
    """

    engine: ClassVar[str] = "unknown"
    #: Engines whose stream has no terminal frame end cleanly at EOF (instances may override).
    eof_is_terminal: bool = False
    #: Accepted success ``Content-Type`` prefixes for the stream.
    stream_content_types: ClassVar[tuple[str, ...]] = ("text/event-stream",)
    #: Extra headers on the stream request only (llama.cpp: ``Connection: close``).
    stream_headers: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self,
        base_url: str,
        *,
        http: HttpClientConfig | None = None,
        retry: RetryPolicy | None = None,
        extra_headers: Mapping[str, str] | None = None,
        api_key: str | None = None,
        model: str | None = None,
        pool_id: str = "default",
        replica_id: str = "r0",
        sampler_profile_version: str | None = None,
        metrics: AdapterMetrics | None = None,
        logger: logging.Logger | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            from .api import ConfigError

            raise ConfigError(f"{self.engine}: base_url must be an http(s) URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        config = http if http is not None else HttpClientConfig()
        headers = dict(config.headers)
        if extra_headers:
            headers.update(extra_headers)
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.http_config = dataclasses.replace(config, headers=headers)
        # Also sent per request, so that a shared ``client`` carries this adapter's headers.
        self._headers: dict[str, str] = headers
        self.retry_policy = retry if retry is not None else RetryPolicy()
        self.model = model
        self.pool_id = pool_id
        self.replica_id = replica_id
        self.sampler_profile_version = sampler_profile_version
        self.metrics = metrics if metrics is not None else AdapterMetrics()
        self.logger = logger if logger is not None else _LOG.getChild(self.engine)
        self._secrets: tuple[str, ...] = tuple(
            s for s in (api_key, *_sensitive_values(extra_headers or {})) if s
        )
        self._own_client = client is None
        self._client = client if client is not None else build_client(self.http_config)
        self._tasks: dict[str, _Task] = {}
        self._timelines: OrderedDict[str, RetryTimeline] = OrderedDict()
        self._engine_version: str | None = None
        self._ctx_max: int | None = None
        #: Timeline of the most recent operation (submit or control GET), as proof evidence.
        self.last_retry_timeline: RetryTimeline = RetryTimeline()

    # -- lifecycle ------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Cancel what is in flight and close the client if this adapter built it."""
        for task_id in list(self._tasks):
            await self.cancel(task_id)
        if self._own_client:
            await self._client.aclose()

    async def __aenter__(self) -> HttpAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def retry_timeline(self, task_id: str) -> RetryTimeline | None:
        """The retry evidence of a recent task (the last 256 are kept)."""
        return self._timelines.get(task_id)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    # -- helpers for subclasses -----------------------------------------------------------
    def url(self, path: str) -> str:
        return self.base_url + path

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    async def get(
        self,
        path: str,
        *,
        accept: frozenset[int] = frozenset({200}),
        retry: bool = True,
    ) -> httpx.Response:
        """GET with the total timeout; statuses outside ``accept`` raise the mapped WorkerError.

        Idempotent, so retried per the policy unless ``retry`` is false (then the timeline of
        the current operation is left alone).
        """
        url = self.url(path)
        timeline = RetryTimeline()
        if retry:
            self.last_retry_timeline = timeline
        limit = self.http_config.total_timeout_s

        async def op(attempt: int) -> httpx.Response:
            try:
                with anyio.fail_after(limit):
                    resp = await self._client.get(url, headers=self._headers)
            except TimeoutError:
                raise error_for_condition(
                    UpstreamCondition.TIMEOUT, f"GET {path} took longer than {limit} s"
                ) from None
            except httpx.HTTPError as exc:
                if _is_connect_error(exc):
                    raise error_from_exception(
                        exc, stage="connect", secrets=self._secrets
                    ) from None
                raise error_from_exception(exc, stage="first_byte", secrets=self._secrets) from None
            if resp.status_code not in accept:
                if resp.status_code < 400:  # e.g. a redirect: never followed, never guessed
                    raise error_for_condition(
                        UpstreamCondition.PROTOCOL,
                        f"GET {path}: unexpected HTTP {resp.status_code}",
                        upstream_status=resp.status_code,
                    )
                raise error_from_response(
                    resp.status_code, resp.headers, resp.content, secrets=self._secrets
                )
            return resp

        policy = (
            self.retry_policy if retry else dataclasses.replace(self.retry_policy, max_attempts=1)
        )
        return await retry_async(op, policy, idempotent=True, timeline=timeline)

    async def get_json(self, path: str, *, retry: bool = True) -> Any:
        resp = await self.get(path, retry=retry)
        try:
            return resp.json()
        except ValueError:
            raise protocol_error(f"GET {path}: body is not JSON") from None

    async def get_object(self, path: str, *, retry: bool = True) -> dict[str, Any]:
        """GET a JSON object; anything else is a protocol violation."""
        data = await self.get_json(path, retry=retry)
        if not isinstance(data, dict):
            raise protocol_error(f"GET {path}: expected a JSON object")
        return data

    async def probe(
        self, path: str, *, ready: frozenset[int], not_ready: frozenset[int]
    ) -> WorkerHealth:
        """One health probe: ``ready`` statuses → ready; ``not_ready`` → live only; refused → down."""
        try:
            resp = await self.get(path, accept=ready | not_ready, retry=False)
        except WorkerError as err:
            # Connection refused / timeout: nothing (usable) listens. Another status: the
            # process answers, so it is live, but it cannot take work.
            live = err.upstream_status is not None
            return WorkerHealth(live=live, ready=False)
        return WorkerHealth(live=True, ready=resp.status_code in ready)

    # -- the contract ---------------------------------------------------------------------
    async def engine_version(self) -> str:
        """Stable engine version string, fetched once and cached."""
        if self._engine_version is None:
            self._engine_version = await self._fetch_engine_version(retry=True)
        return self._engine_version

    async def health(self) -> WorkerHealth:
        raise NotImplementedError

    async def props(self) -> WorkerProps:
        raise NotImplementedError

    async def capabilities(self) -> Capabilities:
        raise NotImplementedError

    async def cancel(self, task_id: str) -> None:
        """Stop the task: no token after this returns; upstream closed; idempotent; unknown ids ok."""
        task = self._tasks.get(task_id)
        if task is None or task.cancelled:
            return
        task.cancelled = True
        scope = task.scope
        if scope is not None:
            # The reader is inside a read: interrupt it; it closes the response itself.
            scope.cancel()
            with anyio.move_on_after(_CANCEL_WAIT_S):
                await task.closed.wait()
        elif task.response is not None:
            # The reader is parked at a yield (or gone): nobody reads, so close it from here.
            await task.response.aclose()
        log_event(
            self.logger,
            logging.INFO,
            "cancel",
            "Cancel requested; upstream stream closed",
            secrets=self._secrets,
            job_id=task_id,
            engine=self.engine,
            engine_version=self._engine_version,
            pool_id=self.pool_id,
            replica_id=self.replica_id,
        )

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        """Validate now (raising :class:`InvalidTaskRequest`), then stream lazily."""
        try:
            prompt = self._validate(request)
            if request.task_id in self._tasks:
                raise InvalidTaskRequest(
                    "task_id", "is already in flight on this adapter", request.task_id
                )
            path, body = self._stream_request(request, prompt)
            self._merge_engine_params(body, request.extra.get("engine_params"))
        except WorkerError as err:
            self.metrics.rejected(self.engine, err.code.value)
            raise
        return self._run(request, path, body)

    # -- dialect hooks --------------------------------------------------------------------
    def _validate(self, request: TaskRequest) -> str:
        """Engine-independent checks; returns the prompt text to send."""
        if request.workload is not Workload.COMPLETION:
            raise InvalidTaskRequest(
                "workload",
                f"the {self.engine} adapter streams completions only",
                str(request.workload),
            )
        if request.max_tokens > request.ctx:
            raise InvalidTaskRequest(
                "max_tokens", f"must not exceed ctx ({request.ctx})", request.max_tokens
            )
        if self._ctx_max is not None and request.ctx > self._ctx_max:
            raise InvalidTaskRequest(
                "ctx", f"exceeds the engine's context window ({self._ctx_max})", request.ctx
            )
        if request.prompt is not None:
            return request.prompt
        return "\n".join(request.inputs or ())

    def _strict(self, request: TaskRequest) -> bool:
        return request.determinism is DeterminismLevel.STRICT

    async def _prepare_body(self, path: str, body: dict[str, Any], deadline: float) -> str:
        """Last async look at the request before it is sent (e.g. a model name asked from the
        engine once); returns the path. Bounded by the deadline, never on the per-token path."""
        return path

    def _merge_engine_params(self, body: dict[str, Any], params: object) -> None:
        """Merge ``extra["engine_params"]`` into the body (a dialect may place them itself)."""
        _merge_engine_params(body, params)

    def _stream_request(self, request: TaskRequest, prompt: str) -> tuple[str, dict[str, Any]]:
        """Path and JSON body of the native streaming call."""
        raise NotImplementedError

    def _parse_frame(self, data: str, st: StreamState) -> str | None:
        """One SSE ``data`` payload → the delta text (``None``/empty: no token).

        Sets ``st.done`` on the terminal frame; raises WorkerError for in-stream errors and
        protocol violations.
        """
        raise NotImplementedError

    async def _fetch_engine_version(self, *, retry: bool) -> str:
        raise NotImplementedError

    def _finalize(self, st: StreamState, request: TaskRequest, emitted: int) -> None:
        """Last look at the state before ``end`` (e.g. infer a stop reason the wire lacks)."""

    def _status_error(self, status: int, headers: httpx.Headers, body: bytes) -> WorkerError:
        """Error status before the stream → WorkerError (dialects may unwrap their envelope)."""
        return error_from_response(status, headers, body, secrets=self._secrets)

    # -- the stream machinery -------------------------------------------------------------
    def _log(
        self, level: int, action: str, human: str, request: TaskRequest, **fields: Any
    ) -> None:
        log_event(
            self.logger,
            level,
            action,
            human,
            secrets=self._secrets,
            job_id=request.task_id,
            session_id=request.session_id,
            engine=self.engine,
            engine_version=self._engine_version,
            pool_id=self.pool_id,
            replica_id=self.replica_id,
            **(
                {"correlation_id": request.extra["correlation_id"]}
                if "correlation_id" in request.extra
                else {}
            ),
            **fields,
        )

    async def _version_for_submit(self, deadline: float) -> str:
        if self._engine_version is not None:
            return self._engine_version
        # One attempt, bounded by the deadline: the stream request itself reports real failures.
        with anyio.move_on_after(max(0.0, min(deadline - anyio.current_time(), 2.0))):
            try:
                version = await self._fetch_engine_version(retry=False)
            except WorkerError:
                return "unknown"
            self._engine_version = version
            return version
        return "unknown"

    async def _open(
        self,
        task: _Task,
        path: str,
        body: bytes,
        deadline: float,
        timeline: RetryTimeline,
        correlation_id: str | None = None,
    ) -> httpx.Response | WorkerError | None:
        """Send the stream request; retry only connect failures and 429/503 before the body.

        Returns the response, the terminal WorkerError, or ``None`` when cancelled. A correlation
        id (set by the adapter host in ``TaskRequest.extra``, AH-1003) goes upstream as
        ``X-Correlation-Id`` so engine logs can be joined with ours.
        """
        url = self.url(path)
        headers = {
            **self._headers,
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            **self.stream_headers,
        }
        if correlation_id:
            headers["X-Correlation-Id"] = correlation_id

        async def op(attempt: int) -> httpx.Response:
            req = self._client.build_request("POST", url, content=body, headers=headers)
            try:
                resp = await self._client.send(req, stream=True)
            except httpx.HTTPError as exc:
                if _is_connect_error(exc):
                    raise error_from_exception(
                        exc, stage="connect", secrets=self._secrets
                    ) from None
                raise _NoRetry(
                    error_from_exception(exc, stage="first_byte", secrets=self._secrets)
                ) from None
            status = resp.status_code
            if status >= 300:
                try:
                    raw = await _read_bounded(resp, self.http_config.first_byte_timeout_s)
                finally:
                    await resp.aclose()
                if status < 400:  # a redirect: the adapter never follows one silently
                    raise _NoRetry(protocol_error(f"stream answered with HTTP {status}"))
                err = self._status_error(status, resp.headers, raw)
                if status in (429, 503):
                    raise err
                raise _NoRetry(err)
            ctype = resp.headers.get("content-type", "")
            if not ctype.startswith(self.stream_content_types):
                await resp.aclose()
                raise _NoRetry(protocol_error(f"stream answered with Content-Type {ctype[:60]!r}"))
            return resp

        with anyio.CancelScope(deadline=deadline) as scope:
            task.scope = scope
            try:
                return await retry_async(op, self.retry_policy, idempotent=True, timeline=timeline)
            except _NoRetry as wrapped:
                return wrapped.error
            except WorkerError as err:
                return err
            finally:
                task.scope = None
        if task.cancelled:
            return None
        return error_for_condition(
            UpstreamCondition.DEADLINE, "deadline_ms exceeded before the stream started"
        )

    async def _run(
        self, request: TaskRequest, path: str, body_obj: dict[str, Any]
    ) -> AsyncIterator[TokenEvent]:
        task = _Task(request.task_id)
        self._tasks[request.task_id] = task
        t0 = anyio.current_time()
        deadline = t0 + request.deadline_ms / 1000.0
        timeline = RetryTimeline()
        self.last_retry_timeline = timeline
        self._timelines[request.task_id] = timeline
        while len(self._timelines) > _TIMELINES_KEPT:
            self._timelines.popitem(last=False)
        labels: dict[str, object] = {
            "engine": self.engine,
            "engine_version": self._engine_version,
            "pool_id": self.pool_id,
            "replica_id": self.replica_id,
            "priority": str(request.priority),
        }
        self._log(
            logging.INFO,
            "submit",
            f"Submitting a completion of up to {request.max_tokens} tokens",
            request,
        )
        response: httpx.Response | None = None
        chunks: AsyncIterator[bytes] | None = None
        emitted = 0
        t_first: float | None = None
        started = False
        try:
            version = await self._version_for_submit(deadline)
            labels["engine_version"] = version
            path = await self._prepare_body(path, body_obj, deadline)
            body = json.dumps(body_obj, ensure_ascii=False, separators=(",", ":")).encode()
            cid = request.extra.get("correlation_id")
            opened = await self._open(
                task, path, body, deadline, timeline, cid if isinstance(cid, str) else None
            )
            if len(timeline):
                # OC-ADAPT-OAI-6030: retries and back-off are logged (once, not per attempt).
                self._log(
                    logging.INFO,
                    "retry",
                    f"Retried {len(timeline)} time(s) before the stream started",
                    request,
                    retries=timeline.to_list(),
                )
            if not isinstance(opened, httpx.Response):
                if opened is None:  # cancelled before the engine answered
                    yield self._started(request, version)
                    yield self._cancelled_end(request, labels, 0, None)
                    return
                yield self._fail(request, opened, 0, started=False)
                return
            response = opened
            task.response = response
            if task.is_cancelled():
                yield self._started(request, version)
                yield self._cancelled_end(request, labels, 0, None)
                return
            self._log(
                logging.INFO, "stream_start", "Engine accepted the task; streaming tokens", request
            )

            st = StreamState()
            decoder = SSEDecoder()
            chunks = aiter_chunks(response, inter_chunk_timeout_s=None, secrets=self._secrets)
            first_timeout = self.http_config.first_byte_timeout_s
            inter_timeout = self.http_config.inter_chunk_timeout_s
            timeout = first_timeout
            parse = self._parse_frame
            failure: WorkerError | None = None
            eof = False
            while not st.done and not eof:
                if task.is_cancelled():
                    break
                chunk = b""
                with anyio.CancelScope(
                    deadline=min(deadline, anyio.current_time() + timeout)
                ) as scope:
                    task.scope = scope
                    try:
                        chunk = await chunks.__anext__()
                    except StopAsyncIteration:
                        eof = True
                task.scope = None
                if scope.cancelled_caught:
                    if task.is_cancelled():
                        break
                    if anyio.current_time() >= deadline:
                        failure = error_for_condition(
                            UpstreamCondition.DEADLINE,
                            f"deadline_ms {request.deadline_ms} exceeded after {emitted} tokens",
                        )
                    else:
                        failure = error_for_condition(
                            UpstreamCondition.TIMEOUT,
                            f"no stream bytes for {timeout:g} s after {emitted} tokens",
                        )
                    break
                timeout = inter_timeout
                events = decoder.close() if eof else decoder.feed(chunk)
                for ev in events:
                    text = parse(ev.data, st)
                    if not started:
                        # At the first good frame: the engine really started, and tokens_in is
                        # known here for engines that report it in every frame.
                        started = True
                        self.metrics.started(labels)
                        yield self._started(request, version, st.prompt_tokens)
                    if text:
                        if task.is_cancelled():
                            break
                        if t_first is None:
                            t_first = anyio.current_time()
                        yield TokenEvent("token", {"t": text, "i": emitted})
                        emitted += 1
                    if st.finished():
                        break
            if task.is_cancelled():
                await response.aclose()
                task.closed.set()
                if not started:
                    yield self._started(request, version)
                yield self._cancelled_end(request, labels, emitted, t_first)
                return
            if failure is None and eof and decoder.truncated:
                failure = error_for_condition(
                    UpstreamCondition.RESET,
                    f"stream ended inside an SSE event after {emitted} tokens",
                )
            if failure is None and not st.done:
                if self.eof_is_terminal:
                    st.done = True
                else:
                    failure = error_for_condition(
                        UpstreamCondition.RESET,
                        f"stream ended before its terminal frame after {emitted} tokens",
                    )
            if failure is None and not eof:
                # The terminal frame came; read the little that follows ([DONE], a usage
                # chunk, the chunked-encoding end) so the connection goes back to the pool
                # (HTU-PERF-1301). Bounded: an engine that keeps talking is simply cut off.
                await _drain(chunks)
            await response.aclose()
            if failure is not None:
                yield self._fail(request, failure, emitted, started)
                return
            if not started:  # a stream that ended cleanly without any frame (EOF-terminated)
                started = True
                self.metrics.started(labels)
                yield self._started(request, version, st.prompt_tokens)
            t_end = anyio.current_time()
            first_ms = None if t_first is None else (t_first - t0) * 1000.0
            decode_ms = 0.0 if t_first is None else (t_end - t_first) * 1000.0
            self.metrics.finished(
                labels,
                tokens_in=st.prompt_tokens,
                tokens_out=emitted,
                first_token_ms=first_ms,
                decode_ms=decode_ms,
            )
            metrics: dict[str, Any] = {"latency_decode_ms": int(decode_ms), "tokens_out": emitted}
            if first_ms is not None:
                metrics["latency_first_token_ms"] = int(first_ms)
            yield TokenEvent.metrics(**metrics)
            self._finalize(st, request, emitted)
            end = self._end_data(st, emitted)
            self._log(
                logging.INFO,
                "end",
                f"Stream finished ({end['stop_reason']}) after {emitted} tokens",
                request,
                tokens_in=st.prompt_tokens,
                tokens_out=emitted,
                decode_time_ms=int(decode_ms),
            )
            yield TokenEvent.end(emitted, int(decode_ms), **end)
        except WorkerError as err:
            yield self._fail(request, err, emitted, started)
        except ProtocolError as exc:  # SSEDecodeError: oversized line/event
            yield self._fail(request, protocol_error(self.redact(str(exc))[:200]), emitted, started)
        except httpx.HTTPError as exc:
            transport = error_from_exception(exc, stage="stream", secrets=self._secrets)
            yield self._fail(request, transport, emitted, started)
        except Exception as exc:  # a bug in the adapter: still one terminal event
            self.logger.exception(
                "adapter bug while streaming", extra={"llorch": {"job_id": request.task_id}}
            )
            bug = error_for_condition(
                UpstreamCondition.ADAPTER_BUG,
                self.redact(f"adapter bug: {type(exc).__name__}: {exc}")[:200],
            )
            yield self._fail(request, bug, emitted, started)
        finally:
            task.scope = None
            with anyio.CancelScope(shield=True):
                if chunks is not None:
                    await chunks.aclose()  # type: ignore[attr-defined]
                if response is not None and not response.is_closed:
                    await response.aclose()
            task.closed.set()
            if self._tasks.get(request.task_id) is task:
                del self._tasks[request.task_id]

    # -- event builders -------------------------------------------------------------------
    def _started(
        self, request: TaskRequest, version: str, tokens_in: int | None = None
    ) -> TokenEvent:
        data: dict[str, Any] = {
            "engine": self.engine,
            "engine_version": version,
            "seed": request.seed,
            "sampler_profile_version": request.sampler_profile_version
            or self.sampler_profile_version,
        }
        if tokens_in is not None:
            data["tokens_in"] = tokens_in
        if self.model is not None:
            data["model"] = self.model
        return TokenEvent("started", data)

    def _end_data(self, st: StreamState, emitted: int) -> dict[str, Any]:
        data: dict[str, Any] = {"stop_reason": st.stop_reason or "eos"}
        if st.engine_stop_reason is not None:
            data["engine_stop_reason"] = st.engine_stop_reason
        if st.stop_string:
            data["stop_string"] = st.stop_string
        if st.prompt_tokens is not None or st.completion_tokens is not None:
            data["usage"] = {
                "prompt_tokens": st.prompt_tokens,
                "completion_tokens": st.completion_tokens
                if st.completion_tokens is not None
                else emitted,
            }
        return data

    def _cancelled_end(
        self,
        request: TaskRequest,
        labels: Mapping[str, object],
        emitted: int,
        t_first: float | None,
    ) -> TokenEvent:
        decode_ms = 0 if t_first is None else int((anyio.current_time() - t_first) * 1000)
        self.metrics.canceled(labels, "client")
        self._log(
            logging.INFO,
            "end",
            f"Stream cancelled by the caller after {emitted} tokens",
            request,
            tokens_out=emitted,
            decode_time_ms=decode_ms,
        )
        return TokenEvent.end(emitted, decode_ms, stop_reason="cancelled")

    def _fail(
        self, request: TaskRequest, err: WorkerError, emitted: int, started: bool
    ) -> TokenEvent:
        """The one terminal ``error`` event; its message is redacted (an engine may echo a key)."""
        if not started:
            self.metrics.rejected(self.engine, err.code.value)
        self._log_error(request, err, emitted)
        data = err.to_event_data()
        data["message"] = self.redact(err.message)
        return TokenEvent("error", data)

    def _log_error(self, request: TaskRequest, err: WorkerError, emitted: int) -> None:
        self._log(
            logging.WARNING,
            "error",
            f"Stream failed with {err.code.value}: {err.message}",
            request,
            tokens_out=emitted,
            error_kind=err.kind.value,
            retriable=err.retriable,
            retry_after_ms=err.retry_after_ms,
        )


def _merge_engine_params(body: dict[str, Any], params: object) -> None:
    """Merge ``TaskRequest.extra["engine_params"]`` into the request body.

    The escape hatch for engine knobs the contract has no field for (``ignore_eos``, ``top_k``,
    ...): keys go to the top level; a dict value meets a dict already there (TGI's
    ``parameters``) key by key. Anything but a mapping of names is an invalid request.
    """
    if params is None:
        return
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise InvalidTaskRequest(
            "extra.engine_params", "must be an object of engine fields", params
        )
    for key, value in params.items():
        current = body.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            current.update(value)
        else:
            body[key] = value


def _is_connect_error(exc: BaseException) -> bool:
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)


_SENSITIVE_HEADER_PARTS: Final = ("authorization", "token", "secret", "key", "cookie")


def _sensitive_values(headers: Mapping[str, str]) -> list[str]:
    """Values of headers that look like credentials, so redaction also catches their echo."""
    out: list[str] = []
    for name, value in headers.items():
        lname = name.lower()
        if any(part in lname for part in _SENSITIVE_HEADER_PARTS):
            out.append(
                value.split(" ", 1)[1] if lname == "authorization" and " " in value else value
            )
    return out


async def _drain(chunks: Any, *, max_bytes: int = 64 * 1024, timeout_s: float = 0.25) -> None:
    """Read a stream's remaining bytes (bounded in size and time) so its connection is reusable."""
    seen = 0
    with anyio.move_on_after(timeout_s):
        try:
            async for chunk in chunks:
                seen += len(chunk)
                if seen > max_bytes:
                    return
        except (httpx.HTTPError, WorkerError):
            return  # the stream already delivered its answer; a bad tail only costs the reuse


async def _read_bounded(resp: httpx.Response, timeout_s: float) -> bytes:
    """At most 64 KiB of an error body, bounded in time; what arrived is enough for a message."""
    buf = bytearray()
    with anyio.move_on_after(timeout_s):
        try:
            async for part in resp.aiter_bytes():
                buf += part
                if len(buf) >= _MAX_ERROR_BODY:
                    break
        except httpx.HTTPError:
            pass
    return bytes(buf[:_MAX_ERROR_BODY])


_JSON = msgspec.json.Decoder()


def json_frame(data: str) -> Any:
    """Parse one frame's JSON; malformed JSON is the PROTOCOL row of the table.

    msgspec first: this runs once per token and is the largest single cost of the hot path
    (2-3x faster than the standard library here). It is stricter than ``json`` about lone
    UTF-16 surrogate escapes, NaN and huge numbers, which some engines do emit, so a refusal
    falls back to ``json`` before the frame is called malformed.
    """
    try:
        return _JSON.decode(data)
    except msgspec.MsgspecError:
        pass
    try:
        return json.loads(data)
    except ValueError:
        raise protocol_error(f"malformed JSON in frame: {data[:60]!r}") from None
