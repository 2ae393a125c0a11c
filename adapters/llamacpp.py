"""llama.cpp ``llama-server`` adapter over its *native* API (OC-ADAPT-5001/5002/5011, ORCH-3054).

Wire facts used (reference/engine-dialects.md §1, from ggml-org/llama.cpp ``tools/server``):

* ``POST /completion`` with ``stream: true`` — never the OpenAI-compatible routes
  (OC-ADAPT-5002). Body fields: ``prompt``, ``n_predict``, ``seed``, ``temperature``, ``top_p``,
  ``stop``, ``cache_prompt``. Frames are ``data: {json}`` with ``content``, ``stop``,
  ``tokens_predicted``, ``tokens_evaluated``; the final frame has ``stop: true``, ``stop_type``
  (``none|eos|limit|word``), ``stopping_word`` and ``timings``. There is **no** ``[DONE]``: a
  stream that ends without the ``stop: true`` frame is an EOF before the terminal frame
  (WORKER_RESET). An in-stream error is ``data: {"error": {code, message, type}}`` and the stream
  closes; its ``code`` is an HTTP status and maps through the table like one.
* ``tokens_predicted`` counts generated tokens and rises with every frame; a repeat or reversal
  is a protocol violation (``frame.duplicate_index`` / ``frame.out_of_order_index``). It may
  rise by more than one: the server holds back the text of an incomplete UTF-8 sequence (byte
  tokens) and sends it with a later token in one frame (seen on a real ``llama-server`` b11434 in
  the real-engine tier, e.g. ``1 → 3`` with ``content`` "� slot").
* Readiness: ``GET /health`` → 200 ready; 503 ``Loading model`` (every route answers so while
  loading) → live but not ready; refused → not live.
* Capacity: ``GET /slots`` (per-slot ``is_processing``) → slots total/free; when slots are
  disabled (501) ``GET /props`` ``total_slots``.
* Capabilities and version: ``GET /props`` → ``default_generation_settings.n_ctx`` (ctx_max),
  ``total_slots`` and ``build_info`` (``b<build>-<commit>``), the stable engine version.
* Determinism (``determinism: strict``): ``temperature 0``, ``top_p 1``, ``cache_prompt false``
  (the server documents prompt caching as possibly non-deterministic) and the request seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec

from ._base import HttpAdapter, StreamState, json_object, protocol_error
from .api import (
    Capabilities,
    TaskRequest,
    UpstreamCondition,
    WorkerError,
    WorkerHealth,
    WorkerProps,
    error_for_condition,
    error_for_status,
)

__all__ = ["LlamaCppAdapter", "condition_for_error_type", "engine_error"]


class _Partial(msgspec.Struct):
    """The fields of a partial ``/completion`` frame the hot path needs (others are skipped)."""

    content: str | None = None
    stop: bool = False
    tokens_predicted: int | None = None
    tokens_evaluated: int | None = None
    error: Any = None


_PARTIAL = msgspec.json.Decoder(_Partial)

#: Greedy, uncached decoding under ``determinism: strict`` (see the module docstring).
_GREEDY = {"temperature": 0.0, "top_p": 1.0, "cache_prompt": False}

_READY = frozenset({200})
_NOT_READY = frozenset({503})


def engine_error(err: Any) -> WorkerError:
    """An in-stream error object of an engine (``{code?, message, type?}`` or a string) → WorkerError.

    A numeric ``code`` is an HTTP status (llama.cpp, vLLM); otherwise the ``type`` word decides:
    validation words → INVALID_PARAMS, overload/unavailable words → POOL_UNAVAILABLE (retriable),
    anything else → the table's server-error row (WORKER_RESET, retriable).
    """
    if isinstance(err, dict):
        message = str(err.get("message") or err.get("type") or "engine error")
        code = err.get("code")
        kind = " ".join(
            str(v) for v in (err.get("type"), err.get("error_type"), code) if isinstance(v, str)
        )
    else:
        message, code, kind = str(err), None, ""
    text = f"engine error in stream: {message}"[:200]
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599:
        return error_for_status(code, text)
    return error_for_condition(condition_for_error_type(kind, message), text)


def condition_for_error_type(kind: str, message: str = "") -> UpstreamCondition:
    """Classify an engine's error-type word (TGI ``error_type``, OpenAI ``type``/``code``)."""
    word = f"{kind} {message}".lower()
    if any(
        w in word
        for w in ("overload", "unavailable", "rate_limit", "rate limit", "loading", "capacity")
    ):
        return UpstreamCondition.OVERLOADED
    if any(w in word for w in ("validation", "invalid", "bad request", "badrequest")):
        return UpstreamCondition.INVALID_REQUEST
    if "not_found" in word or "notfound" in word:
        return UpstreamCondition.MODEL_NOT_FOUND
    if "auth" in word or "permission" in word:
        return UpstreamCondition.AUTH
    return UpstreamCondition.SERVER_ERROR


def _check_predicted(st: StreamState, index: object) -> None:
    """``tokens_predicted`` must rise strictly; unlike other engines' indices it may skip (see
    the module docstring: held-back partial UTF-8 arrives with a later token)."""
    if isinstance(index, bool) or not isinstance(index, int):
        return
    last = st.last_index
    if last is not None and index <= last:
        kind = "repeated" if index == last else "out of order"
        raise protocol_error(f"upstream token index {kind}: {index} after {last}")
    st.last_index = index


