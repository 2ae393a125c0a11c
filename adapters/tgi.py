"""Hugging Face Text Generation Inference adapter (OC-ADAPT-5040/5050, ORCH-3056).

Wire facts used (reference/engine-dialects.md §3, huggingface/text-generation-inference router):

* ``POST /generate_stream`` with ``{"inputs", "parameters": {max_new_tokens, details: true,
  seed, do_sample, stop}}``. ``determinism: strict`` sends ``do_sample: false`` (greedy) and no
  ``temperature``/``top_p``: TGI refuses ``temperature 0`` and ``top_p 1`` as invalid, greedy is
  how it spells them.
* Frames: ``data: {"index" (from 1), "token": {id, text, logprob, special}, "generated_text",
  "details"}``; **no** ``[DONE]`` — the frame whose ``generated_text`` is not null is the last one
  and still carries a token. Special tokens (EOS) are not text: they yield no ``token`` event,
  matching ``generated_text``. ``details`` gives ``finish_reason`` (``length|eos_token|
  stop_sequence``), ``generated_tokens`` and ``input_length``.
* ``index`` must rise by one; repeats or reversals are protocol violations.
* Errors inside the stream (TGI answers overload and validation as 200 + one SSE event):
  ``{"error": "...", "error_type": "overloaded|validation|generation|incomplete_generation"}`` →
  POOL_UNAVAILABLE retriable / INVALID_PARAMS / WORKER_RESET / WORKER_RESET. Errors before the
  stream are ``{"error", "error_type"}`` with the HTTP status (429 overloaded, 422 validation, 424
  generation).
* ``GET /health``: 200 ready, 503 ``unhealthy`` live but not ready; refused while shards warm up.
* ``GET /info``: ``max_concurrent_requests`` (slots), ``max_total_tokens`` (ctx_max),
  ``version`` and ``sha`` (engine version ``<version>+<sha[:7]>``; the version alone when no sha).
"""

from __future__ import annotations

from typing import Any

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
)
from .llamacpp import condition_for_error_type

__all__ = ["TgiAdapter", "tgi_error"]


class _Token(msgspec.Struct):
    text: str
    special: bool = False


class _Event(msgspec.Struct):
    """The fields of a ``StreamResponse`` the hot path needs (others are skipped)."""

    index: int | None = None
    token: _Token | None = None
    generated_text: str | None = None
    error: Any = None


_EVENT = msgspec.json.Decoder(_Event)

_ERROR_TYPES = {
    "overloaded": UpstreamCondition.OVERLOADED,
    "validation": UpstreamCondition.INVALID_REQUEST,
    "generation": UpstreamCondition.SERVER_ERROR,
    "incomplete_generation": UpstreamCondition.RESET,
    "incomplete_generation_stream": UpstreamCondition.RESET,
    "healthcheck": UpstreamCondition.OVERLOADED,
}


def tgi_error(obj: dict[str, Any]) -> WorkerError:
    """TGI's ``{"error": str, "error_type": str}`` → WorkerError."""
    message = str(obj.get("error") or "engine error")
    etype = str(obj.get("error_type") or "")
    condition = _ERROR_TYPES.get(etype) or condition_for_error_type(etype, message)
    return error_for_condition(
        condition, f"engine error in stream ({etype or 'unknown'}): {message}"[:200]
    )


class TgiAdapter(HttpAdapter):
    """Adapter for TGI's native API; construct with ``(base_url, **explicit config)``."""

    engine = "tgi"

    async def health(self) -> WorkerHealth:
        return await self.probe("/health", ready=frozenset({200}), not_ready=frozenset({503}))

    async def _info(self, *, retry: bool = True) -> dict[str, Any]:
        return await self.get_object("/info", retry=retry)

    async def props(self) -> WorkerProps:
        info = await self._info()
        slots = info.get("max_concurrent_requests")
        return WorkerProps(slots_total=slots if isinstance(slots, int) else None, slots_free=None)

    async def capabilities(self) -> Capabilities:
        info = await self._info()
        ctx = info.get("max_total_tokens")
        ctx_max = ctx if isinstance(ctx, int) else None
        self._ctx_max = ctx_max
        self._engine_version = self._version_of(info)
        slots = info.get("max_concurrent_requests")
        return await self._capabilities(
            ctx_max=ctx_max,
            slots=slots if isinstance(slots, int) else None,
            features=("seed", "stop", "details", "cancel:close"),
            version=self._engine_version,
        )

    @staticmethod
    def _version_of(info: dict[str, Any]) -> str:
        version = info.get("version")
        if not isinstance(version, str) or not version:
            raise protocol_error("GET /info: no version")
        sha = info.get("sha")
        return f"{version}+{sha[:7]}" if isinstance(sha, str) and sha else version

    async def _fetch_engine_version(self, *, retry: bool) -> str:
        return self._version_of(await self._info(retry=retry))

    def _stream_request(self, request: TaskRequest, prompt: str) -> tuple[str, dict[str, Any]]:
        params: dict[str, Any] = {"max_new_tokens": request.max_tokens, "details": True}
        self._sampling(request, params, {"do_sample": False})
        return "/generate_stream", {"inputs": prompt, "parameters": params}

    def _parse_frame(self, data: str, st: StreamState) -> str | None:
        """Typed fast path for token events; the last event and errors go the generic way."""
        try:
            event = _EVENT.decode(data)
        except msgspec.MsgspecError:
            return self._parse_generic(data, st)
        token = event.token
        if token is None or event.generated_text is not None or event.error is not None:
            return self._parse_generic(data, st)
        st.check_index(event.index)
        return None if token.special else token.text

    def _parse_generic(self, data: str, st: StreamState) -> str | None:
        obj = json_object(data, "TGI frame")
        if "error" in obj:
            raise tgi_error(obj)
        st.check_index(obj.get("index"))
        token = obj.get("token")
        if not isinstance(token, dict):
            raise protocol_error("TGI frame has no token object")
        if obj.get("generated_text") is not None:
            st.done = True
            details = obj.get("details")
            if isinstance(details, dict):
                finish = details.get("finish_reason")
                if isinstance(finish, str):
                    st.set_stop(finish)
                gen, inp = details.get("generated_tokens"), details.get("input_length")
                if isinstance(gen, int):
                    st.completion_tokens = gen
                if isinstance(inp, int):
                    st.prompt_tokens = inp
            elif token.get("special"):
                st.set_stop("eos_token")
        if token.get("special"):
            return None
        text = token.get("text")
        if not isinstance(text, str):
            raise protocol_error("TGI token text is not a string")
        return text
