"""Hugging Face Text Generation Inference (TGI 3.3.x router on axum 0.7) rendered byte for byte.

Wire facts chosen, and where they come from (huggingface/text-generation-inference @ db931fcf,
``Cargo.toml`` workspace version ``3.3.6-dev0``; reference digest §3):

* Routes (``router/src/server.rs``): ``POST /`` (compat: ``{"inputs","parameters","stream"}``;
  the non-stream answer is wrapped in a one-element list and, for a ``text-generation`` model,
  ``return_full_text`` defaults to true there), ``POST /generate``, ``POST /generate_stream``,
  ``POST /v1/chat/completions``, ``POST /v1/completions`` (``prompt`` string or up to 4 strings;
  its stream's last chunk keeps TGI's raw ``finish_reason`` and the EOS token's text), ``POST
  /tokenize``; ``GET /``, ``/health``, ``/ping`` (health:
  ``200`` with an empty body), ``GET /info``, ``GET /metrics``, ``GET /v1/models``. Unknown
  routes: axum's bare ``404`` with an empty body; a known path with the wrong method: bare ``405``.
  With an API key, the ``POST`` routes want ``Authorization: Bearer <key>`` (compared
  case-insensitively) and answer a bare ``401``.
* ``/generate_stream`` events (``StreamResponse`` in ``router/src/lib.rs``): key order
  ``index`` (from 1), ``token{id,text,logprob,special}``, ``top_tokens`` (omitted when empty),
  ``generated_text`` (``null`` until the last event), ``details`` (``null`` unless the last event
  and ``parameters.details``: ``{finish_reason,generated_tokens,seed,input_length}``). There is
  **no** ``[DONE]``: the event with a non-null ``generated_text`` is the end.
* Framing: axum 0.7 ``Event::json_data`` writes ``data: `` + compact JSON + ``\\n\\n``. Builds on
  axum 0.6 (TGI 1.x/2.x docs show ``data:{"index":…``) wrote ``data:`` without the space: send the
  request header ``X-Mock-Tgi-Framing: axum06`` (or build ``TgiDialect(legacy_framing=True)``).
  Keep-alive (axum ``KeepAlive::default``): the comment ``:\\n\\n`` after 15 s of silence.
* Stream headers: ``content-type: text/event-stream``, ``cache-control: no-cache``,
  ``x-compute-type`` (``gpu+optimized``), ``x-compute-characters`` (characters of ``inputs``),
  ``x-accel-buffering: no``. Non-stream answers add ``x-compute-time`` … ``x-generated-tokens``
  (timings estimated from the latency profile). tower-http's CORS layer adds ``vary``; hyper adds
  ``date``.
* Errors (``InferError`` in ``router/src/infer/mod.rs``): body ``{"error","error_type"}``; HTTP
  mapping generation→424, overloaded→429 (``Model is overloaded``), validation→422 (``Input
  validation error: …`` with the router's fixed messages), incomplete_generation→500.
  ``/generate_stream`` always answers ``200`` + SSE and sends the error as its only event;
  the OpenAI route sends ``data: {"error":{"message","http_status_code":422}}`` then
  ``data: [DONE]``. ``/health`` when unhealthy: ``503 {"error":"unhealthy","error_type":
  "healthcheck"}``.
* Bad JSON never reaches TGI's handlers: axum's ``Json`` extractor answers in **plain text**
  (``415`` without a JSON content type, ``400`` syntax, ``422`` shape, messages like
  ``Failed to deserialize the JSON body into the target type: missing field `inputs` at line 1
  column 2``; the serde positions are approximated) and ``DefaultBodyLimit`` (launcher
  ``--payload-limit``, 2 000 000 bytes) answers ``413``.
* Floats are Rust ``f32`` (``logprob``) printed by ryu: shortest round-trip digits, so a mock
  must not print Python's ``float`` repr of the widened value (``-0.44335938``, not
  ``-0.443359375``). :func:`f32_json` reproduces that. Logprobs are derived from the token id
  and position (bf16-like binary fractions), deterministic across runs.
* Sampling: ``parameters`` present → ``do_sample`` defaults to false (greedy; the seed is then
  not echoed: ``details.seed`` is ``null``); ``parameters`` absent → ``do_sample`` true.
  ``temperature <= 0`` and ``top_p >= 1`` are validation errors on the native routes; the chat
  route maps ``temperature 0`` to greedy. ``top_n_tokens`` (chat: ``top_logprobs``) adds
  ``top_tokens`` — the chosen token first, then deterministic runners-up 0.25 nats apart; chat
  ``logprobs: true`` renders ``ChatCompletionLogprobs``.
* Stop reasons (``FinishReason``): ``length | eos_token | stop_sequence``; the OpenAI route
  renames only ``eos_token`` to ``stop``. An ``eos`` plan ends with one more event: the
  ``special: true`` EOS token ``</s>`` (id 2), counted in ``generated_tokens`` and not part of
  ``generated_text``. Cross-dialect oracle: token texts follow the shared plan, which excludes a
  matched stop string (real TGI would also stream the stop sequence itself) — the same texts as
  every other mock dialect.
"""

from __future__ import annotations

import email.utils
import functools
import hashlib
import json
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from json.encoder import encode_basestring as _encode_basestring
from typing import Any, NoReturn

from .._json import depth_exceeds, line_col, lone_surrogate
from .._plan import (
    EOS_TOKEN_ID,
    MAX_CONTEXT,
    VOCAB,
    GenerationPlan,
    chat_prompt,
    token_id,
    tokenize,
)
from .._wire import (
    Dialect,
    EngineView,
    Frame,
    FrameKind,
    Headers,
    MockRequest,
    Rejected,
    Reply,
    Route,
    StreamReply,
)

__all__ = [
    "DIALECT",
    "KEEPALIVE_COMMENT",
    "TgiDialect",
    "TgiToken",
    "error_body",
    "f32_json",
    "openai_error_event",
    "sse",
    "stream_event",
]

#: The comment axum's ``KeepAlive::default()`` writes after 15 s without an event.
KEEPALIVE_COMMENT = b":\n\n"
#: Request header choosing the axum 0.6 framing (``data:`` without a space) per request.
FRAMING_HEADER = "x-mock-tgi-framing"

VERSION = "3.3.6-dev0"
ROUTER_SHA = "db931fcf42da018a3657580c64bf2720f167f9ab"
MAX_TOTAL_TOKENS = MAX_CONTEXT
MAX_INPUT_TOKENS = MAX_CONTEXT - 1
MAX_STOP_SEQUENCES = 4
MAX_BEST_OF = 1
MAX_TOP_N_TOKENS = 5
MAX_CLIENT_BATCH_SIZE = 4
PAYLOAD_LIMIT = 2_000_000
DEFAULT_GENERATION_LENGTH = 1024
EOS_TEXT = "</s>"
COMPUTE_TYPE = b"gpu+optimized"
_VARY = b"origin, access-control-request-method, access-control-request-headers"

_F32 = struct.Struct("<f")


def _to_f32(x: float) -> float:
    return float(_F32.unpack(_F32.pack(x))[0])


