"""NVIDIA Triton Inference Server (HTTP/REST, KServe v2 + generate extension) rendered byte for byte.

Wire facts chosen, and where they come from (triton-inference-server/server @ e1db8a60,
``TRITON_VERSION`` 2.73.0dev; vllm_backend @ 8de0c148; reference digest §5):

* Server health (``src/http_server.cc`` ``HandleServerHealth``): ``GET /v2/health/live|ready``
  → ``200`` when true, **``400``** when false, empty body. libevhtp labels an empty reply
  ``Content-Type: text/plain``. Triton sends no ``Date`` and no ``Server`` header.
* ``GET /v2`` → ``{"name":"triton","version":…,"extensions":[…]}`` (extension list of
  ``InferenceServer``'s constructor in triton core). ``GET /v2/models/{m}[/versions/{v}]`` →
  ``{"name","versions","platform","inputs":[{name,datatype,shape}],"outputs":[…]}``;
  ``…/ready`` → ``200`` or ``400 {"error":"Model version not ready"}`` (unknown models are
  "not ready" too). Unknown model metadata: ``404``-family error
  ``Request for unknown model: '<m>' is not found``. Unknown path: ``404 {"error":"Not Found"}``;
  wrong method: ``405 {"error":"Method Not Allowed"}``.
* The model behind the generate routes is shaped like the vLLM backend's auto-completed config
  (``src/model.py``): inputs ``text_input`` (BYTES [1]), optional ``stream``,
  ``sampling_parameters``, ``exclude_input_in_output``, ``return_finish_reason``,
  ``return_num_input_tokens``, ``return_num_output_tokens``…; outputs ``text_output``,
  ``finish_reason``, ``num_input_tokens``, ``num_output_tokens``… Any top-level or
  ``parameters`` key that names an input becomes that input tensor; other keys are request
  parameters (sampling knobs such as ``max_tokens``, ``temperature``, ``seed``, ``stop``).
* Generate responses (``GenerateRequestClass::FinalizeResponse``): the reserved fields
  ``id`` (only when the request had a non-empty id), ``model_name``, ``model_version`` and the
  output tensors go through a ``std::map`` — **keys are written in sorted order**; a one-element
  tensor loses its array. Compact rapidjson output (control characters escaped as ``\\u00XX``
  with upper-case hex).
* ``/generate_stream``: ``Content-Type: text/event-stream; charset=utf-8``; each model response is
  ``data: <json>\\n\\n``; **no terminator**: the chunked body ends after the response flagged
  final. The vLLM backend streams text *deltas*; with ``return_finish_reason`` intermediate
  responses carry the string ``"None"`` and the last one ``"length"`` or ``"stop"``.
* Errors: ``{"error":"<message>"}``; status from the Triton error code (INTERNAL 500, NOT_FOUND
  404, UNAVAILABLE 503, UNSUPPORTED 501, everything else 400). An error before inference is an
  ordinary ``application/json`` reply. An error as the **first** model response sets the HTTP
  status yet the body stays SSE (``data: {"error":…}\\n\\n``); a later one keeps ``200``.
* Non-stream ``/generate`` with the vLLM backend prepends the prompt to ``text_output`` unless
  ``exclude_input_in_output`` is true (vllm_backend ``GenerateRequest._get_input_tensors``);
  ``stream: true`` with ``exclude_input_in_output: false`` fails inside the model (first
  response → ``500`` + SSE error). ``/generate`` on a streaming request gets Triton's ``200``
  ``{"error":"generate expects model to produce exactly 1 response…"}``.
* Sampling knobs: request parameters must be scalars (an array is a ``400`` "parameter … has
  invalid type"); a ``sampling_parameters`` JSON string input replaces them wholesale (the vLLM
  backend's way to send a list of ``stop`` strings). vLLM's ``max_tokens`` default is 16.
  Unknown keys are ignored (real vLLM ``SamplingParams`` would reject them; not reproduced).
* Stop reasons: ``length`` ends on the last token's response; ``eos`` and a stop string end
  with one more response whose ``text_output`` is ``""`` (the step that finished), finish
  ``stop``. ``num_output_tokens`` is per response (a delta), as the backend computes it.
* Choices where the sources leave room: overload (slots and queue full) is ``503
  {"error":"Exceeds maximum queue size"}`` (Triton's queue-policy rejection, UNAVAILABLE);
  unknown model is ``400`` (core ``INVALID_ARG``); the model can be unloaded and loaded again
  through ``POST /v2/repository/models/{m}/unload|load`` — then ``/v2/health/ready`` and the
  model's ``/ready`` answer ``400``. Metrics live on Triton's own port (8002), so the HTTP port
  has no ``/metrics``. Faults Triton cannot render (no index field, no keep-alive comments):
  ``frame.duplicate_index``, ``frame.out_of_order_index``, ``stream.keepalive_flood``.
  ``frame.missing_terminal`` drops the final response (the one carrying the finish reason).
* ``GET /v2/models/stats`` and ``…/{m}[/versions/{v}]/stats`` (statistics extension) count the
  engine's generations (``last_inference`` approximated by the time of the query).
* ``POST …/infer`` (KServe v2) answers ``501 {"error":"HTTP end point doesn't support models
  with decoupled transaction policy"}`` (``CheckTransactionPolicy``): the vLLM backend model is
  decoupled, so real Triton serves it over HTTP only through the generate extension.
* Engine version ``2.73.0`` (``/v2`` ``version``), shaped like a release of the snapshot.
"""

