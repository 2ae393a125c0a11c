"""Shared internal base of the HTTP adapters: everything except the engine's own wire dialect.

The five engine adapters differ in their URLs, request bodies, frame shapes and readiness
semantics; everything else is the same and lives here once, so each adapter module stays a thin
dialect description:

* construction from ``(base_url, **explicit config)`` — never the environment (OC-ADAPT 40 §1A);
* the HTTP frame source of the one stream lifecycle (``adapters._lifecycle``, shared with the
  mock adapter, which owns the task registry, ``cancel``, the ``deadline_ms`` budget, first-byte
  and inter-chunk timeouts, the one terminal event, ``started`` / ``metrics`` / ``end`` payloads,
  lifecycle logs and contract metrics): opening the stream with retries *only before the first
  byte* (connect failure, 429/503 — DESIGN.md), recorded in a
  :class:`~adapters.http_util.RetryTimeline` kept per task, and incremental reading: raw chunks →
  :class:`~adapters.http_util.SSEDecoder` → the dialect's ``_parse_frame``;
* the control GETs (health, capabilities, version) with the mapped errors.

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
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar, Final
from urllib.parse import quote

import anyio
import httpx
import msgspec

from ._lifecycle import FrameSource, StreamAdapter, StreamRun, StreamState, protocol_error
from ._observability import AdapterMetrics
from .api import (
    Capabilities,
    DeterminismLevel,
    InvalidTaskRequest,
    TaskRequest,
    TokenEvent,
    UpstreamCondition,
    WorkerError,
    WorkerHealth,
    WorkerProps,
    error_for_condition,
)
from .http_util import (
    ACCEPT_ENCODING,
    DecodeLimits,
    HttpClientConfig,
    RetryPolicy,
    RetryTimeline,
    SSEDecoder,
    SSEEvent,
    aiter_chunks,
    aiter_decoded,
    build_client,
    error_from_exception,
    error_from_response,
    fetch,
    retry_async,
)

__all__ = ["HttpAdapter", "StreamState", "json_frame", "json_object", "protocol_error"]

_LOG = logging.getLogger("llorch.adapters")

#: How much of an error body is read before giving up (bounded memory on hostile engines).
_MAX_ERROR_BODY: Final = 64 * 1024


class _NoRetry(Exception):
    """Carries a WorkerError out of ``retry_async`` without a retry (see module docstring)."""

    def __init__(self, error: WorkerError) -> None:
        super().__init__(error.message)
        self.error = error


class HttpAdapter(StreamAdapter):
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
        self._init_stream(
            http=dataclasses.replace(config, headers=headers),
            retry=retry,
            pool_id=pool_id,
            replica_id=replica_id,
            sampler_profile_version=sampler_profile_version,
            metrics=metrics,
            logger=logger if logger is not None else _LOG.getChild(self.engine),
            secrets=tuple(s for s in (api_key, *_sensitive_values(extra_headers or {})) if s),
            model=model,
        )
        # Also sent per request, so that a shared ``client`` carries this adapter's headers.
        self._headers: dict[str, str] = headers
        # ... and the codings our bounded decoder handles, whatever a shared client advertises.
        self._request_headers = {"Accept-Encoding": ACCEPT_ENCODING, **headers}
        self._own_client = client is None
        self._client = client if client is not None else build_client(self.http_config)

    # -- lifecycle ------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Cancel what is in flight and close the client if this adapter built it."""
        await super().aclose()
        if self._own_client:
            await self._client.aclose()

    # -- helpers for subclasses -----------------------------------------------------------
    def url(self, path: str) -> str:
        return self.base_url + path

    async def get(
        self,
        path: str,
        *,
        accept: frozenset[int] = frozenset({200}),
        retry: bool = True,
    ) -> httpx.Response:
        """GET with the total timeout; statuses outside ``accept`` raise the mapped WorkerError.

        The body is read whole but bounded: at most ``HttpClientConfig.max_body_bytes`` decoded
        bytes, compressed bodies decoded in small steps within the ratio limit (PROTOCOL error
        otherwise). Idempotent, so retried per the policy unless ``retry`` is false (then the
        timeline of the current operation is left alone).
        """
        url = self.url(path)
        timeline = RetryTimeline()
        if retry:
            self.last_retry_timeline = timeline
        config = self.http_config

        async def op(attempt: int) -> httpx.Response:
            # Bounded in time and in decoded bytes (a compressed bomb on /health is an error,
            # never gigabytes in memory or a "ready"); see http_util.fetch.
            resp = await fetch(
                self._client,
                "GET",
                url,
                total_timeout_s=config.total_timeout_s,
                secrets=self._secrets,
                max_body_bytes=config.max_body_bytes,
                raise_for_status=False,
                headers=self._request_headers,
            )
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

    async def get_text_field(self, path: str, key: str, *, retry: bool = True) -> str:
        """A non-empty string field of a JSON object (an engine's version); PROTOCOL otherwise."""
        value = (await self.get_object(path, retry=retry)).get(key)
        if not isinstance(value, str) or not value:
            raise protocol_error(f"GET {path}: no {key}")
        return value

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

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        """Validate now (raising :class:`InvalidTaskRequest`), then stream lazily."""
        try:
            prompt = self._validate(request)
            path, body = self._stream_request(request, prompt)
            self._merge_engine_params(body, request.extra.get("engine_params"))
        except WorkerError as err:
            self.metrics.rejected(self.engine, err.code.value)
            raise
        return self._run(request, _HttpSource(self, request, path, body))

    # -- dialect hooks --------------------------------------------------------------------
    def _strict(self, request: TaskRequest) -> bool:
        return request.determinism is DeterminismLevel.STRICT

    def _sampling(
        self, request: TaskRequest, into: dict[str, Any], greedy: Mapping[str, Any]
    ) -> None:
        """The request's ``seed``, the dialect's ``greedy`` fields under ``determinism: strict``
        and its stop strings (``stop``, always a list), into a body or its parameters."""
        if request.seed is not None:
            into["seed"] = request.seed
        if self._strict(request):
            into.update(greedy)
        stop = request.extra.get("stop")
        if stop:
            into["stop"] = list(stop) if not isinstance(stop, str) else [stop]

    async def _capabilities(
        self,
        *,
        ctx_max: int | None,
        slots: int | None,
        features: tuple[str, ...],
        version: str | None = None,
        declared_unsupported: tuple[str, ...] = (),
    ) -> Capabilities:
        """Capabilities of a completion engine: what differs per dialect is passed in."""
        return Capabilities(
            engine=self.engine,
            engine_version=version if version is not None else await self.engine_version(),
            sampler_profile_version=self.sampler_profile_version,
            ctx_max=ctx_max,
            max_tokens_out=ctx_max,
            slots=slots,
            supported_workloads=("completion",),
            features=features,
            declared_unsupported=declared_unsupported,
        )

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

    def _status_error(self, status: int, headers: httpx.Headers, body: bytes) -> WorkerError:
        """Error status before the stream → WorkerError (dialects may unwrap their envelope)."""
        return error_from_response(status, headers, body, secrets=self._secrets)

    def _failure_of(self, run: StreamRun, exc: Exception) -> WorkerError:
        if isinstance(exc, httpx.HTTPError):
            return error_from_exception(exc, stage="stream", secrets=self._secrets)
        return super()._failure_of(run, exc)

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

    async def _send(
        self,
        path: str,
        body: bytes,
        timeline: RetryTimeline,
        correlation_id: str | None = None,
        deadline: float | None = None,
    ) -> httpx.Response | WorkerError:
        """Send the stream request; retry only connect failures and 429/503 before the body.

        Returns the response or the terminal WorkerError (the caller's cancel scope bounds it by
        the deadline and ``cancel``). A retry whose wait (back-off or ``Retry-After``) would end
        past ``deadline`` is not started: the 429/503 goes back at once as POOL_UNAVAILABLE with
        its ``retry_after_ms`` (issue 16 item 14), instead of sleeping into DEADLINE_UNMET. A
        correlation
        id (set by the adapter host in ``TaskRequest.extra``, AH-1003) goes upstream as
        ``X-Correlation-Id`` so engine logs can be joined with ours.
        """
        url = self.url(path)
        headers = {
            **self._request_headers,
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            **self.stream_headers,
        }
        if correlation_id:
            headers["X-Correlation-Id"] = wire_correlation_id(correlation_id)

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

        try:
            return await retry_async(
                op, self.retry_policy, idempotent=True, timeline=timeline, deadline=deadline
            )
        except _NoRetry as wrapped:
            return wrapped.error
        except WorkerError as err:
            return err