@functools.lru_cache(maxsize=8192)
def f32_json(x: float) -> str:
    """Print ``x`` as serde_json prints a Rust ``f32`` (ryu ``format32``).

    Why: TGI's logprobs are ``f32``; their JSON carries the *shortest* decimal that round-trips
    through ``f32`` with ryu's layout rules (``-2.0``, ``0.001234``, ``1e-7``, ``1.5e30``), which
    Python's ``repr`` of the widened ``float`` does not reproduce.
    """
    v = _to_f32(x)
    if v != v or v in (float("inf"), float("-inf")):
        return "null"  # serde_json writes non-finite floats as null
    if v == 0.0:
        return "-0.0" if str(v).startswith("-") else "0.0"
    sign = "-" if v < 0 else ""
    a = abs(v)
    digits = "0"
    exp10 = 0
    for precision in range(9):
        mantissa, _, exponent = f"{a:.{precision}e}".partition("e")
        if _to_f32(float(f"{mantissa}e{exponent}")) == a:
            digits = mantissa.replace(".", "").rstrip("0") or "0"
            exp10 = int(exponent) - (len(digits) - 1)
            break
    length = len(digits)
    kk = length + exp10  # 10^(kk-1) <= a < 10^kk
    if exp10 >= 0 and kk <= 13:
        body = digits + "0" * exp10 + ".0"
    elif 0 < kk <= 13:
        body = digits[:kk] + "." + digits[kk:]
    elif -6 < kk <= 0:
        body = "0." + "0" * (-kk) + digits
    elif length == 1:
        body = f"{digits}e{kk - 1}"
    else:
        body = f"{digits[0]}.{digits[1:]}e{kk - 1}"
    return sign + body


def _rust_f64(x: float) -> str:
    """Rust's ``f64`` ``Display`` (shortest digits, never an exponent): ``0``, ``0.0125``."""
    if x == int(x):
        return str(int(x))
    return format(Decimal(repr(x)), "f")


def _js(s: str) -> str:
    """A JSON string as serde_json writes it: raw UTF-8, short escapes, ``\\u00xx`` controls."""
    return _encode_basestring(s)


@dataclass(frozen=True, slots=True)
class TgiToken:
    """One generated token as TGI's ``Token`` struct carries it."""

    id: int
    text: str
    logprob: float
    special: bool = False

    def json(self) -> str:
        return (
            f'{{"id":{self.id},"text":{_js(self.text)},"logprob":{f32_json(self.logprob)},'
            f'"special":{"true" if self.special else "false"}}}'
        )


def stream_event(
    index: int,
    token: TgiToken,
    *,
    generated_text: str | None = None,
    finish_reason: str | None = None,
    generated_tokens: int = 0,
    seed: int | None = None,
    input_length: int = 0,
    details: bool = False,
    top_tokens: Sequence[TgiToken] = (),
) -> str:
    """One ``StreamResponse`` as compact JSON (no framing); ``top_tokens`` omitted when empty.

    ``details`` is only rendered on the last event (``generated_text`` not ``None``) and only when
    the request asked for ``parameters.details``; everywhere else TGI writes ``null``.
    """
    gen = "null" if generated_text is None else _js(generated_text)
    if generated_text is not None and details:
        det = (
            f'{{"finish_reason":"{finish_reason}","generated_tokens":{generated_tokens},'
            f'"seed":{"null" if seed is None else seed},"input_length":{input_length}}}'
        )
    else:
        det = "null"
    top = ""
    if top_tokens:
        top = ',"top_tokens":[' + ",".join(t.json() for t in top_tokens) + "]"
    return f'{{"index":{index},"token":{token.json()}{top},"generated_text":{gen},"details":{det}}}'


def top_tokens_for(token: TgiToken, n: int) -> list[TgiToken]:
    """``top_n_tokens`` candidates: the chosen token first, then deterministic runners-up."""
    if n <= 0:
        return []
    out = [token]
    for k in range(1, n):
        text = VOCAB[(token.id * 7 + k * 13) % len(VOCAB)]
        out.append(TgiToken(token_id(text), text, token.logprob - 0.25 * k))
    return out


def error_body(message: str, error_type: str) -> str:
    """TGI's ``ErrorResponse``: ``{"error": message, "error_type": type}``."""
    return f'{{"error":{_js(message)},"error_type":{_js(error_type)}}}'


def openai_error_event(message: str) -> str:
    """The in-stream error of TGI's OpenAI routes (status hard-coded to 422 by TGI)."""
    return f'{{"error":{{"message":{_js(message)},"http_status_code":422}}}}'


def sse(payload: str, *, legacy: bool = False) -> bytes:
    """Frame one event as axum writes it (``data: `` in 0.7, ``data:`` in 0.6)."""
    return (b"data:" if legacy else b"data: ") + payload.encode() + b"\n\n"


def token_logprob(tid: int, position: int) -> float:
    """A deterministic, bf16-like logprob in ``(-4, 0)`` for a token at a position."""
    h = (tid * 2654435761 + (position + 1) * 40503) & 0xFFFFFFFF
    return -float((h >> 7) % 2048 + 1) / 512.0


# ---------------------------------------------------------------------------------------------
# Request parsing: axum's Json extractor (plain-text rejections), then TGI's own validation
# ---------------------------------------------------------------------------------------------


class _Validation(Exception):
    """``InferError::ValidationError`` (422 ``validation``) with TGI's fixed message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = f"Input validation error: {message}"


def _date() -> bytes:
    return email.utils.formatdate(usegmt=True).encode()


def _text_reply(status: int, text: str) -> Reply:
    return Reply(
        status,
        text.encode(),
        [(b"content-type", b"text/plain; charset=utf-8"), (b"vary", _VARY), (b"date", _date())],
    )


def _bare(status: int) -> Reply:
    return Reply(status, b"", [(b"vary", _VARY), (b"date", _date())])


_SERDE_MESSAGES = (
    ("Expecting value", "expected value"),
    ("Expecting property name enclosed in double quotes", "key must be a string"),
    ("Expecting ':' delimiter", "expected `:`"),
    ("Expecting ',' delimiter", "expected `,` or `}`"),
    ("Extra data", "trailing characters"),
    ("Unterminated string", "EOF while parsing a string"),
    (
        "Invalid control character",
        "control character (\\u0000-\\u001F) found while parsing a string",
    ),
    ("Invalid \\escape", "invalid escape"),
)


def _unexpected(v: object) -> str:
    """serde's ``Unexpected`` wording for a JSON value."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"boolean `{'true' if v else 'false'}`"
    if isinstance(v, int):
        return f"integer `{v}`"
    if isinstance(v, float):
        return f"floating point `{v}`"
    if isinstance(v, str):
        return f"string {json.dumps(v, ensure_ascii=False)}"
    if isinstance(v, list):
        return "sequence"
    return "map"


def _position(body: bytes) -> str:
    lines = body.decode("utf-8", "replace").split("\n")
    return f"at line {len(lines)} column {len(lines[-1])}"