from __future__ import annotations

import json
import re
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _encode_basestring
from typing import Any

from .._json import loads_any_depth, lone_surrogate
from .._plan import GenerationPlan
from .._wire import (
    Dialect,
    EngineView,
    Frame,
    FrameKind,
    Headers,
    MockRequest,
    Reply,
    Route,
    StreamReply,
    dumps,
)

__all__ = [
    "DIALECT",
    "TritonDialect",
    "error_json",
    "response_json",
    "sse",
]

VERSION = "2.51.0"
MODEL_VERSION = "1"
MAX_INPUT_SIZE = 64 * 1024 * 1024  # --http-max-input-size default
EXTENSIONS = (
    "classification",
    "sequence",
    "model_repository",
    "model_repository(unload_dependents)",
    "schedule_policy",
    "model_configuration",
    "system_shared_memory",
    "cuda_shared_memory",
    "binary_tensor_data",
    "parameters",
    "statistics",
    "trace",
    "logging",
)
#: (name, datatype, dims, optional) — the vLLM backend's auto-completed inputs.
INPUTS: tuple[tuple[str, str, tuple[int, ...], bool], ...] = (
    ("text_input", "BYTES", (1,), False),
    ("image", "BYTES", (-1,), True),
    ("stream", "BOOL", (1,), True),
    ("sampling_parameters", "BYTES", (1,), True),
    ("exclude_input_in_output", "BOOL", (1,), True),
    ("return_finish_reason", "BOOL", (1,), True),
    ("return_cumulative_logprob", "BOOL", (1,), True),
    ("return_logprobs", "BOOL", (1,), True),
    ("return_num_input_tokens", "BOOL", (1,), True),
    ("return_num_output_tokens", "BOOL", (1,), True),
    ("embedding_request", "BYTES", (1,), True),
)
OUTPUTS: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("text_output", "BYTES", (-1,)),
    ("finish_reason", "BYTES", (-1,)),
    ("cumulative_logprob", "FP32", (-1,)),
    ("logprobs", "BYTES", (-1,)),
    ("num_input_tokens", "UINT32", (1,)),
    ("num_output_tokens", "UINT32", (-1,)),
)
_INPUT_TYPES = {name: (dtype, dims) for name, dtype, dims, _ in INPUTS}
_JSON = b"application/json"
_SSE = b"text/event-stream; charset=utf-8"
_ONE_RESPONSE = (
    "generate expects model to produce exactly 1 response, use generate stream for model that "
    "generates various number of responses"
)
#: SamplingParams fields whose JSON type the vLLM backend coerces (``TritonSamplingParams``).
_SAMPLING_INT = ("max_tokens", "min_tokens", "seed", "top_k", "n", "best_of", "logprobs")
_SAMPLING_FLOAT = (
    "temperature",
    "top_p",
    "min_p",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
)
_SAMPLING_BOOL = ("ignore_eos", "skip_special_tokens", "include_stop_str_in_output", "detokenize")
_CTRL_ESCAPE = re.compile(r"\\u00([0-9a-f]{2})")
_RAPIDJSON_MESSAGES = (
    ("Expecting value", "Invalid value."),
    ("Expecting property name enclosed in double quotes", "Missing a name for object member."),
    ("Expecting ':' delimiter", "Missing a colon after a name of object member."),
    ("Expecting ',' delimiter", "Missing a comma or '}' after an object member."),
    ("Extra data", "The document root must not be followed by other values."),
    ("Unterminated string", "Missing a closing quotation mark in string."),
    ("Invalid \\escape", "Invalid escape character in string."),
    ("Invalid control character", "Invalid encoding in string."),
)


