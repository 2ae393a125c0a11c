"""NVIDIA Triton Inference Server adapter, generate extension (OC-ADAPT-5060/5070, ORCH-3057).

Wire facts used (reference/engine-dialects.md §5, triton-inference-server/server
``http_server.cc`` and the generate-extension doc):

* ``POST /v2/models/{model}/generate_stream`` with ``{"id", "text_input", "stream": true,
  "exclude_input_in_output": true, "return_finish_reason": true, "return_num_input_tokens":
  true, "return_num_output_tokens": true, "sampling_parameters": "{max_tokens, seed,
  temperature, top_p, stop}"}`` — top-level keys naming inputs of the vLLM-backend-shaped model
  become input tensors; the sampling knobs are the backend's ``sampling_parameters`` JSON string
  input (``determinism: strict`` sends ``temperature 0`` and ``top_p 1``). Not request
  ``parameters``: real Triton 2.51 refuses lists there (a list of stop strings → 400
  "parameter 'stop' has invalid type"), and the backend reads the request parameters — which
  also carry every other non-input top-level key such as ``id`` — only when that input is
  absent. Each model response is one ``data: {json}`` event (keys
  sorted) with the ``text_output`` delta, ``finish_reason`` (``"None"`` until the last response,
  then ``length``/``stop``), the token counts, ``model_name``, ``model_version`` and the echoed
  ``id``. There is **no terminator**: the chunked body ends after the final response. Because
  the adapter asks for ``finish_reason``, the response carrying a real one is the terminal frame
  and an end of body before it is WORKER_RESET (``require_finish_reason=False`` for backends
  without that output: then a clean end of body ends the stream and the stop reason is inferred,
  ``length`` when ``max_tokens`` outputs arrived, ``eos`` before that). ``finish_reason`` ``stop``
  means EOS unless stop strings were requested. ``num_output_tokens`` is per response and summed
  (it counts the EOS step, as vLLM does).
* Errors: ``{"error": "<message>"}`` — as the HTTP body before the stream (status from the Triton
  error code: 400 invalid argument, 404 unknown model, 503 unavailable, 500 internal), or as an
  SSE event inside the stream (status 200 after the first response; when the *first* response
  fails the status is already the error but the body is still SSE-framed, so the ``data:`` prefix
  is unwrapped before reading the message).
* ``GET /v2/health/ready``: 200 ready, 400 not ready (then ``/v2/health/live`` says if the process
  is live); refused while the repository loads.
* Model discovery: without a configured ``model`` the adapter asks the repository index
  (``POST /v2/repository/index``, ready models) once and takes the first model by name whose
  metadata has a ``text_input`` input (an LLM-shaped model), so ``run --dialect triton
  --engine-url URL`` works against a server without naming its model.
* ``GET /v2`` server metadata ``version`` → engine version ``<version>``; ``GET
  /v2/models/{model}/config`` → ``instance_group[].count`` (slots) and ``parameters`` (a
  ``max_model_len``/``max_tokens`` entry gives ctx_max) when the server exposes them.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import msgspec

from ._base import HttpAdapter, StreamState, json_object, protocol_error
from .api import (
    Capabilities,
    ConfigError,
    TaskRequest,
    UpstreamCondition,
    WorkerError,
    WorkerHealth,
    WorkerProps,
    error_for_condition,
)
from .http_util import error_from_exception, error_from_response
from .llamacpp import engine_error

__all__ = ["TritonAdapter"]


class _Response(msgspec.Struct):
    """The fields of a generate response the hot path needs (others are skipped)."""

    text_output: str | None = None
    finish_reason: str | None = None
    num_input_tokens: int | None = None
    num_output_tokens: int | None = None
    error: Any = None


_RESPONSE = msgspec.json.Decoder(_Response)
_PARAMS = msgspec.json.Encoder()


class TritonAdapter(HttpAdapter):
    """Adapter for Triton's generate extension; needs ``model`` (the Triton model name)."""

    engine = "triton"

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        require_finish_reason: bool = True,
        **config: Any,
    ) -> None:
        if model is not None and not model:
            raise ConfigError("triton: model must not be empty (omit it to ask the server)")
        super().__init__(base_url, model=model, **config)
        #: With a backend that reports ``finish_reason`` (the vLLM backend does), the response
        #: carrying it is the terminal frame and an EOF before it is a reset; without one the
        #: end of the body is the only end signal.
        self.require_finish_reason = require_finish_reason
        self.eof_is_terminal = not require_finish_reason

    def _model_path(self) -> str:
        return f"/v2/models/{self.model}"

    async def served_models(self, *, retry: bool = True) -> tuple[str, ...]:
        """Ready models that take ``text_input`` (LLM-shaped), by name; from the repository
        index (``POST /v2/repository/index``) and each model's metadata."""
        limit = self.http_config.total_timeout_s
        try:
            with anyio.fail_after(limit):
                raw = await self._client.post(
                    self.url("/v2/repository/index"), json={"ready": True}, headers=self._headers
                )
        except TimeoutError:
            raise error_for_condition(
                UpstreamCondition.TIMEOUT, f"POST /v2/repository/index took over {limit} s"
            ) from None
        except httpx.HTTPError as exc:
            raise error_from_exception(exc, stage="connect", secrets=self._secrets) from None
        if raw.status_code != 200:
            raise error_from_response(
                raw.status_code, raw.headers, raw.content, secrets=self._secrets
            )
        try:
            resp = raw.json()
        except ValueError:
            raise protocol_error("POST /v2/repository/index: body is not JSON") from None
        names = sorted(
            {
                m["name"]
                for m in resp
                if isinstance(m, dict)
                and isinstance(m.get("name"), str)
                and m.get("state", "READY") == "READY"
            }
            if isinstance(resp, list)
            else set()
        )
        out: list[str] = []
        for name in names:
            meta = await self.get(f"/v2/models/{name}", accept=frozenset({200, 400, 404}))
            doc = meta.json() if meta.status_code == 200 else {}
            inputs = doc.get("inputs") if isinstance(doc, dict) else None
            if isinstance(inputs, list) and any(
                isinstance(i, dict) and i.get("name") == "text_input" for i in inputs
            ):
                out.append(name)
        return tuple(out)

    async def _ensure_model(self, *, retry: bool = True) -> str:
        """The configured model, else the server's first LLM-shaped ready model (by name)."""
        if self.model is None:
            served = await self.served_models(retry=retry)
            if not served:
                raise error_for_condition(
                    UpstreamCondition.MODEL_NOT_FOUND,
                    "no ready model with a text_input input on this Triton server",
                )
            self.model = served[0]
        return self.model

    async def _prepare_body(self, path: str, body: dict[str, Any], deadline: float) -> str:
        if self.model is not None:
            return path
        try:
            limit = min(deadline - anyio.current_time(), self.http_config.first_byte_timeout_s, 5.0)
            with anyio.fail_after(max(0.0, limit)):
                await self._ensure_model(retry=False)
        except (WorkerError, TimeoutError):
            return path  # the stream request then reports the engine's own failure
        return f"{self._model_path()}/generate_stream"

    async def health(self) -> WorkerHealth:
        ready = await self.probe(
            "/v2/health/ready", ready=frozenset({200}), not_ready=frozenset({400})
        )
        if ready.ready or not ready.live:
            return ready
        live = await self.probe(
            "/v2/health/live", ready=frozenset({200}), not_ready=frozenset({400})
        )
        return WorkerHealth(live=live.ready, ready=False)

    async def _config(self) -> dict[str, Any] | None:
        try:
            resp = await self.get(
                f"{self._model_path()}/config", accept=frozenset({200, 400, 404, 501})
            )
        except WorkerError:
            raise
        if resp.status_code != 200:
            return None
        doc = resp.json()
        return doc if isinstance(doc, dict) else None

    async def props(self) -> WorkerProps:
        await self._ensure_model()
        await self.get(f"{self._model_path()}/ready", accept=frozenset({200, 400}))
        config = await self._config()
        total = _instances(config)
        return WorkerProps(slots_total=total, slots_free=None)

    async def capabilities(self) -> Capabilities:
        await self._ensure_model()
        await self.get_object(self._model_path())  # model metadata: the model must exist
        config = await self._config()
        ctx_max = _ctx_from_config(config)
        self._ctx_max = ctx_max
        return await self._capabilities(
            ctx_max=ctx_max,
            slots=_instances(config),
            features=("seed", "generate_stream", "cancel:close"),
        )

    async def _fetch_engine_version(self, *, retry: bool) -> str:
        return await self.get_text_field("/v2", "version", retry=retry)

    def _stream_request(self, request: TaskRequest, prompt: str) -> tuple[str, dict[str, Any]]:
        params: dict[str, Any] = {"max_tokens": request.max_tokens}
        self._sampling(request, params, {"temperature": 0.0, "top_p": 1.0})
        body = {
            "id": request.task_id,
            "text_input": prompt,
            "stream": True,
            "exclude_input_in_output": True,
            "return_finish_reason": True,
            "return_num_input_tokens": True,
            "return_num_output_tokens": True,
            # The sampling knobs travel as the backend's ``sampling_parameters`` JSON input, not
            # as request parameters: real Triton refuses a list (stop strings) among request
            # parameters, and it hands every other top-level key (``id``) to the backend as a
            # request parameter too, which the vLLM backend would pass to SamplingParams.
            "sampling_parameters": _PARAMS.encode(params).decode(),
        }
        return f"{self._model_path()}/generate_stream", body

    def _merge_engine_params(self, body: dict[str, Any], params: object) -> None:
        """Sampling knobs in ``engine_params`` (under ``parameters`` or ``sampling_parameters``)
        join the ``sampling_parameters`` JSON; other keys go to the top level as usual."""
        if isinstance(params, dict):
            knobs: dict[str, Any] = {}
            rest: dict[str, Any] = {}
            for key, value in params.items():
                if key in ("parameters", "sampling_parameters") and isinstance(value, dict):
                    knobs.update(value)
                else:
                    rest[key] = value
            if knobs:
                merged = msgspec.json.decode(body["sampling_parameters"])
                merged.update(knobs)
                body["sampling_parameters"] = _PARAMS.encode(merged).decode()
            params = rest
        super()._merge_engine_params(body, params)

    def _finalize(self, st: StreamState, request: TaskRequest, emitted: int) -> None:
        if st.stop_reason is None:
            st.stop_reason = "length" if emitted >= request.max_tokens else "eos"
        elif st.stop_reason == "stop" and not request.extra.get("stop"):
            # The vLLM backend says "stop" for EOS and for a stop string alike.
            st.stop_reason = "eos"

    def _status_error(self, status: int, headers: httpx.Headers, body: bytes) -> WorkerError:
        text = body.strip()
        if text.startswith(b"data:"):
            text = text[5:].strip()
        return error_from_response(status, headers, text, secrets=self._secrets)

    def _parse_frame(self, data: str, st: StreamState) -> str | None:
        """Typed fast path for intermediate responses; the final one and errors go generic."""
        try:
            resp = _RESPONSE.decode(data)
        except msgspec.MsgspecError:
            return self._parse_generic(data, st)
        if resp.error is not None or resp.finish_reason not in (None, "None"):
            return self._parse_generic(data, st)
        if resp.num_input_tokens is not None:
            st.prompt_tokens = resp.num_input_tokens
        if resp.num_output_tokens is not None:
            st.completion_tokens = (st.completion_tokens or 0) + resp.num_output_tokens
        return resp.text_output

    def _parse_generic(self, data: str, st: StreamState) -> str | None:
        obj = json_object(data, "Triton response")
        if "error" in obj:
            raise engine_error(obj["error"])
        finish = obj.get("finish_reason")
        if isinstance(finish, list):  # a tensor of one element may keep its array
            finish = finish[0] if finish else None
        if isinstance(finish, str) and finish and finish != "None":
            st.set_stop(finish)
            st.done = True
        n_in, n_out = obj.get("num_input_tokens"), obj.get("num_output_tokens")
        if isinstance(n_in, int):
            st.prompt_tokens = n_in
        if isinstance(n_out, int):  # per response (a delta), summed
            st.completion_tokens = (st.completion_tokens or 0) + n_out
        text = obj.get("text_output")
        if text is None:
            return None
        if not isinstance(text, str):
            raise protocol_error("Triton text_output is not a string")
        return text


def _instances(config: dict[str, Any] | None) -> int | None:
    if not config:
        return None
    groups = config.get("instance_group")
    if not isinstance(groups, list):
        return None
    total = sum(g.get("count", 1) for g in groups if isinstance(g, dict))
    return total or None


def _ctx_from_config(config: dict[str, Any] | None) -> int | None:
    if not config:
        return None
    params = config.get("parameters")
    if not isinstance(params, dict):
        return None
    for key in ("max_model_len", "max_tokens", "max_seq_len"):
        entry = params.get(key)
        value = entry.get("string_value") if isinstance(entry, dict) else entry
        try:
            return int(value) if value is not None else None
        except (TypeError, ValueError):
            continue
    return None