def _json_body(req: MockRequest, legacy_types: str = "json") -> Any:
    """Run axum 0.7's ``Json`` extractor rules on the request: 415, 413, 400 syntax."""
    ctype = req.headers.get("content-type", "")
    mime = ctype.split(";", 1)[0].strip().lower()
    main, _, sub = mime.partition("/")
    if main != "application" or not (sub == "json" or sub.endswith("+json")):
        raise Rejected(_text_reply(415, "Expected request with `Content-Type: application/json`"))
    if len(req.body) > PAYLOAD_LIMIT:
        raise Rejected(_text_reply(413, "Failed to buffer the request body: length limit exceeded"))
    try:
        data = json.loads(req.body)
    except RecursionError:
        data = None  # serde_json's own limit (128) is reported below
    except UnicodeDecodeError:
        raise Rejected(
            _text_reply(400, "Failed to parse the request body as JSON: invalid unicode code point")
        ) from None
    except json.JSONDecodeError as exc:
        msg = exc.msg
        for py, serde in _SERDE_MESSAGES:
            if msg.startswith(py):
                msg = serde
                break
        if exc.pos >= len(exc.doc):
            msg = "EOF while parsing a value" if msg == "expected value" else msg
        raise Rejected(
            _text_reply(
                400,
                f"Failed to parse the request body as JSON: {msg} "
                f"at line {exc.lineno} column {exc.colno}",
            )
        ) from None
    except ValueError:
        # an integer past CPython's digit limit: serde_json's f64 overflows
        return _reject_serde(req.body, huge_int=True)
    return data if _serde_limits(req.body) is None else _reject_serde(req.body)


def _reject_serde(body: bytes, *, huge_int: bool = False) -> NoReturn:
    problem = _serde_limits(body, huge_int=huge_int) or "number out of range"
    raise Rejected(_text_reply(400, f"Failed to parse the request body as JSON: {problem}"))


#: serde_json's nesting limit (``remaining_depth``): the 128th open bracket is an error.
_SERDE_DEPTH = 128
_HUGE_INT = re.compile(rb"-?[0-9]{4301,}")


def _serde_limits(body: bytes, *, huge_int: bool = False) -> str | None:
    """What serde_json rejects that CPython's ``json`` accepts (or cannot nest): the first of
    nesting past 128, a lone UTF-16 surrogate escape, a number beyond f64 — with its position."""
    found: list[tuple[int, str]] = []
    deep = depth_exceeds(body, _SERDE_DEPTH)
    if deep is not None:
        found.append((deep, "recursion limit exceeded"))
    lone = lone_surrogate(body)
    if lone is not None:
        if not lone.leading:
            found.append((lone.end - 1, "lone leading surrogate in hex escape"))
        elif body[lone.end : lone.end + 2] == b"\\u":
            found.append((lone.end + 5, "lone leading surrogate in hex escape"))
        else:
            found.append((lone.end, "unexpected end of hex escape"))
    huge = _HUGE_INT.search(body) if huge_int else None
    if huge is not None:
        found.append((huge.end() - 1, "number out of range"))
    if not found:
        return None
    offset, what = min(found)
    line, col = line_col(body, offset)
    return f"{what} at line {line} column {col}"


def _data_error(req: MockRequest, path: str, what: str) -> Rejected:
    prefix = f"{path}: " if path else ""
    return Rejected(
        _text_reply(
            422,
            "Failed to deserialize the JSON body into the target type: "
            f"{prefix}{what} {_position(req.body)}",
        )
    )


_U32 = (0, 2**32 - 1)
_U64 = (0, 2**64 - 1)
_USIZE = (0, 2**64 - 1)
_I32 = (-(2**31), 2**31 - 1)


def _field(req: MockRequest, obj: Mapping[str, Any], key: str, kind: str, path: str) -> Any:
    """Deserialize one field like serde would (``Option<T>`` accepts null)."""
    p = f"{path}.{key}" if path else key
    if key not in obj:
        return None
    v = obj[key]
    optional = kind.startswith("?")
    kind = kind.lstrip("?")
    if v is None:
        if optional:
            return None
        expected = {"bool": "a boolean", "str": "a string", "seq": "a sequence"}.get(kind, kind)
        raise _data_error(req, p, f"invalid type: null, expected {expected}")
    if kind == "bool":
        if not isinstance(v, bool):
            raise _data_error(req, p, f"invalid type: {_unexpected(v)}, expected a boolean")
        return v
    if kind == "str":
        if not isinstance(v, str):
            raise _data_error(req, p, f"invalid type: {_unexpected(v)}, expected a string")
        return v
    if kind == "f32":
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise _data_error(req, p, f"invalid type: {_unexpected(v)}, expected f32")
        return float(v)
    if kind in ("u32", "u64", "usize", "i32"):
        lo, hi = {"u32": _U32, "u64": _U64, "usize": _USIZE, "i32": _I32}[kind]
        if isinstance(v, bool) or not isinstance(v, int):
            raise _data_error(req, p, f"invalid type: {_unexpected(v)}, expected {kind}")
        if not lo <= v <= hi:
            raise _data_error(req, p, f"invalid value: {_unexpected(v)}, expected {kind}")
        return v
    if kind == "seq[str]":
        if not isinstance(v, list):
            raise _data_error(req, p, f"invalid type: {_unexpected(v)}, expected a sequence")
        for i, item in enumerate(v):
            if not isinstance(item, str):
                raise _data_error(
                    req, f"{p}[{i}]", f"invalid type: {_unexpected(item)}, expected a string"
                )
        return list(v)
    if kind == "obj":
        if not isinstance(v, dict):
            raise _data_error(req, p, f"invalid type: {_unexpected(v)}, expected a map")
        return v
    raise AssertionError(kind)


_PARAM_KINDS = {
    "best_of": "?usize",
    "temperature": "?f32",
    "repetition_penalty": "?f32",
    "frequency_penalty": "?f32",
    "top_k": "?i32",
    "top_p": "?f32",
    "typical_p": "?f32",
    "do_sample": "bool",
    "max_new_tokens": "?u32",
    "return_full_text": "?bool",
    "stop": "seq[str]",
    "truncate": "?usize",
    "watermark": "bool",
    "details": "bool",
    "decoder_input_details": "bool",
    "seed": "?u64",
    "top_n_tokens": "?u32",
    "grammar": "?obj",
    "adapter_id": "?str",
}


@dataclass(slots=True)
class _Gen:
    """A validated ``GenerateRequest`` with what the rendering needs."""

    inputs: str
    p: dict[str, Any]
    stream: bool = False

    @property
    def details(self) -> bool:
        return bool(self.p.get("details"))


def _parse_generate(req: MockRequest, *, compat: bool) -> _Gen:
    data = _json_body(req)
    target = "struct CompatGenerateRequest" if compat else "struct GenerateRequest"
    if not isinstance(data, dict):
        raise _data_error(req, "", f"invalid type: {_unexpected(data)}, expected {target}")
    if "inputs" not in data:
        raise _data_error(req, "", "missing field `inputs`")
    inputs = _field(req, data, "inputs", "str", "")
    raw_params = data.get("parameters")
    if "parameters" in data:
        if not isinstance(raw_params, dict):
            raise _data_error(
                req,
                "parameters",
                f"invalid type: {_unexpected(raw_params)}, expected struct GenerateParameters",
            )
        params: dict[str, Any] = {k: None for k in _PARAM_KINDS}
        params.update(do_sample=False, stop=[], watermark=False, details=False)
        params["decoder_input_details"] = False
        for key, kind in _PARAM_KINDS.items():
            if key in raw_params:
                value = _field(req, raw_params, key, kind, "parameters")
                if value is not None or kind.startswith("?"):
                    params[key] = value
    else:
        # default_parameters(): sampling on when the client sent no parameters at all.
        params = {k: None for k in _PARAM_KINDS}
        params.update(do_sample=True, stop=[], watermark=False, details=False)
        params["decoder_input_details"] = False
    stream = False
    if compat and "stream" in data:
        stream = bool(_field(req, data, "stream", "bool", ""))
    return _Gen(inputs, params, stream)