def _js(s: str) -> str:
    """A JSON string as rapidjson writes it: raw UTF-8, short escapes, ``\\u00XX`` controls."""
    out = _encode_basestring(s)
    if "\\u00" in out:
        out = _CTRL_ESCAPE.sub(lambda m: "\\u00" + m.group(1).upper(), out)
    return out


def _value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return _js(v)
    if isinstance(v, list | tuple):
        return "[" + ",".join(_value(x) for x in v) + "]"
    raise TypeError(f"unsupported output value {v!r}")


def response_json(
    *, model: str, version: str, request_id: str | None, outputs: Mapping[str, object]
) -> str:
    """One generate response object, keys sorted as Triton's ``std::map`` sorts them."""
    fields: dict[str, str] = {"model_name": _js(model), "model_version": _js(version)}
    if request_id:
        fields["id"] = _js(request_id)
    for name, value in outputs.items():
        fields[name] = _value(value)
    return "{" + ",".join(f"{_js(k)}:{fields[k]}" for k in sorted(fields)) + "}"


class _Renderer:
    """``response_json`` for one request: the constant fields are encoded once (hot path)."""

    __slots__ = ("_const", "_order")

    def __init__(self, model: str, version: str, request_id: str | None) -> None:
        self._const: dict[str, str] = {"model_name": _js(model), "model_version": _js(version)}
        if request_id:
            self._const["id"] = _js(request_id)
        self._order: dict[frozenset[str], list[tuple[str, str, bool]]] = {}

    def render(self, outputs: Mapping[str, object]) -> str:
        names = frozenset(outputs)
        order = self._order.get(names)
        if order is None:
            keys = sorted({*self._const, *outputs})
            order = [(k, f"{_js(k)}:", k in self._const) for k in keys]
            self._order[names] = order
        const = self._const
        return (
            "{"
            + ",".join(
                key_js + (const[k] if is_const else _value(outputs[k]))
                for k, key_js, is_const in order
            )
            + "}"
        )


def error_json(message: str) -> str:
    """Triton's error object: ``{"error": "<message>"}``."""
    return '{"error":' + _js(message) + "}"


def sse(payload: str) -> bytes:
    """Frame one model response as ``/generate_stream`` does (``data: `` … ``\\n\\n``)."""
    return b"data: " + payload.encode() + b"\n\n"


def _err(status: int, message: str) -> Reply:
    return Reply(status, error_json(message).encode(), [(b"Content-Type", _JSON)])


def _err_text(status: int, message: str) -> Reply:
    """An error written by the HTTP frontend's own routing: JSON body, ``text/plain`` label."""
    return Reply(status, error_json(message).encode(), [(b"Content-Type", b"text/plain")])


def _empty(status: int) -> Reply:
    # libevhtp labels a reply without a body ``Content-Type: text/plain``.
    return Reply(status, b"", [(b"Content-Type", b"text/plain")])


def _logprob(tid: int, position: int) -> float:
    h = (tid * 2654435761 + (position + 1) * 40503) & 0xFFFFFFFF
    return -float((h >> 7) % 2048 + 1) / 512.0


class _Fail(Exception):
    """An error before inference: ordinary JSON reply with the mapped status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _ModelFail(Exception):
    """An error raised inside the model (vLLM backend): delivered as an error *response*."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class _Req:
    """A converted generate request: input tensors and request parameters."""

    request_id: str
    inputs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


_HUGE_NUMBER = re.compile(rb"-?[0-9]{4301,}")