class _HttpSource(FrameSource):
    """The frames of an HTTP engine: its SSE body, parsed by the adapter's dialect."""

    __slots__ = ("adapter", "body", "chunks", "decoder", "path", "request", "response")

    def __init__(
        self, adapter: HttpAdapter, request: TaskRequest, path: str, body: dict[str, Any]
    ) -> None:
        self.adapter = adapter
        self.request = request
        self.path = path
        self.body = body
        self.response: httpx.Response | None = None
        self.chunks: AsyncGenerator[bytes, None] | None = None
        self.decoder = SSEDecoder()

    async def open(self, run: StreamRun) -> WorkerError | None:
        """Version (once), the dialect's last look at the body, then the POST with retries."""
        adapter = self.adapter
        run.version = await adapter._version_for_submit(run.deadline)
        run.labels["engine_version"] = run.version
        path = await adapter._prepare_body(self.path, self.body, run.deadline)
        body = json.dumps(self.body, ensure_ascii=False, separators=(",", ":")).encode()
        cid = self.request.extra.get("correlation_id")
        opened = await adapter._send(
            path, body, run.timeline, cid if isinstance(cid, str) else None, run.deadline
        )
        if isinstance(opened, WorkerError):
            return opened
        self.response = opened
        self.chunks = aiter_chunks(
            opened,
            inter_chunk_timeout_s=None,
            secrets=adapter._secrets,
            limits=adapter.http_config.decode_limits(),
        )
        return None

    async def read(self) -> Sequence[SSEEvent] | None:
        assert self.chunks is not None
        try:
            chunk = await self.chunks.__anext__()
        except StopAsyncIteration:
            self.decoder.close()
            return None
        return self.decoder.feed(chunk)

    def parse(self, frame: SSEEvent, st: StreamState) -> str | None:
        return self.adapter._parse_frame(frame.data, st)

    def at_eof(self, st: StreamState, emitted: int) -> WorkerError | None:
        if self.decoder.truncated:
            return error_for_condition(
                UpstreamCondition.RESET,
                f"stream ended inside an SSE event after {emitted} tokens",
            )
        if not st.done and self.adapter.eof_is_terminal:
            st.done = True
        return super().at_eof(st, emitted)

    async def finish(self) -> None:
        # The terminal frame came; read the little that follows ([DONE], a usage chunk, the
        # chunked-encoding end) so the connection goes back to the pool (HTU-PERF-1301).
        # Bounded: an engine that keeps talking is simply cut off.
        if self.chunks is not None:
            await _drain(self.chunks)

    async def aclose(self) -> None:
        chunks, response = self.chunks, self.response
        if chunks is not None:
            await chunks.aclose()
        if response is not None and not response.is_closed:
            await response.aclose()


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