def _validate(g: _Gen, *, streaming: bool, total: int = MAX_TOTAL_TOKENS) -> tuple[int, int]:
    """TGI's validation in its order; returns ``(input_length, max_new_tokens)``.

    ``total`` is the deployment's ``--max-total-tokens`` (``serve --ctx-size``); the input
    limit is one less, as TGI's launcher defaults it.
    """
    max_input = total - 1
    p = g.p
    if streaming:
        if (p["best_of"] or 1) != 1:
            raise _Validation("`best_of` != 1 is not supported when streaming tokens")
        if p["decoder_input_details"]:
            raise _Validation(
                "`decoder_input_details` == true is not supported when streaming tokens"
            )
    best_of = p["best_of"] if p["best_of"] is not None else 1
    if best_of == 0 or best_of > MAX_BEST_OF:
        raise _Validation(f"`best_of` must be > 0 and <= {MAX_BEST_OF}. Given: {best_of}")
    temperature = p["temperature"] if p["temperature"] is not None else 1.0
    if temperature <= 0.0:
        raise _Validation("`temperature` must be strictly positive")
    rp = p["repetition_penalty"] if p["repetition_penalty"] is not None else 1.0
    if rp <= 0.0:
        raise _Validation("`repetition_penalty` must be strictly positive")
    fp = p["frequency_penalty"] if p["frequency_penalty"] is not None else 0.0
    if not -2.0 <= fp <= 2.0:
        raise _Validation("`frequency_penalty` must be >= -2.0 and <= 2.0")
    if p["top_p"] is not None and not 0.0 < p["top_p"] < 1.0:
        raise _Validation("`top_p` must be > 0.0 and < 1.0")
    if p["typical_p"] is not None and not 0.0 < p["typical_p"] < 1.0:
        raise _Validation("`typical_p` must be > 0.0 and < 1.0")
    if p["top_k"] is not None and p["top_k"] <= 0:
        raise _Validation("`top_k` must be strictly positive")
    if p["max_new_tokens"] == 0:
        raise _Validation("`max_new_tokens` must be strictly positive")
    if len(p["stop"]) > MAX_STOP_SEQUENCES:
        raise _Validation(
            f"`stop` supports up to {MAX_STOP_SEQUENCES} stop sequences. Given: {len(p['stop'])}"
        )
    if p["top_n_tokens"] is not None and p["top_n_tokens"] > MAX_TOP_N_TOKENS:
        raise _Validation(
            f"`top_n_tokens` must be >= 0 and <= {MAX_TOP_N_TOKENS}. Given: {p['top_n_tokens']}"
        )
    if not g.inputs:
        raise _Validation("`inputs` cannot be empty")
    trunc = p["truncate"]
    if trunc is not None and (trunc == 0 or trunc > max_input):
        raise _Validation(
            f"`truncate` must be strictly positive and less than {max_input}. Given: {trunc}"
        )
    input_length = len(tokenize(g.inputs))
    if trunc is not None:
        input_length = min(input_length, trunc)
    mnt = p["max_new_tokens"]
    if mnt is None:
        mnt = min(max(total - input_length, 0), DEFAULT_GENERATION_LENGTH)
    if input_length + mnt > total:
        raise _Validation(
            f"`inputs` tokens + `max_new_tokens` must be <= {total}. "
            f"Given: {input_length} `inputs` tokens and {mnt} `max_new_tokens`"
        )
    if input_length > max_input:
        raise _Validation(f"`inputs` must have less than {max_input} tokens. Given: {input_length}")
    return input_length, mnt


def _sampling(p: Mapping[str, Any]) -> bool:
    """The shard's ``do_sample``: explicit, or implied by any warper (``tokens.py``)."""
    return bool(
        p["do_sample"]
        or (p["temperature"] is not None and p["temperature"] != 1.0)
        or (p["top_k"] is not None and p["top_k"] != 0)
        or (p["top_p"] is not None and p["top_p"] < 1.0)
        or (p["typical_p"] is not None and p["typical_p"] < 1.0)
    )


# ---------------------------------------------------------------------------------------------
# Rendering a plan
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Run:
    """A plan as TGI emits it: one token per step, the EOS token made visible."""

    plan: GenerationPlan
    tokens: list[TgiToken]
    steps: list[int]
    finish_reason: str
    generated_tokens: int
    seed: int | None
    input_length: int
    generated_text: str
    top: list[list[TgiToken]]