def _parse_body(body: bytes) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        dupes: list[str] = []
        for k, v in items:
            if k in out:
                dupes.append(k)
            out[k] = v
        if dupes:
            out["\x00dupes"] = dupes
        return out

    if not body.strip():
        raise _Fail(500, "failed to parse the request JSON buffer: The document is empty. at 0")
    try:
        # rapidjson's recursive parser takes any depth a thread's stack holds
        data = loads_any_depth(body, object_pairs_hook=pairs)
    except UnicodeDecodeError:
        raise _Fail(
            500, "failed to parse the request JSON buffer: Invalid encoding in string. at 0"
        ) from None
    except json.JSONDecodeError as exc:
        msg = exc.msg
        for py, rj in _RAPIDJSON_MESSAGES:
            if msg.startswith(py):
                msg = rj
                break
        raise _Fail(500, f"failed to parse the request JSON buffer: {msg} at {exc.pos}") from None
    except ValueError:
        # an integer past CPython's digit limit: rapidjson reads it as a double, which overflows
        huge = _HUGE_NUMBER.search(body)
        raise _Fail(
            500,
            "failed to parse the request JSON buffer: Number too big to be stored in double. "
            f"at {0 if huge is None else huge.start()}",
        ) from None
    lone = lone_surrogate(body)
    if lone is not None:
        # rapidjson rejects half a UTF-16 pair at the escape's backslash (an INTERNAL error)
        raise _Fail(
            500,
            "failed to parse the request JSON buffer: The surrogate pair in string is invalid. "
            f"at {lone.start}",
        )
    return data


def _input_value(name: str, value: Any) -> Any:
    """Read one input tensor from JSON as ``ExactMappingInput`` does (scalar or 1-D array)."""
    dtype, dims = _INPUT_TYPES[name]
    items = value if isinstance(value, list) else [value]
    if dtype == "BYTES":
        if not all(isinstance(v, str) for v in items):
            raise _Fail(
                500, "Unable to parse JSON bytes array: attempt to access JSON non-string as string"
            )
        size = sum(len(v.encode()) for v in items)
        if size > MAX_INPUT_SIZE:
            raise _Fail(
                400,
                f"request size of 0 bytes with input '{name}' of size {size} bytes exceeds the "
                f"maximum allowed input size of {MAX_INPUT_SIZE}. Use --http-max-input-size to "
                "increase the limit.",
            )
    elif not all(isinstance(v, bool) for v in items):
        raise _Fail(500, "Unable to parse 'data': attempt to access JSON non-boolean as boolean")
    if dims == (1,) and len(items) != 1:
        raise _Fail(400, f"The schema can not convert input '{name}' to tensor with proper shape")
    return items


def _convert(data: Any, model: str) -> _Req:
    if not isinstance(data, dict):
        raise _Fail(500, "attempt to get members for non-object")
    dupes = data.pop("\x00dupes", [])
    for d in dupes:
        if d in _INPUT_TYPES:
            raise _Fail(400, f"input '{d}' already exists in request")
    rid = ""
    if "id" in data:
        if not isinstance(data["id"], str):
            raise _Fail(400, "Unable to parse 'id': attempt to access JSON non-string as string")
        rid = data["id"]
    req = _Req(rid)

    def take(key: str, value: Any, where: str | None) -> None:
        if key in _INPUT_TYPES:
            if key in req.inputs:
                raise _Fail(400, f"input '{key}' already exists in request")
            req.inputs[key] = _input_value(key, value)
            return
        if isinstance(value, bool | int | float | str) and value is not None:
            req.params[key] = value
            return
        msg = f"parameter '{key}' has invalid type. It should be either 'int', 'bool', or 'string'."
        raise _Fail(400, f"Converting keyword: '{where}': {msg}" if where else msg)

    for key, value in data.items():
        if key == "parameters":
            if not isinstance(value, dict):
                raise _Fail(
                    500,
                    "Expected JSON object for keyword: 'parameters': attempt to access JSON "
                    "non-object as object",
                )
            value.pop("\x00dupes", None)
            for k2, v2 in value.items():
                take(k2, v2, "parameters")
        else:
            take(key, value, None)
    if "text_input" not in req.inputs:
        prefix = f"[request id: {rid or '<id_unknown>'}] "
        got = ",".join(f"'{n}'" for n in req.inputs)
        raise _Fail(
            400,
            f"{prefix}expected number of inputs between 1 and {len(INPUTS)} but got "
            f"{len(req.inputs)} inputs for model '{model}'. Got input(s) [{got}], but missing "
            "required input(s) ['text_input']. Please provide all required input(s).",
        )
    return req


def _flag(req: _Req, name: str) -> bool:
    v = req.inputs.get(name)
    return bool(v[0]) if v else False