class LlamaCppAdapter(HttpAdapter):
    """Adapter for ``llama-server``; construct with ``(base_url, **explicit config)``."""

    engine = "llamacpp"
    # llama-server closes the connection after every streamed response although it advertises
    # Keep-Alive; a pooled connection reused for the next POST races that close and fails with
    # "server disconnected without sending a response" (1 in 40 sequential tasks on a real
    # b11434 in the real-engine tier). Asking for the close up front removes the race.
    stream_headers: ClassVar[Mapping[str, str]] = {"Connection": "close"}

    async def health(self) -> WorkerHealth:
        return await self.probe("/health", ready=_READY, not_ready=_NOT_READY)

    async def props(self) -> WorkerProps:
        try:
            resp = await self.get("/slots", accept=frozenset({200, 501}))
        except WorkerError:
            raise
        if resp.status_code == 200:
            slots = resp.json()
            if not isinstance(slots, list):
                raise protocol_error("GET /slots: expected a JSON array")
            busy = sum(1 for s in slots if isinstance(s, dict) and s.get("is_processing"))
            return WorkerProps(slots_total=len(slots), slots_free=len(slots) - busy)
        props = await self.get_object("/props")
        total = props.get("total_slots")
        return WorkerProps(slots_total=total if isinstance(total, int) else None, slots_free=None)

    async def capabilities(self) -> Capabilities:
        props = await self.get_object("/props")
        settings = props.get("default_generation_settings")
        n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
        if not isinstance(n_ctx, int):
            n_ctx = props.get("n_ctx") if isinstance(props.get("n_ctx"), int) else None
        self._ctx_max = n_ctx
        build = props.get("build_info")
        if isinstance(build, str) and build:
            self._engine_version = build
        total = props.get("total_slots")
        return await self._capabilities(
            ctx_max=n_ctx,
            slots=total if isinstance(total, int) else None,
            features=("seed", "stop", "native_completion", "cancel:close"),
            # The real llama-server closes the connection after every stream despite
            # Keep-Alive, so this adapter asks for Connection: close on its stream POSTs (see
            # ``stream_headers``); stream connections are therefore never reused.
            declared_unsupported=("connection_reuse",),
        )

    async def engine_metrics(self) -> list[dict[str, Any]]:
        """Scrape ``GET /metrics`` (OC-ADAPT-5001a): the engine's own Prometheus samples.

        Each sample comes back as ``{name, labels, value}`` with the engine's labels plus the
        relabelling the metrics contract asks of forwarded engine metrics: ``engine``,
        ``engine_version``, ``pool_id`` and ``replica_id``. llama-server serves ``/metrics`` only
        when started with ``--metrics``; without it the endpoint answers 501, which is raised as
        the mapped ``WorkerError`` (the caller asked for something the engine does not offer).
        """
        from prometheus_client.parser import text_string_to_metric_families

        resp = await self.get("/metrics")
        version = await self.engine_version()
        extra = {
            "engine": self.engine,
            "engine_version": version,
            "pool_id": self.pool_id,
            "replica_id": self.replica_id,
        }
        try:
            families = list(text_string_to_metric_families(resp.text))
        except ValueError as exc:
            raise protocol_error(f"GET /metrics: not Prometheus text ({exc})"[:200]) from None
        return [
            {"name": sample.name, "labels": {**sample.labels, **extra}, "value": sample.value}
            for family in families
            for sample in family.samples
        ]

    async def _fetch_engine_version(self, *, retry: bool) -> str:
        return await self.get_text_field("/props", "build_info", retry=retry)

    def _stream_request(self, request: TaskRequest, prompt: str) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "prompt": prompt,
            "n_predict": request.max_tokens,
            "stream": True,
        }
        self._sampling(request, body, _GREEDY)
        return "/completion", body

    def _parse_frame(self, data: str, st: StreamState) -> str | None:
        """Typed fast path for partial frames; final, error and odd frames go the generic way."""
        try:
            frame = _PARTIAL.decode(data)
        except msgspec.MsgspecError:
            return self._parse_generic(data, st)
        if frame.stop or frame.error is not None:
            return self._parse_generic(data, st)
        _check_predicted(st, frame.tokens_predicted)
        if frame.tokens_evaluated is not None:
            st.prompt_tokens = frame.tokens_evaluated
        return frame.content

    def _parse_generic(self, data: str, st: StreamState) -> str | None:
        obj = json_object(data, "llama.cpp frame")
        if "error" in obj:
            raise engine_error(obj["error"])
        predicted = obj.get("tokens_predicted")
        content = obj.get("content")
        if obj.get("stop") is True:
            st.done = True
            stop_type = obj.get("stop_type")
            st.set_stop(stop_type if isinstance(stop_type, str) and stop_type != "none" else "eos")
            word = obj.get("stopping_word")
            if isinstance(word, str) and word:
                st.stop_string = word
            timings = obj.get("timings")
            prompt_n = timings.get("prompt_n") if isinstance(timings, dict) else None
            evaluated = obj.get("tokens_evaluated")
            st.prompt_tokens = (
                evaluated
                if isinstance(evaluated, int)
                else prompt_n
                if isinstance(prompt_n, int)
                else None
            )
            if isinstance(predicted, int):
                st.completion_tokens = predicted
            # Current builds send "" here; older ones repeat the whole text (same
            # tokens_predicted as the last partial). Only a frame that also advances the count
            # carries a new token.
            last = st.last_index
            if (
                isinstance(content, str)
                and content
                and isinstance(predicted, int)
                and predicted == (0 if last is None else last) + 1
            ):
                st.last_index = predicted
                return content
            return None
        _check_predicted(st, predicted)
        if content is None:
            return None
        if not isinstance(content, str):
            raise protocol_error("llama.cpp frame 'content' is not a string")
        return content