def _run(ctx: EngineView, g: _Gen, input_length: int, max_new_tokens: int) -> _Run:
    p = g.p
    sampling = _sampling(p)
    seed = p["seed"] if p["seed"] is not None else ctx.seed
    plan = ctx.plan(
        g.inputs,
        max_tokens=max_new_tokens,
        seed=seed,
        stop=p["stop"],
        # Only knobs the request set feed the plan (the cross-dialect oracle); greedy is t=0.
        temperature=p["temperature"] if sampling else 0.0,
        top_p=p["top_p"] if sampling else None,
        top_k=p["top_k"] if sampling else None,
    )
    n = max(1, ctx.profile.tokens_per_chunk)
    tokens = [
        TgiToken(tid, text, token_logprob(tid, i))
        for i, (text, tid) in enumerate(zip(plan.tokens, plan.token_ids, strict=True))
    ]
    steps = [i // n for i in range(len(tokens))]
    if plan.stop_reason == "eos":
        finish = "eos_token"
        tokens.append(
            TgiToken(EOS_TOKEN_ID, EOS_TEXT, token_logprob(EOS_TOKEN_ID, len(tokens)), True)
        )
        steps.append(len(tokens) // n if tokens else 0)
        generated = plan.completion_tokens + 1
    elif plan.stop_reason == "stop":
        finish = "stop_sequence"
        if not tokens:
            tid = token_id(plan.stop_string or "")
            tokens.append(TgiToken(tid, "", token_logprob(tid, 0)))
            steps.append(0)
        generated = plan.completion_tokens
    else:
        finish = "length"
        generated = plan.completion_tokens
    text = plan.text
    if p["return_full_text"]:
        text = g.inputs + text
    return _Run(
        plan=plan,
        tokens=tokens,
        steps=steps,
        finish_reason=finish,
        generated_tokens=generated,
        seed=seed if sampling else None,
        input_length=input_length,
        generated_text=text,
        top=[top_tokens_for(t, p["top_n_tokens"] or 0) for t in tokens],
    )


def _stream_headers(inputs: str | int) -> Headers:
    """``generate_stream_internal``'s headers; ``inputs`` or its character count."""
    chars = inputs if isinstance(inputs, int) else len(inputs)
    return [
        (b"content-type", b"text/event-stream"),
        (b"cache-control", b"no-cache"),
        (b"x-compute-type", COMPUTE_TYPE),
        (b"x-compute-characters", str(chars).encode()),
        (b"x-accel-buffering", b"no"),
        (b"vary", _VARY),
        (b"date", _date()),
    ]


def _timing_headers(ctx: EngineView, run: _Run, inputs: str) -> Headers:
    """``generate_internal``'s headers; durations are the profile's nominal ones (no jitter)."""
    prof = ctx.profile
    steps = max(1, (run.steps[-1] + 1) if run.steps else 1)
    ttft_ms = prof.ttft_ms + prof.ttft_per_prompt_token_ms * run.input_length
    inference_ms = ttft_ms + prof.itl_ms * (steps - 1)
    per_token_ms = inference_ms / max(1, run.generated_tokens)
    return [
        (b"content-type", b"application/json"),
        (b"x-compute-type", COMPUTE_TYPE),
        (b"x-compute-time", _rust_f64(inference_ms / 1000.0).encode()),
        (b"x-compute-characters", str(len(inputs)).encode()),
        (b"x-total-time", str(int(inference_ms)).encode()),
        (b"x-validation-time", b"0"),
        (b"x-queue-time", b"0"),
        (b"x-inference-time", str(int(inference_ms)).encode()),
        (b"x-time-per-token", str(int(per_token_ms)).encode()),
        (b"x-prompt-tokens", str(run.input_length).encode()),
        (b"x-generated-tokens", str(run.generated_tokens).encode()),
        (b"vary", _VARY),
        (b"date", _date()),
    ]


def _details_json(run: _Run, g: _Gen) -> str:
    prefill = "[]"
    if g.p["decoder_input_details"]:
        pieces = tokenize(g.inputs)
        items = []
        for i, piece in enumerate(pieces):
            tid = token_id(piece)
            lp = "null" if i == 0 else f32_json(token_logprob(tid, i))
            items.append(f'{{"id":{tid},"text":{_js(piece)},"logprob":{lp}}}')
        prefill = "[" + ",".join(items) + "]"
    toks = "[" + ",".join(t.json() for t in run.tokens) + "]"
    seed = "null" if run.seed is None else str(run.seed)
    top = ""
    if any(run.top):
        top = (
            ',"top_tokens":['
            + ",".join("[" + ",".join(t.json() for t in cand) + "]" for cand in run.top)
            + "]"
        )
    return (
        f'{{"finish_reason":"{run.finish_reason}","generated_tokens":{run.generated_tokens},'
        f'"seed":{seed},"prefill":{prefill},"tokens":{toks}{top}}}'
    )


def _chat_logprobs(tokens: Sequence[TgiToken], top: Sequence[Sequence[TgiToken]]) -> str:
    """``ChatCompletionLogprobs``: ``{"content":[{token,logprob,top_logprobs:[{token,logprob}]}]}``."""
    items = []
    for tok, cands in zip(tokens, top, strict=True):
        tops = ",".join(f'{{"token":{_js(c.text)},"logprob":{f32_json(c.logprob)}}}' for c in cands)
        items.append(
            f'{{"token":{_js(tok.text)},"logprob":{f32_json(tok.logprob)},"top_logprobs":[{tops}]}}'
        )
    return '{"content":[' + ",".join(items) + "]}"


def _generate_json(run: _Run, g: _Gen) -> str:
    if g.details or g.p["decoder_input_details"]:
        return f'{{"generated_text":{_js(run.generated_text)},"details":{_details_json(run, g)}}}'
    return f'{{"generated_text":{_js(run.generated_text)}}}'


class TgiDialect(Dialect):
    """The TGI router: native routes, OpenAI chat route, info/health/metrics."""

    name = "tgi"
    engine_version = VERSION
    default_model = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
    loading_mode = "port_closed"
    unsupported_faults = frozenset()
    keepalive = KEEPALIVE_COMMENT

    def __init__(self, *, legacy_framing: bool = False) -> None:
        self.legacy_framing = legacy_framing

    # -- plumbing -------------------------------------------------------------------------------
    def _legacy(self, req: MockRequest) -> bool:
        choice = req.headers.get(FRAMING_HEADER)
        if choice is None:
            return self.legacy_framing
        return choice.strip().lower() in ("axum06", "legacy", "no-space")

    def routes(self) -> Sequence[Route]:
        return (
            Route("POST", "/", self._compat, generation=True),
            Route("POST", "/generate", self._generate, generation=True),
            Route("POST", "/generate_stream", self._generate_stream, generation=True),
            Route("POST", "/v1/chat/completions", self._chat, generation=True),
            Route("POST", "/v1/completions", self._completions, generation=True),
            Route("POST", "/tokenize", self._tokenize),
            Route("GET", "/", self._health, public=True),
            Route("GET", "/health", self._health, public=True),
            Route("GET", "/ping", self._health, public=True),
            Route("GET", "/info", self._info, public=True),
            Route("GET", "/metrics", self._metrics, public=True),
            Route("GET", "/v1/models", self._models, public=True),
        )

    def error_reply(
        self,
        status: int,
        message: str,
        *,
        etype: str | None = None,
        param: str | None = None,
        code: str | None = None,
    ) -> Reply:
        default = {
            400: "bad_request",
            413: "payload_too_large",
            422: "validation",
            424: "generation",
            429: "overloaded",
            500: "incomplete_generation",
            503: "healthcheck",
        }.get(status, "error")
        return Reply(
            status,
            error_body(message, etype or default).encode(),
            [(b"content-type", b"application/json"), (b"vary", _VARY), (b"date", _date())],
        )

    def not_found_reply(self, req: MockRequest) -> Reply:
        return _bare(404)

    def method_not_allowed_reply(self, req: MockRequest) -> Reply:
        return _bare(405)

    def check_auth(
        self, req: MockRequest, api_key: str | None, route: Route | None
    ) -> Reply | None:
        if api_key is None or route is None or route.public:
            return None
        if req.headers.get("authorization", "").lower() == f"bearer {api_key}".lower():
            return None
        return _bare(401)

    def body_too_large_reply(self, req: MockRequest, limit: int) -> Reply:
        return _text_reply(413, "Failed to buffer the request body: length limit exceeded")

    def status_fault_reply(self, status: int, req: MockRequest) -> Reply:
        if status == 400:
            return _text_reply(
                400, "Failed to parse the request body as JSON: expected value at line 1 column 1"
            )
        if status in (401, 404):
            return _bare(status)
        if status == 422:
            return self.error_reply(422, "Input validation error: `inputs` cannot be empty")
        if status == 500:
            return self.error_reply(500, "Incomplete generation")
        if status == 503:
            return self.error_reply(503, "unhealthy")
        return super().status_fault_reply(status, req)

    def rate_limit_reply(self, req: MockRequest, seconds: int) -> Reply:
        reply = self.error_reply(429, "Model is overloaded")
        reply.headers.append((b"retry-after", str(seconds).encode()))
        return reply

    def overload_reply(self, req: MockRequest, ctx: EngineView) -> Reply | StreamReply:
        """429 ``overloaded`` — but a streaming route answers 200 and sends it as an event."""
        message = "Model is overloaded"
        path = req.path
        streaming = path == "/generate_stream"
        if path in ("/", "/v1/chat/completions", "/v1/completions"):
            try:
                body = json.loads(req.body)
                streaming = isinstance(body, dict) and body.get("stream") is True
            except (ValueError, RecursionError):
                streaming = False
        if not streaming:
            return self.error_reply(429, message)
        if path.startswith("/v1/"):
            frames = self._openai_error_frames(req, message)
        else:
            frames = [sse(error_body(message, "overloaded"), legacy=self._legacy(req))]
        return StreamReply(
            200,
            _stream_headers(""),
            [Frame(f, 0, FrameKind.META) for f in frames],
        )

    def _openai_error_frames(self, req: MockRequest, message: str) -> list[bytes]:
        legacy = self._legacy(req)
        return [sse(openai_error_event(message), legacy=legacy), sse("[DONE]", legacy=legacy)]

    # -- native generation ------------------------------------------------------------------------
    def _compat(self, req: MockRequest, ctx: EngineView) -> Reply | StreamReply:
        g = _parse_generate(req, compat=True)
        if g.p["return_full_text"] is None:
            g.p["return_full_text"] = True  # model_pipeline_tag == "text-generation"
        if g.stream:
            return self._stream(req, ctx, g)
        return self._non_stream(req, ctx, g, wrap=True)

    def _generate(self, req: MockRequest, ctx: EngineView) -> Reply | StreamReply:
        g = _parse_generate(req, compat=False)
        return self._non_stream(req, ctx, g, wrap=False)

    def _generate_stream(self, req: MockRequest, ctx: EngineView) -> Reply | StreamReply:
        g = _parse_generate(req, compat=False)
        return self._stream(req, ctx, g)

    def _non_stream(
        self, req: MockRequest, ctx: EngineView, g: _Gen, *, wrap: bool
    ) -> Reply | StreamReply:
        try:
            input_length, mnt = _validate(g, streaming=False, total=ctx.ctx_size)
        except _Validation as v:
            return self.error_reply(422, v.message)
        run = _run(ctx, g, input_length, mnt)
        body = _generate_json(run, g)
        if wrap:
            body = f"[{body}]"
        return Reply(200, body.encode(), _timing_headers(ctx, run, g.inputs), run.plan)

    def _stream(self, req: MockRequest, ctx: EngineView, g: _Gen) -> StreamReply:
        legacy = self._legacy(req)
        headers = _stream_headers(g.inputs)
        try:
            input_length, mnt = _validate(g, streaming=True, total=ctx.ctx_size)
        except _Validation as v:
            frame = sse(error_body(v.message, "validation"), legacy=legacy)
            return StreamReply(200, headers, [Frame(frame, 0, FrameKind.META)])
        run = _run(ctx, g, input_length, mnt)
        last = len(run.tokens) - 1
        frames: list[Frame] = []
        for i, tok in enumerate(run.tokens):
            if i < last:
                payload = stream_event(i + 1, tok, top_tokens=run.top[i])
                frames.append(Frame(sse(payload, legacy=legacy), run.steps[i], FrameKind.TOKEN))
            else:
                payload = stream_event(
                    i + 1,
                    tok,
                    generated_text=run.generated_text,
                    finish_reason=run.finish_reason,
                    generated_tokens=run.generated_tokens,
                    seed=run.seed,
                    input_length=run.input_length,
                    details=g.details,
                    top_tokens=run.top[i],
                )
                frames.append(Frame(sse(payload, legacy=legacy), run.steps[i], FrameKind.TERMINAL))
        position = max(1, len(run.tokens))

        def error_frames(message: str) -> list[bytes]:
            text = f"Request failed during generation: {message}"
            return [sse(error_body(text, "generation"), legacy=legacy)]

        def token_frame(text: str) -> bytes:
            # A fixed id keeps the frame size linear in the text (frame.oversized sizes it).
            tok = TgiToken(0, text, token_logprob(0, position))
            return sse(stream_event(position, tok), legacy=legacy)

        return StreamReply(200, headers, frames, run.plan, error_frames, token_frame)

    # -- OpenAI chat route --------------------------------------------------------------------------
    def _chat(self, req: MockRequest, ctx: EngineView) -> Reply | StreamReply:
        data = _json_body(req)
        chat = _parse_chat(req, data)
        legacy = self._legacy(req)
        model = chat["model"] if chat["model"] not in (None, "tgi") else ctx.model
        fingerprint = f"{VERSION}-native"
        inputs = chat_prompt(chat["messages"])
        temperature = chat["temperature"]
        do_sample, temp = (False, None) if temperature == 0.0 else (True, temperature)
        presence = chat["presence_penalty"]
        params: dict[str, Any] = {k: None for k in _PARAM_KINDS}
        params.update(
            do_sample=do_sample,
            temperature=temp,
            repetition_penalty=None if presence is None else presence + 2.0,
            frequency_penalty=chat["frequency_penalty"],
            top_p=chat["top_p"],
            max_new_tokens=chat["max_tokens"],
            stop=chat["stop"] or [],
            watermark=False,
            details=True,
            decoder_input_details=False,
            seed=chat["seed"],
            top_n_tokens=chat["top_logprobs"],
        )
        g = _Gen(inputs, params, chat["stream"])
        created = ctx.created()
        if not g.stream:
            try:
                input_length, mnt = _validate(g, streaming=False, total=ctx.ctx_size)
            except _Validation as v:
                return self.error_reply(422, v.message)
            run = _run(ctx, g, input_length, mnt)
            finish = "stop" if run.finish_reason == "eos_token" else run.finish_reason
            lp = _chat_logprobs(run.tokens, run.top) if chat["logprobs"] else "null"
            body = (
                f'{{"object":"chat.completion","id":"","created":{created},"model":{_js(model)},'
                f'"system_fingerprint":{_js(fingerprint)},"choices":[{{"index":0,"message":'
                f'{{"role":"assistant","content":{_js(run.generated_text)}}},"logprobs":{lp},'
                f'"finish_reason":"{finish}"}}],"usage":{{"prompt_tokens":{run.input_length},'
                f'"completion_tokens":{run.generated_tokens},'
                f'"total_tokens":{run.input_length + run.generated_tokens}}}}}'
            )
            return Reply(200, body.encode(), _timing_headers(ctx, run, inputs), run.plan)
        headers = _stream_headers(inputs)
        try:
            input_length, mnt = _validate(g, streaming=True, total=ctx.ctx_size)
        except _Validation as v:
            errs = self._openai_error_frames(req, v.message)
            return StreamReply(200, headers, [Frame(f, 0, FrameKind.META) for f in errs])
        run = _run(ctx, g, input_length, mnt)
        head = (
            f'{{"object":"chat.completion.chunk","id":"","created":{created},"model":{_js(model)},'
            f'"system_fingerprint":{_js(fingerprint)},'
        )

        def chunk(content: str, finish: str | None, lp: str = "null") -> bytes:
            fin = "null" if finish is None else f'"{finish}"'
            return sse(
                head + f'"choices":[{{"index":0,"delta":{{"role":"assistant","content":'
                f'{_js(content)}}},"logprobs":{lp},"finish_reason":{fin}}}],"usage":null}}',
                legacy=legacy,
            )

        last = len(run.tokens) - 1
        final_finish = "stop" if run.finish_reason == "eos_token" else run.finish_reason
        frames: list[Frame] = []
        for i, tok in enumerate(run.tokens):
            content = "" if tok.special else tok.text
            fin_i = final_finish if i == last else None
            kind = FrameKind.TOKEN if i < last and not tok.special else FrameKind.META
            lp = _chat_logprobs([tok], [run.top[i]]) if chat["logprobs"] else "null"
            frames.append(Frame(chunk(content, fin_i, lp), run.steps[i], kind))
        end_step = run.steps[-1] if run.steps else 0
        if chat["include_usage"]:
            usage = (
                head + f'"choices":[],"usage":{{"prompt_tokens":{run.input_length},'
                f'"completion_tokens":{run.generated_tokens},'
                f'"total_tokens":{run.input_length + run.generated_tokens}}}}}'
            )
            frames.append(Frame(sse(usage, legacy=legacy), end_step, FrameKind.META))
        frames.append(Frame(sse("[DONE]", legacy=legacy), end_step, FrameKind.TERMINAL))

        def error_frames(message: str) -> list[bytes]:
            return self._openai_error_frames(req, f"Request failed during generation: {message}")

        def token_frame(text: str) -> bytes:
            return chunk(text, None)

        return StreamReply(200, headers, frames, run.plan, error_frames, token_frame)

    # -- OpenAI completions route -------------------------------------------------------------
    def _completions(self, req: MockRequest, ctx: EngineView) -> Reply | StreamReply:
        """``/v1/completions``: one generate request per prompt (up to ``max_client_batch_size``)."""
        data = _json_body(req)
        comp = _parse_completion(req, data)
        legacy = self._legacy(req)
        if comp["suffix"] is not None:
            return self.error_reply(
                422,
                "Suffix is not supported and can be achieved by preprocessing the prompt.",
                etype="suffix not supported",
            )
        prompts: list[str] = comp["prompt"]
        if len(prompts) > MAX_CLIENT_BATCH_SIZE:
            return self.error_reply(
                422,
                "Number of prompts exceeds the maximum allowed batch size of "
                f"{MAX_CLIENT_BATCH_SIZE}",
                etype="batch size exceeded",
            )
        temperature = comp["temperature"]
        do_sample, temp = (False, None) if temperature == 0.0 else (True, temperature)
        gens = []
        for prompt in prompts:
            params: dict[str, Any] = {k: None for k in _PARAM_KINDS}
            params.update(
                do_sample=do_sample,
                temperature=temp,
                repetition_penalty=comp["repetition_penalty"],
                frequency_penalty=comp["frequency_penalty"],
                top_p=comp["top_p"],
                max_new_tokens=comp["max_tokens"],
                stop=comp["stop"] or [],
                watermark=False,
                details=True,
                decoder_input_details=not comp["stream"],
                seed=comp["seed"],
            )
            gens.append(_Gen(prompt, params, comp["stream"]))
        model = _js(ctx.model)
        fingerprint = _js(f"{VERSION}-native")
        created = ctx.created()

        def choice(index: int, text: str, finish: str) -> str:
            return (
                f'{{"index":{index},"text":{_js(text)},"logprobs":null,'
                f'"finish_reason":{_js(finish)}}}'
            )

        def usage(p: int, c: int) -> str:
            return f'"usage":{{"prompt_tokens":{p},"completion_tokens":{c},"total_tokens":{p + c}}}'

        if not comp["stream"]:
            runs = []
            for g in gens:
                try:
                    input_length, mnt = _validate(g, streaming=False, total=ctx.ctx_size)
                except _Validation as v:
                    return self.error_reply(422, v.message)
                runs.append(_run(ctx, g, input_length, mnt))
            choices = ",".join(
                choice(
                    i,
                    r.generated_text,
                    "stop" if r.finish_reason == "eos_token" else r.finish_reason,
                )
                for i, r in enumerate(runs)
            )
            p_tok = sum(r.input_length for r in runs)
            c_tok = sum(r.generated_tokens for r in runs)
            body = (
                f'{{"object":"text_completion","id":"","created":{created},"model":{model},'
                f'"system_fingerprint":{fingerprint},"choices":[{choices}],{usage(p_tok, c_tok)}}}'
            )
            headers = _timing_headers(ctx, runs[0], "".join(prompts))
            return Reply(200, body.encode(), headers, runs[0].plan)
        frames: list[tuple[int, int, Frame]] = []
        first_plan: GenerationPlan | None = None
        for i, g in enumerate(gens):
            try:
                input_length, mnt = _validate(g, streaming=True, total=ctx.ctx_size)
            except _Validation as v:
                err = sse(openai_error_event(v.message), legacy=legacy)
                frames.append((0, i, Frame(err, 0, FrameKind.META)))
                continue
            run = _run(ctx, g, input_length, mnt)
            first_plan = first_plan or run.plan
            last = len(run.tokens) - 1
            for k, tok in enumerate(run.tokens):
                if k < last:
                    payload = (
                        f'{{"object":"text_completion","id":"","created":{created},'
                        f'"choices":[{choice(i, tok.text, "")}],"model":{model},'
                        f'"system_fingerprint":{fingerprint}}}'
                    )
                    kind = FrameKind.TOKEN
                else:
                    payload = (
                        f'{{"object":"text_completion","id":"","created":{created},'
                        f'"model":{model},"system_fingerprint":{fingerprint},'
                        f'"choices":[{choice(i, tok.text, run.finish_reason)}],'
                        f"{usage(run.input_length, run.generated_tokens)}}}"
                    )
                    kind = FrameKind.META
                step = run.steps[k]
                frames.append((step, i, Frame(sse(payload, legacy=legacy), step, kind)))
        frames.sort(key=lambda t: (t[0], t[1]))
        ordered = [f for _, _, f in frames]
        end = ordered[-1].step if ordered else 0
        ordered.append(Frame(sse("[DONE]", legacy=legacy), end, FrameKind.TERMINAL))

        def error_frames(message: str) -> list[bytes]:
            return self._openai_error_frames(req, f"Request failed during generation: {message}")

        def token_frame(text: str) -> bytes:
            return sse(
                f'{{"object":"text_completion","id":"","created":{created},'
                f'"choices":[{choice(0, text, "")}],"model":{model},'
                f'"system_fingerprint":{fingerprint}}}',
                legacy=legacy,
            )

        chars = sum(len(p) for p in prompts)
        return StreamReply(
            200, _stream_headers(chars), ordered, first_plan, error_frames, token_frame
        )

    # -- info routes ------------------------------------------------------------------------------
    def _health(self, req: MockRequest, ctx: EngineView) -> Reply:
        return _bare(200)

    def _info(self, req: MockRequest, ctx: EngineView) -> Reply:
        model = ctx.model
        model_sha = hashlib.sha1(model.encode()).hexdigest()
        slots = ctx.profile.slots + ctx.profile.queue_size
        body = (
            f'{{"model_id":{_js(model)},"model_sha":"{model_sha}",'
            f'"model_pipeline_tag":"text-generation","max_concurrent_requests":{slots},'
            f'"max_best_of":{MAX_BEST_OF},"max_stop_sequences":{MAX_STOP_SEQUENCES},'
            f'"max_input_tokens":{ctx.ctx_size - 1},"max_total_tokens":{ctx.ctx_size},'
            f'"validation_workers":2,"max_client_batch_size":{MAX_CLIENT_BATCH_SIZE},'
            f'"router":"text-generation-router","version":"{VERSION}","sha":"{ROUTER_SHA}",'
            f'"docker_label":null}}'
        )
        return Reply(
            200,
            body.encode(),
            [(b"content-type", b"application/json"), (b"vary", _VARY), (b"date", _date())],
        )

    def _models(self, req: MockRequest, ctx: EngineView) -> Reply:
        m = _js(ctx.model)
        body = (
            f'{{"object":"list","data":[{{"id":{m},"object":"model","created":0,"owned_by":{m}}}]}}'
        )
        return Reply(
            200,
            body.encode(),
            [(b"content-type", b"application/json"), (b"vary", _VARY), (b"date", _date())],
        )

    def _tokenize(self, req: MockRequest, ctx: EngineView) -> Reply | StreamReply:
        g = _parse_generate(req, compat=False)
        items = []
        pos = 0
        for piece in tokenize(g.inputs):
            end = pos + len(piece.encode("utf-8"))
            items.append(
                f'{{"id":{token_id(piece)},"text":{_js(piece)},"start":{pos},"stop":{end}}}'
            )
            pos = end
        return Reply(
            200,
            ("[" + ",".join(items) + "]").encode(),
            [(b"content-type", b"application/json"), (b"vary", _VARY), (b"date", _date())],
        )

    def _metrics(self, req: MockRequest, ctx: EngineView) -> Reply:
        st = ctx.stats
        lines = [
            "# HELP tgi_request_count Total number of requests",
            "# TYPE tgi_request_count counter",
            f"tgi_request_count {st.requests_total}",
            "# HELP tgi_request_success Number of successful requests",
            "# TYPE tgi_request_success counter",
            f"tgi_request_success {st.requests_success}",
            "# HELP tgi_queue_size Current queue size",
            "# TYPE tgi_queue_size gauge",
            f"tgi_queue_size {ctx.slots.queued}",
            "# HELP tgi_batch_current_size Current batch size",
            "# TYPE tgi_batch_current_size gauge",
            f"tgi_batch_current_size {ctx.slots.busy}",
            "# HELP tgi_batch_current_max_tokens Maximum tokens for the current batch",
            "# TYPE tgi_batch_current_max_tokens gauge",
            f"tgi_batch_current_max_tokens {ctx.slots.busy * ctx.ctx_size}",
            "# HELP tgi_request_generated_tokens Generated tokens per request",
            "# TYPE tgi_request_generated_tokens histogram",
            f'tgi_request_generated_tokens_bucket{{le="+Inf"}} {st.requests_success}',
            f"tgi_request_generated_tokens_sum {st.tokens_predicted_total}",
            f"tgi_request_generated_tokens_count {st.requests_success}",
            "# HELP tgi_request_input_length Input token length per request",
            "# TYPE tgi_request_input_length histogram",
            f'tgi_request_input_length_bucket{{le="+Inf"}} {st.requests_success}',
            f"tgi_request_input_length_sum {st.prompt_tokens_total}",
            f"tgi_request_input_length_count {st.requests_success}",
        ]
        return Reply(
            200,
            ("\n".join(lines) + "\n").encode(),
            [(b"content-type", b"text/plain; charset=utf-8"), (b"vary", _VARY), (b"date", _date())],
        )


def _struct(req: MockRequest, data: Any, name: str, required: str) -> dict[str, Any]:
    """serde's first two checks of a request struct: a JSON object, holding ``required``."""
    if not isinstance(data, dict):
        raise _data_error(req, "", f"invalid type: {_unexpected(data)}, expected struct {name}")
    if required not in data:
        raise _data_error(req, "", f"missing field `{required}`")
    return data


def _parse_completion(req: MockRequest, data: Any) -> dict[str, Any]:
    """``CompletionRequest`` deserialization; ``prompt`` is a string or a list of strings."""
    data = _struct(req, data, "CompletionRequest", "prompt")
    prompt = data["prompt"]
    if isinstance(prompt, str):
        prompts = [prompt]
    elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        prompts = list(prompt)
    else:
        raise _data_error(req, "prompt", "Expected a string or an array of strings")
    out: dict[str, Any] = {"prompt": prompts}
    out["model"] = _field(req, data, "model", "?str", "")
    out["max_tokens"] = _field(req, data, "max_tokens", "?u32", "")
    out["temperature"] = _field(req, data, "temperature", "?f32", "")
    out["top_p"] = _field(req, data, "top_p", "?f32", "")
    out["stream"] = bool(_field(req, data, "stream", "bool", ""))
    out["seed"] = _field(req, data, "seed", "?u64", "")
    out["suffix"] = _field(req, data, "suffix", "?str", "")
    out["repetition_penalty"] = _field(req, data, "repetition_penalty", "?f32", "")
    out["frequency_penalty"] = _field(req, data, "frequency_penalty", "?f32", "")
    out["stop"] = _field(req, data, "stop", "?seq[str]", "")
    return out


def _parse_chat(req: MockRequest, data: Any) -> dict[str, Any]:
    """``ChatRequest`` deserialization (plain-text 422 on a shape error, like axum)."""
    data = _struct(req, data, "ChatRequest", "messages")
    messages = data["messages"]
    if not isinstance(messages, list):
        raise _data_error(
            req, "messages", f"invalid type: {_unexpected(messages)}, expected a sequence"
        )
    for i, m in enumerate(messages):
        path = f"messages[{i}]"
        if not isinstance(m, dict):
            raise _data_error(req, path, f"invalid type: {_unexpected(m)}, expected struct Message")
        if "role" not in m:
            raise _data_error(req, path, "missing field `role`")
        _field(req, m, "role", "str", path)
        content = m.get("content")
        ok = isinstance(content, str) or (
            isinstance(content, list) and all(isinstance(c, dict) for c in content)
        )
        if not ok and not isinstance(m.get("tool_calls"), list):
            raise _data_error(
                req, path, "data did not match any variant of untagged enum MessageBody"
            )
    out: dict[str, Any] = {"messages": messages}
    out["model"] = _field(req, data, "model", "?str", "")
    out["temperature"] = _field(req, data, "temperature", "?f32", "")
    out["top_p"] = _field(req, data, "top_p", "?f32", "")
    out["presence_penalty"] = _field(req, data, "presence_penalty", "?f32", "")
    out["frequency_penalty"] = _field(req, data, "frequency_penalty", "?f32", "")
    key = "max_tokens" if "max_tokens" in data else "max_completion_tokens"
    out["max_tokens"] = _field(req, data, key, "?u32", "")
    out["seed"] = _field(req, data, "seed", "?u64", "")
    out["stop"] = _field(req, data, "stop", "?seq[str]", "")
    out["top_logprobs"] = _field(req, data, "top_logprobs", "?u32", "")
    out["logprobs"] = bool(_field(req, data, "logprobs", "?bool", ""))
    out["stream"] = bool(_field(req, data, "stream", "bool", ""))
    opts = _field(req, data, "stream_options", "?obj", "")
    out["include_usage"] = bool(
        _field(req, opts, "include_usage", "bool", "stream_options") if opts else False
    )
    return out


#: The registered dialect object (axum 0.7 framing).
DIALECT = TgiDialect()