def _sampling(req: _Req) -> dict[str, Any]:
    """``TritonSamplingParams.from_dict``: ``sampling_parameters`` wins over request parameters."""
    raw = req.inputs.get("sampling_parameters")
    if raw:
        try:
            params = json.loads(raw[0])
        except ValueError as exc:
            raise _ModelFail(f"Error generating stream: {exc}") from None
        if not isinstance(params, dict):
            raise _ModelFail(
                "Error generating stream: 'NoneType' object has no attribute 'lora_name'"
            )
    else:
        params = dict(req.params)
    out: dict[str, Any] = {}
    try:
        for key in _SAMPLING_INT:
            if params.get(key) is not None:
                out[key] = int(params[key])
        for key in _SAMPLING_FLOAT:
            if params.get(key) is not None:
                out[key] = float(params[key])
        for key in _SAMPLING_BOOL:
            if params.get(key) is not None:
                v = params[key]
                out[key] = v if isinstance(v, bool) else str(v).lower() in ("1", "true")
    except (TypeError, ValueError):
        # from_dict logs the exception and returns None; the backend then fails on .lora_name.
        raise _ModelFail(
            "Error generating stream: 'NoneType' object has no attribute 'lora_name'"
        ) from None
    stop = params.get("stop")
    if isinstance(stop, str):
        out["stop"] = [stop]
    elif isinstance(stop, list):
        out["stop"] = [str(s) for s in stop]
    else:
        out["stop"] = []
    return out


@dataclass(slots=True)
class _Resp:
    """One model response of the vLLM backend: a text delta and its token count."""

    text: str
    n_tokens: int
    step: int
    final: bool
    finish: str


def _responses(ctx: EngineView, plan: GenerationPlan, stream: bool, prepend: str) -> list[_Resp]:
    finish = "length" if plan.stop_reason == "length" else "stop"
    if not stream:
        extra = 1 if plan.stop_reason == "eos" else 0
        return [_Resp(prepend + plan.text, plan.completion_tokens + extra, 0, True, finish)]
    chunks = ctx.chunks(plan)
    out = [_Resp(text, len(ids), k, False, "None") for k, (text, ids) in enumerate(chunks)]
    if plan.stop_reason == "length" and out:
        out[-1].final = True
        out[-1].finish = finish
        return out
    # EOS (and a stop string) end with one more, text-less response: the step that finished.
    swallowed = 1 if plan.stop_reason == "eos" else plan.completion_tokens - len(plan.tokens)
    out.append(_Resp("", max(0, swallowed), len(chunks), True, finish))
    return out


def _state(dialect: TritonDialect, ctx: EngineView) -> set[str]:
    return dialect._unloaded.setdefault(ctx, set())


