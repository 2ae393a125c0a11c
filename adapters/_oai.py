"""The OpenAI-style stream shared by the vLLM and OpenAI adapters.

Wire facts (reference/engine-dialects.md §2 and §4; vllm ``serving_chat.py`` /
``serving_completion.py``, the OpenAI OpenAPI spec in openai-python):

* data-only SSE, ``data: {json}`` per chunk, terminated by ``data: [DONE]`` — a stream that ends
  without ``[DONE]`` lost its terminal frame (WORKER_RESET), even if a ``finish_reason`` was seen,
  because the usage chunk may still have been due.
* ``/v1/completions`` chunks carry ``choices[0].text``; chat chunks ``choices[0].delta.content``
  (the first chat chunk has ``role`` and an empty or null ``content``: no token).
* ``finish_reason`` (``stop|length|...``) rides on the last token's chunk (vLLM) or on an empty
  delta (OpenAI); vLLM adds ``stop_reason`` (the matched stop string, a token id or null).
* ``stream_options: {include_usage: true}`` → a chunk with ``choices: []`` and ``usage``
  (``prompt_tokens``, ``completion_tokens``) before ``[DONE]``.
* In-stream errors: ``data: {"error": {message, type, code}}`` (vLLM then sends ``[DONE]``); the
  old vLLM flat form ``{"object": "error", ...}`` too. ``code`` is an HTTP status int on vLLM and a
  string (``rate_limit_exceeded``) on OpenAI.
* Only choice ``index`` 0 is read (``n`` is always 1 here).
* Model discovery: without a configured ``model`` the body names the task's ``model_ref``; the
  adapter asks ``GET /v1/models`` once (cached per adapter, bounded by the task deadline) and,
  when the engine does not serve that name but serves exactly one model, sends that one — a
  vLLM started with ``--served-model-name tiny`` then answers instead of 404 "model ... does
  not exist". With several served models the name is left as it is (no silent guess).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import msgspec

from ._base import HttpAdapter, StreamState, json_object, protocol_error
from .api import TaskRequest, WorkerError
from .llamacpp import engine_error

__all__ = ["OpenAIStyleAdapter"]


# Typed views of an ordinary chunk: msgspec decodes only these fields (about 2x faster than a
# generic parse, on the per-token path). Unknown keys are skipped; a shape that does not fit
# raises, and the generic parser then takes over.
class _Delta(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    index: int = 0
    text: str | None = None
    delta: _Delta | None = None
    finish_reason: str | None = None
    stop_reason: str | int | msgspec.UnsetType | None = msgspec.UNSET


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice] | None = None
    usage: _Usage | None = None
    error: Any = None
    object: str | None = None


_CHUNK = msgspec.json.Decoder(_Chunk)


class OpenAIStyleAdapter(HttpAdapter):
    """Common body building and frame parsing of OpenAI-compatible streams."""

    #: ``"completions"`` or ``"chat"``; per request ``extra["endpoint"]`` overrides it.
    default_endpoint: str = "completions"
    #: Path prefix of the API (``/v1``).
    api_prefix: str = "/v1"
    #: Model ids the engine listed (``GET /v1/models``), asked once when no model is configured.
    _served: tuple[str, ...] | None = None

    async def served_models(self, *, retry: bool = True) -> tuple[str, ...]:
        """The model ids the engine serves (``GET {prefix}/models``); remembered."""
        doc = await self.get_object(f"{self.api_prefix}/models", retry=retry)
        data = doc.get("data")
        ids = (
            tuple(m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str))
            if isinstance(data, list)
            else ()
        )
        self._served = ids
        return ids

    @staticmethod
    def resolve_model(wanted: str, served: Sequence[str]) -> str:
        """``wanted`` when served (or nothing is known), else the engine's only model."""
        if not served or wanted in served:
            return wanted
        return served[0] if len(served) == 1 else wanted

    async def _prepare_body(self, path: str, body: dict[str, Any], deadline: float) -> str:
        if self.model is not None or not isinstance(body.get("model"), str):
            return path
        served = self._served
        if served is None:
            # One attempt, bounded: when it fails the stream request reports the real failure.
            # Bounded like the stream's own first byte: a silent engine must not make the
            # lookup cost more than the stream request would.
            limit = min(deadline - anyio.current_time(), self.http_config.first_byte_timeout_s, 2.0)
            with anyio.move_on_after(max(0.0, limit)):
                try:
                    served = await self.served_models(retry=False)
                except WorkerError:
                    served = None
        if served:
            body["model"] = self.resolve_model(body["model"], served)
        return path

    def _endpoint(self, request: TaskRequest) -> str:
        endpoint = request.extra.get("endpoint", self.default_endpoint)
        return "chat" if endpoint == "chat" else "completions"

    def _stream_request(self, request: TaskRequest, prompt: str) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {"model": self.model or request.model_ref}
        if self._endpoint(request) == "chat":
            path = f"{self.api_prefix}/chat/completions"
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            path = f"{self.api_prefix}/completions"
            body["prompt"] = prompt
        body["max_tokens"] = request.max_tokens
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        self._sampling(request, body, {"temperature": 0.0, "top_p": 1.0})
        return path, body

    def _finalize(self, st: StreamState, request: TaskRequest, emitted: int) -> None:
        # OpenAI says "stop" for both EOS and a matched stop sequence; without stop sequences in
        # the request only EOS is possible.
        if st.stop_reason == "stop" and not st.stop_string and not request.extra.get("stop"):
            st.stop_reason = "eos"

    def _parse_frame(self, data: str, st: StreamState) -> str | None:
        """Typed fast path for ordinary chunks; anything unusual takes the generic path."""
        if data == "[DONE]":
            st.done = True
            return None
        try:
            chunk = _CHUNK.decode(data)
        except msgspec.MsgspecError:
            return self._parse_generic(data, st)
        if chunk.error is not None or chunk.object == "error":
            return self._parse_generic(data, st)
        usage = chunk.usage
        if usage is not None:
            if usage.prompt_tokens is not None:
                st.prompt_tokens = usage.prompt_tokens
            if usage.completion_tokens is not None:
                st.completion_tokens = usage.completion_tokens
        choices = chunk.choices
        if not choices:
            return None
        choice = choices[0]
        if choice.index != 0:
            return None
        if choice.finish_reason:
            st.set_stop(choice.finish_reason)
            stop_reason = choice.stop_reason
            if isinstance(stop_reason, str) and stop_reason:
                st.stop_string = stop_reason
            elif st.stop_reason == "stop" and stop_reason is None:
                # vLLM: finish_reason "stop" with stop_reason null means EOS.
                st.stop_reason = "eos"
        delta = choice.delta
        return delta.content if delta is not None else choice.text

    def _parse_generic(self, data: str, st: StreamState) -> str | None:
        """Any JSON: errors, odd shapes; protocol violations are named precisely here."""
        obj = json_object(data, "stream chunk")
        err = obj.get("error")
        if err:
            raise engine_error(err)
        if obj.get("object") == "error":
            raise engine_error(obj)
        usage = obj.get("usage")
        if isinstance(usage, dict):
            pt, ct = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if isinstance(pt, int):
                st.prompt_tokens = pt
            if isinstance(ct, int):
                st.completion_tokens = ct
        choices = obj.get("choices")
        if not choices:
            return None
        choice = choices[0]
        if not isinstance(choice, dict):
            raise protocol_error("stream chunk choice is not an object")
        if choice.get("index", 0) != 0:
            return None
        finish = choice.get("finish_reason")
        if finish:
            st.set_stop(str(finish))
            stop_reason = choice.get("stop_reason")
            if isinstance(stop_reason, str) and stop_reason:
                st.stop_string = stop_reason
            elif st.stop_reason == "stop" and stop_reason is None and "stop_reason" in choice:
                # vLLM: finish_reason "stop" with stop_reason null means EOS.
                st.stop_reason = "eos"
        delta = choice.get("delta")
        text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
        if text is None:
            return None
        if not isinstance(text, str):
            raise protocol_error("stream chunk text is not a string")
        return text