#: Characters sent as they are in ``X-Correlation-Id``: visible ASCII (RFC 9110 field values).
_CID_PLAIN: Final = frozenset(chr(c) for c in range(0x21, 0x7F)) - {"%"}
_CID_MAX: Final = 256


def wire_correlation_id(value: str) -> str:
    """The correlation id as it may travel in a header: visible ASCII, at most 256 characters.

    A caller's id with spaces, control characters or non-ASCII letters (issue 16 item 15: it
    used to fail inside httpx as an "adapter bug") is sent percent-encoded as UTF-8 (lone
    surrogates as ``\\udXXX`` escapes first) — the same id stays recognisable in the engine's
    logs; ours keep the original.
    """
    if len(value) <= _CID_MAX and all(ch in _CID_PLAIN for ch in value):
        return value
    text = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return quote(text, safe="".join(sorted(_CID_PLAIN)))[:_CID_MAX]


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
    # Decoded in bounded steps: a compressed bomb as a 429 body is cut at 64 KiB like any other.
    limits = DecodeLimits(max_bytes=2 * _MAX_ERROR_BODY)
    with anyio.move_on_after(timeout_s):
        parts = aiter_decoded(resp, limits)
        try:
            async for part in parts:
                buf += part
                if len(buf) >= _MAX_ERROR_BODY:
                    break
        except (httpx.HTTPError, WorkerError):
            pass
        finally:
            await parts.aclose()
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


def json_object(data: str, what: str) -> dict[str, Any]:
    """One frame that must be a JSON object (the generic parsers' start); PROTOCOL otherwise."""
    obj = json_frame(data)
    if not isinstance(obj, dict):
        raise protocol_error(f"{what} is not a JSON object")
    return obj