class TritonDialect(Dialect):
    """Triton's HTTP frontend with one vLLM-backend model (``ctx.model``, version ``1``)."""

    name = "triton"
    engine_version = VERSION
    default_model = "llm"
    loading_mode = "port_closed"
    unsupported_faults = frozenset(
        {"frame.duplicate_index", "frame.out_of_order_index", "stream.keepalive_flood"}
    )
    keepalive = None

    def __init__(self) -> None:
        # Models unloaded through the repository API, per running engine.
        self._unloaded: weakref.WeakKeyDictionary[EngineView, set[str]] = (
            weakref.WeakKeyDictionary()
        )

    def routes(self) -> Sequence[Route]:
        m = "/v2/models/{model}"
        mv = "/v2/models/{model}/versions/{version}"
        routes = [
            Route("GET", "/v2/health/live", self._live, public=True),
            Route("GET", "/v2/health/ready", self._ready, public=True),
            Route("GET", "/v2", self._server_metadata, public=True),
            Route("GET", "/v2/models/stats", self._stats, public=True),
            Route("POST", "/v2/repository/index", self._repo_index),
            Route("POST", "/v2/repository/models/{model}/load", self._load),
            Route("POST", "/v2/repository/models/{model}/unload", self._unload),
        ]
        for base in (m, mv):
            routes += [
                Route("GET", base, self._model_metadata, public=True),
                Route("GET", base + "/ready", self._model_ready, public=True),
                Route("GET", base + "/config", self._model_config, public=True),
                Route("GET", base + "/stats", self._stats, public=True),
                Route("POST", base + "/infer", self._infer),
                Route("POST", base + "/generate", self._generate, generation=True),
                Route("POST", base + "/generate_stream", self._generate_stream, generation=True),
            ]
        return routes

    # -- envelopes ------------------------------------------------------------------------------
    def error_reply(
        self,
        status: int,
        message: str,
        *,
        etype: str | None = None,
        param: str | None = None,
        code: str | None = None,
    ) -> Reply:
        return _err(status, message)

    def not_found_reply(self, req: MockRequest) -> Reply:
        return _err_text(404, "Not Found")

    def method_not_allowed_reply(self, req: MockRequest) -> Reply:
        # Model metadata and the inference routes answer through the JSON error path; health,
        # readiness and the rest through the frontend's plain reply (measured on 2.51.0).
        segs = req.path.strip("/").split("/")
        model_route = len(segs) >= 3 and segs[:2] == ["v2", "models"] and segs[-1] != "ready"
        if model_route:
            return _err(405, "Method Not Allowed")
        return _err_text(405, "Method Not Allowed")

    def overload_reply(self, req: MockRequest, ctx: EngineView) -> Reply:
        return _err(503, "Exceeds maximum queue size")

    def rate_limit_reply(self, req: MockRequest, seconds: int) -> Reply:
        reply = _err(429, "Too Many Requests")
        reply.headers.append((b"Retry-After", str(seconds).encode()))
        return reply

    def body_too_large_reply(self, req: MockRequest, limit: int) -> Reply:
        return _err(
            400,
            f"request size of 0 bytes with input 'text_input' of size more than {limit} bytes "
            f"exceeds the maximum allowed input size of {limit}. Use --http-max-input-size to "
            "increase the limit.",
        )

    def status_fault_reply(self, status: int, req: MockRequest) -> Reply:
        model = req.path_params.get("model", self.default_model)
        messages = {
            400: f"Request for unknown model: '{model}' has no available versions",
            401: "Unauthorized",
            404: "Not Found",
            422: "Unprocessable Entity",
            500: "Error generating stream: mock internal error",
            503: "Exceeds maximum queue size",
        }
        return _err(status, messages.get(status, "Error"))

    # -- model lookup -----------------------------------------------------------------------------
    def _check_model(self, req: MockRequest, ctx: EngineView) -> str:
        """The model name; _Fail 400 for an unknown model or version (Triton: INVALID_ARG)."""
        model = req.path_params.get("model", "")
        version = req.path_params.get("version")
        if model != ctx.model:
            raise _Fail(404, f"Request for unknown model: '{model}' is not found")
        if version is not None and version != "" and version != MODEL_VERSION:
            if not version.lstrip("-").isdigit():
                raise _Fail(
                    400,
                    f"failed to get model version from specified version string '{version}' "
                    "(details: stoll), version should be an integral value > 0",
                )
            raise _Fail(404, f"Request for unknown model: '{model}' version {version} is not found")
        if model in _state(self, ctx):
            raise _Fail(400, f"Request for unknown model: '{model}' has no available versions")
        return model

    # -- health / metadata ------------------------------------------------------------------------
    def _live(self, req: MockRequest, ctx: EngineView) -> Reply:
        return _empty(200)

    def _ready(self, req: MockRequest, ctx: EngineView) -> Reply:
        return _empty(400 if _state(self, ctx) else 200)

    def _server_metadata(self, req: MockRequest, ctx: EngineView) -> Reply:
        body = dumps({"name": "triton", "version": VERSION, "extensions": list(EXTENSIONS)})
        return Reply(200, body, [(b"Content-Type", _JSON)])

    def _model_metadata(self, req: MockRequest, ctx: EngineView) -> Reply:
        try:
            model = self._check_model(req, ctx)
        except _Fail as f:
            return _err(f.status, f.message)
        body = dumps(
            {
                "name": model,
                "versions": [MODEL_VERSION],
                "platform": "vllm",
                "inputs": [{"name": n, "datatype": d, "shape": list(s)} for n, d, s, _ in INPUTS],
                "outputs": [{"name": n, "datatype": d, "shape": list(s)} for n, d, s in OUTPUTS],
            }
        )
        return Reply(200, body, [(b"Content-Type", _JSON)])

    def _model_ready(self, req: MockRequest, ctx: EngineView) -> Reply:
        try:
            self._check_model(req, ctx)
        except _Fail:
            return _err_text(400, "Model version not ready")
        return _empty(200)

    def _model_config(self, req: MockRequest, ctx: EngineView) -> Reply:
        try:
            model = self._check_model(req, ctx)
        except _Fail as f:
            return _err(f.status, f.message)
        types = {"BYTES": "TYPE_STRING", "BOOL": "TYPE_BOOL", "FP32": "TYPE_FP32"}
        types["UINT32"] = "TYPE_UINT32"
        config = {
            "name": model,
            "platform": "",
            "backend": "vllm",
            "runtime": "",
            "version_policy": {"latest": {"num_versions": 1}},
            "max_batch_size": 0,
            "input": [
                {
                    "name": n,
                    "data_type": types[d],
                    "format": "FORMAT_NONE",
                    "dims": list(s),
                    "is_shape_tensor": False,
                    "allow_ragged_batch": False,
                    "optional": opt,
                    "is_non_linear_format_io": False,
                }
                for n, d, s, opt in INPUTS
            ],
            "output": [
                {
                    "name": n,
                    "data_type": types[d],
                    "dims": list(s),
                    "label_filename": "",
                    "is_shape_tensor": False,
                    "is_non_linear_format_io": False,
                }
                for n, d, s in OUTPUTS
            ],
            "batch_input": [],
            "batch_output": [],
            "optimization": {
                "priority": "PRIORITY_DEFAULT",
                "input_pinned_memory": {"enable": True},
                "output_pinned_memory": {"enable": True},
                "gather_kernel_buffer_threshold": 0,
                "eager_batching": False,
            },
            "instance_group": [
                {
                    "name": f"{model}_0",
                    "kind": "KIND_MODEL",
                    "count": 1,
                    "gpus": [],
                    "secondary_devices": [],
                    "profile": [],
                    "passive": False,
                    "host_policy": "",
                }
            ],
            "default_model_filename": "",
            "cc_model_filenames": {},
            "metric_tags": {},
            "parameters": {},
            "model_warmup": [],
            "model_transaction_policy": {"decoupled": True},
        }
        return Reply(200, dumps(config), [(b"Content-Type", _JSON)])

    def _stats(self, req: MockRequest, ctx: EngineView) -> Reply:
        """Statistics extension: one entry for the model, counts from the engine's stats."""
        if "model" in req.path_params:
            try:
                self._check_model(req, ctx)
            except _Fail as f:
                return _err(f.status, f.message)
        st = ctx.stats
        ok = st.requests_success
        failed = max(0, st.requests_total - ok)
        ns_ok = int((st.prompt_seconds_total + st.predicted_seconds_total) * 1e9)

        def dur(count: int, ns: int) -> dict[str, int]:
            return {"count": count, "ns": ns}

        entry = {
            "name": ctx.model,
            "version": MODEL_VERSION,
            "last_inference": int(time.time() * 1000) if ok else 0,  # approximated: now
            "inference_count": ok,
            "execution_count": ok,
            "inference_stats": {
                "success": dur(ok, ns_ok),
                "fail": dur(failed, 0),
                "queue": dur(ok, 0),
                "compute_input": dur(ok, 0),
                "compute_infer": dur(ok, ns_ok),
                "compute_output": dur(ok, 0),
                "cache_hit": dur(0, 0),
                "cache_miss": dur(0, 0),
            },
            "response_stats": {},
            "batch_stats": [],
            "memory_usage": [],
        }
        return Reply(200, dumps({"model_stats": [entry]}), [(b"Content-Type", _JSON)])

    def _repo_index(self, req: MockRequest, ctx: EngineView) -> Reply:
        unloaded = _state(self, ctx)
        entry: dict[str, Any] = {"name": ctx.model}
        if ctx.model in unloaded:
            entry.update(version=MODEL_VERSION, state="UNAVAILABLE", reason="unloaded")
        else:
            entry.update(version=MODEL_VERSION, state="READY")
        return Reply(200, dumps([entry]), [(b"Content-Type", _JSON)])

    def _load(self, req: MockRequest, ctx: EngineView) -> Reply:
        model = req.path_params.get("model", "")
        if model != ctx.model:
            return _err(400, f"failed to load '{model}', failed to poll from model repository")
        _state(self, ctx).discard(model)
        return Reply(200, b"", [(b"Content-Type", _JSON)])

    def _unload(self, req: MockRequest, ctx: EngineView) -> Reply:
        model = req.path_params.get("model", "")
        if model != ctx.model:
            return _err(400, f"failed to unload '{model}', no version is available")
        _state(self, ctx).add(model)
        return Reply(200, b"", [(b"Content-Type", _JSON)])

    def _infer(self, req: MockRequest, ctx: EngineView) -> Reply:
        """KServe ``/infer``: Triton's HTTP endpoint refuses decoupled models (the vLLM backend)."""
        try:
            self._check_model(req, ctx)
        except _Fail as f:
            return _err(f.status, f.message)
        return _err_text(
            501, "HTTP end point doesn't support models with decoupled transaction policy"
        )

    # -- generate ---------------------------------------------------------------------------------
    def _generate(self, req: MockRequest, ctx: EngineView) -> Reply | StreamReply:
        return self._handle(req, ctx, streaming=False)

    def _generate_stream(self, req: MockRequest, ctx: EngineView) -> Reply | StreamReply:
        return self._handle(req, ctx, streaming=True)

    def _handle(self, req: MockRequest, ctx: EngineView, *, streaming: bool) -> Reply | StreamReply:
        try:
            model = self._check_model(req, ctx)
            if req.headers.get("content-encoding", "identity").lower() not in ("", "identity"):
                raise _Fail(400, "Unsupported content-encoding, only 'identity' is supported.")
            treq = _convert(_parse_body(req.body), model)
        except _Fail as f:
            return _err(f.status, f.message)
        rid = treq.request_id

        render = _Renderer(model, MODEL_VERSION, rid).render

        def model_error(exc: _ModelFail) -> Reply | StreamReply:
            # The error is the first response: it sets the HTTP status; the body keeps the
            # route's framing (SSE on generate_stream).
            if streaming:
                frame = sse(error_json(exc.message))
                return StreamReply(
                    exc.status, [(b"Content-Type", _SSE)], [Frame(frame, 0, FrameKind.META)]
                )
            return _err(exc.status, exc.message)

        stream = _flag(treq, "stream")
        exclude = treq.inputs.get("exclude_input_in_output")
        prepend = not exclude[0] if exclude else not stream
        try:
            if prepend and stream:
                raise _ModelFail(
                    "Error generating stream: When streaming, `exclude_input_in_output` = False "
                    "is not allowed."
                )
            sp = _sampling(treq)
        except _ModelFail as exc:
            return model_error(exc)
        prompt = treq.inputs["text_input"][0]
        plan = ctx.plan(
            prompt,
            max_tokens=sp.get("max_tokens", 16),
            seed=sp.get("seed"),
            stop=sp["stop"],
            temperature=sp.get("temperature"),
            top_p=sp.get("top_p"),
            top_k=sp.get("top_k"),
            ignore_eos=bool(sp.get("ignore_eos", False)),
            min_tokens=int(sp.get("min_tokens", 0)),
        )
        responses = _responses(ctx, plan, stream, prompt if prepend else "")
        want = {
            name: _flag(treq, f"return_{name}")
            for name in (
                "finish_reason",
                "cumulative_logprob",
                "logprobs",
                "num_input_tokens",
                "num_output_tokens",
            )
        }
        cumulative = 0.0
        position = 0

        def outputs_of(r: _Resp) -> dict[str, object]:
            nonlocal cumulative, position
            out: dict[str, object] = {"text_output": r.text}
            if want["finish_reason"]:
                out["finish_reason"] = r.finish
            if want["cumulative_logprob"]:
                for _ in range(r.n_tokens):
                    cumulative += _logprob(position, position)
                    position += 1
                out["cumulative_logprob"] = cumulative
            if want["logprobs"]:
                out["logprobs"] = "null"
            if want["num_input_tokens"]:
                out["num_input_tokens"] = plan.prompt_tokens
            if want["num_output_tokens"]:
                out["num_output_tokens"] = r.n_tokens
            return out

        rendered = [render(outputs_of(r)) for r in responses]
        if not streaming:
            if len(rendered) != 1:
                return Reply(
                    200, error_json(_ONE_RESPONSE).encode(), [(b"Content-Type", _JSON)], plan
                )
            return Reply(200, rendered[0].encode(), [(b"Content-Type", _JSON)], plan)
        frames = [
            Frame(
                sse(body),
                r.step,
                FrameKind.TERMINAL if r.final else FrameKind.TOKEN,
            )
            for r, body in zip(responses, rendered, strict=True)
        ]
        template = responses[0]

        def error_frames(message: str) -> list[bytes]:
            return [sse(error_json(f"Error generating stream: {message}"))]

        def token_frame(text: str) -> bytes:
            return sse(
                render(outputs_of(_Resp(text, 1, 0, False, "None" if stream else template.finish)))
            )

        headers: Headers = [(b"Content-Type", _SSE)]
        return StreamReply(200, headers, frames, plan, error_frames, token_frame)


#: The registered dialect object.
DIALECT = TritonDialect()
