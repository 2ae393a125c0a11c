"""The dialect interface: what a dialect module gets from the core and what it hands back.

A dialect is a thin module (``mock_engines/_dialects/<name>.py``) exposing one object that
subclasses :class:`Dialect`. It **parses requests and renders bytes**; it never sleeps, never
counts slots, never applies faults and never touches the journal — the core does all of that once
for every dialect (DESIGN.md principle 1).

How a request flows::

    core: read body → journal entry → control prefix? → loading? → auth (dialect.check_auth)
          → route lookup (dialect.routes) → fault selection → handler(req, ctx)
    handler → Reply | StreamReply          (or raise EngineError → dialect.error_reply)
    core: for generation replies: take a slot (or dialect.overload_reply), compute the
          step times from the profile, apply the fault, write frames at their due times
          (frames due at the same moment go out as one write), journal every frame.

What a handler returns:

* :class:`Reply` — status, headers, body. With ``plan`` set, the core holds the reply back for the
  plan's whole generation time (non-streamed generation) and the request occupies a slot.
* :class:`StreamReply` — status, headers and a list of :class:`Frame`. ``Frame.step`` says at
  which generation step the frame becomes due: step *k* is the *k*-th chunk of the plan
  (``ctx.chunks(plan)``); step ``-1`` goes out with the headers. ``Frame.kind`` tells the fault
  machinery what the frame is: ``TOKEN`` (carries generated text, may carry an index),
  ``META`` (role/finish/usage frames), ``TERMINAL`` (the frame whose absence the client must
  notice: ``[DONE]``, llama.cpp's ``stop:true`` object, TGI's final event). ``error_frames(msg)``
  renders the engine's in-stream error (for ``stream.error_event``) and ``token_frame(text)`` a
  token frame with arbitrary text (for ``frame.oversized``).

What a dialect must define (class attributes / methods of :class:`Dialect`): ``name``,
``engine_version``, ``default_model``, ``loading_mode`` (``"http_503"`` or ``"port_closed"``),
``unsupported_faults``, ``keepalive`` (the comment frame, or ``None``), ``routes()``,
``error_reply()``, ``overload_reply()``, and optionally ``loading_reply()``,
``rate_limit_reply()``, ``check_auth()``, ``not_found_reply()``, ``base_headers()``.

Helpers for rendering: :func:`dumps` (compact JSON, raw UTF-8 — what llama.cpp's nlohmann::json,
pydantic's ``model_dump_json`` and Rust's serde_json all emit), :func:`sse` (``data: `` +
payload + ``\\n\\n``) and the :class:`EngineView` passed to handlers as ``ctx`` (model, seed,
plans, chunks, ids, clock, stats) — a Protocol, so this module imports nothing of the engine.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _encode_basestring
from typing import Any, ClassVar, Literal, Protocol

from ._journal import Journal
from ._plan import GenerationPlan
from ._profile import Profile
from ._slots import SlotPool, Stats

__all__ = [
    "CONTROL_PREFIX",
    "SLOTS",
    "Dialect",
    "EngineError",
    "EngineView",
    "Frame",
    "FrameKind",
    "Handler",
    "Headers",
    "MockRequest",
    "Rejected",
    "Reply",
    "Route",
    "StreamReply",
    "dumps",
    "fill",
    "json_reply",
    "jstr",
    "sse",
    "template",
]

Headers = list[tuple[bytes, bytes]]

#: Path prefix of the mock's own control plane (journal, config, reset); never an engine route.
CONTROL_PREFIX = "/__mock__/"


def dumps(obj: Any) -> bytes:
    """Compact JSON with raw UTF-8 (no ``\\uXXXX`` escapes for non-ASCII), as the engines emit."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def jstr(s: str) -> bytes:
    """A JSON string literal exactly as :func:`dumps` writes it (C-accelerated, raw UTF-8)."""
    return _encode_basestring(s).encode("utf-8")


#: Placeholders for :func:`template`: put ``SLOTS[i]`` where value *i* goes (any JSON type).
SLOTS = tuple(f"\x00llorch-slot-{i}\x00" for i in range(4))


def template(obj: Any) -> list[bytes]:
    """Pre-render ``obj`` once, split around the :data:`SLOTS` it contains (in order).

    The per-token path then only encodes what changes (:func:`fill`), instead of serialising
    the whole frame for every token — the key order is exactly the dict's, as with ``dumps``.
    """
    raw = dumps(obj)
    parts: list[bytes] = []
    for slot in SLOTS:
        marker = dumps(slot)
        i = raw.find(marker)
        if i == -1:
            break
        parts.append(raw[:i])
        raw = raw[i + len(marker) :]
    parts.append(raw)
    return parts


def fill(parts: list[bytes], *values: bytes) -> bytes:
    """Join template ``parts`` with the already-encoded JSON ``values``."""
    if len(values) == 1 and len(parts) == 2:  # the per-token common case
        return parts[0] + values[0] + parts[1]
    out = [parts[0]]
    for v, p in zip(values, parts[1:], strict=True):
        out.append(v)
        out.append(p)
    return b"".join(out)


def sse(payload: bytes, prefix: bytes = b"data: ") -> bytes:
    """One SSE event: ``data: <payload>\\n\\n``."""
    return prefix + payload + b"\n\n"


class FrameKind(enum.IntEnum):
    TOKEN = 0
    META = 1
    TERMINAL = 2
    COMMENT = 3


@dataclass(slots=True)
class Frame:
    """One SSE event (or body piece) and the generation step at which it is due."""

    data: bytes
    step: int
    kind: FrameKind = FrameKind.TOKEN


@dataclass(slots=True)
class Reply:
    """A complete (non-streamed) response. ``plan`` set = a generation held for its duration."""

    status: int
    body: bytes
    headers: Headers = field(default_factory=list)
    plan: GenerationPlan | None = None
    #: Explicit due time(s) instead of the profile's (see ``StreamReply.offsets``).
    offsets: list[float] | None = None


@dataclass(slots=True)
class StreamReply:
    """A streamed response: frames with due steps, rendered up front by the dialect."""

    status: int
    headers: Headers
    frames: list[Frame]
    plan: GenerationPlan | None = None
    error_frames: Callable[[str], list[bytes]] | None = None
    token_frame: Callable[[str], bytes] | None = None
    #: Explicit due times (seconds after the start, one per step) instead of the profile's
    #: latency model: a cassette replay (``mock_engines._cassette``) sends frames when the
    #: recorded engine did.
    offsets: list[float] | None = None


class Rejected(Exception):
    """Raised by handlers (and the parsing they call) for a request the engine refuses with a
    ready reply, where :meth:`Dialect.error_reply` cannot say it (TGI's plain-text 413/415,
    its axum JSON-extractor wording); sent as it is, like a returned reply."""

    def __init__(self, reply: Reply | StreamReply) -> None:
        super().__init__("rejected")
        self.reply = reply


class EngineError(Exception):
    """Raised by handlers for a request the engine rejects; rendered by ``dialect.error_reply``.

    ``etype`` and ``param`` are dialect vocabulary (e.g. ``invalid_request_error``,
    ``BadRequestError``); ``None`` lets the dialect pick its default for the status.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        etype: str | None = None,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.etype = etype
        self.param = param
        self.code = code


@dataclass(slots=True)
class MockRequest:
    """A parsed request as handlers see it. ``headers`` keys are lower-case."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    path_params: dict[str, str] = field(default_factory=dict)
    journal_id: int = 0

    def json(self, *, parse_status: int = 400) -> Any:
        """The body as JSON; :class:`EngineError` (``parse_status``) when it is not valid JSON."""
        try:
            return json.loads(self.body)
        except RecursionError:
            # CPython's decoder recurses; the engines answer deep nesting as unparsable
            raise EngineError(
                parse_status, "Invalid JSON body: nesting too deep", code="json_invalid"
            ) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise EngineError(
                parse_status, f"Invalid JSON body: {exc}", code="json_invalid"
            ) from None

    def json_object(self, *, parse_status: int = 400) -> dict[str, Any]:
        """The body as a JSON object (400 when it is JSON but not an object)."""
        data = self.json(parse_status=parse_status)
        if not isinstance(data, dict):
            raise EngineError(400, "Request body must be a JSON object", code="type_error")
        return data


class EngineView(Protocol):
    """What a dialect's handlers may read of the engine (``ctx``): the whole dialect interface
    to the engine state. :class:`mock_engines.EngineContext` implements it; a dialect never sees
    fault rules, routes or the app."""

    #: the served model name and the deployment's context length (tokens)
    model: str
    ctx_size: int
    #: the engine seed (requests without a seed use it)
    seed: int
    #: whether ``/metrics`` is served (llama.cpp needs ``--metrics``)
    metrics_enabled: bool
    profile: Profile
    slots: SlotPool
    stats: Stats
    journal: Journal
    #: wall-clock start (``time.time()``) for uptime and ``created`` fields
    started_at: float

    def plan(
        self,
        prompt: str,
        *,
        max_tokens: int | None,
        seed: int | None = None,
        stop: Sequence[str] = (),
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        ignore_eos: bool = False,
        min_tokens: int = 0,
    ) -> GenerationPlan: ...

    def chunks(self, plan: GenerationPlan) -> list[tuple[str, tuple[int, ...]]]: ...

    def created(self) -> int: ...

    def new_id(self, n_hex: int = 24) -> str: ...


Handler = Callable[[MockRequest, EngineView], "Reply | StreamReply"]


@dataclass(frozen=True, slots=True)
class Route:
    """``method`` + ``path`` (``{name}`` segments become ``req.path_params``) → handler.

    ``generation`` marks routes that generate (they take a slot and get engine-wide faults);
    ``public`` routes skip the API-key check (llama.cpp: /health, /v1/models …).
    """

    method: str
    path: str
    handler: Handler
    generation: bool = False
    public: bool = False


class Dialect:
    """Base class of the dialect objects. Subclasses override what their engine does differently."""

    name: ClassVar[str] = ""
    engine_version: str = "0"
    default_model: str = "mock-model"
    #: Context length (tokens) when the deployment sets none (``serve --ctx-size``).
    default_ctx_size: int = 4096
    loading_mode: Literal["http_503", "port_closed"] = "port_closed"
    unsupported_faults: frozenset[str] = frozenset()
    keepalive: bytes | None = None
    #: Content-Type of JSON bodies.
    json_content_type: bytes = b"application/json"

    def routes(self) -> Sequence[Route]:
        raise NotImplementedError

    def base_headers(self) -> Headers:
        """Headers every response of this engine carries (e.g. ``Server: llama.cpp``)."""
        return []

    def error_reply(
        self,
        status: int,
        message: str,
        *,
        etype: str | None = None,
        param: str | None = None,
        code: str | None = None,
    ) -> Reply:
        raise NotImplementedError

    def not_found_reply(self, req: MockRequest) -> Reply:
        return self.error_reply(404, "Not Found")

    def method_not_allowed_reply(self, req: MockRequest) -> Reply:
        return self.error_reply(405, "Method Not Allowed")

    def loading_reply(self, req: MockRequest) -> Reply:
        """Only used when ``loading_mode == "http_503"``."""
        return self.error_reply(503, "Loading model")

    def overload_reply(self, req: MockRequest, ctx: EngineView) -> Reply | StreamReply:
        return self.error_reply(503, "Service Unavailable")

    def rate_limit_reply(self, req: MockRequest, seconds: int) -> Reply:
        reply = self.error_reply(429, "Too Many Requests")
        reply.headers.append((b"retry-after", str(seconds).encode()))
        return reply

    def status_fault_reply(self, status: int, req: MockRequest) -> Reply:
        """The reply for an ``http.<status>`` fault: the engine's envelope with a plausible message."""
        messages = {
            400: "Bad Request",
            401: "Unauthorized",
            404: "Not Found",
            422: "Unprocessable Entity",
            500: "Internal Server Error",
            503: "Service Unavailable",
        }
        return self.error_reply(status, messages.get(status, "Error"))

    def check_auth(
        self, req: MockRequest, api_key: str | None, route: Route | None
    ) -> Reply | None:
        """None when the request may pass; else the engine's 401 reply."""
        return None

    def body_too_large_reply(self, req: MockRequest, limit: int) -> Reply:
        return self.error_reply(413, f"Request body too large (limit {limit} bytes)")

    def control_paths_ok(self) -> bool:
        return True


def json_reply(
    dialect: Dialect,
    status: int,
    obj: Any,
    *,
    headers: Headers | None = None,
    plan: GenerationPlan | None = None,
    indent: int | None = None,
) -> Reply:
    """A JSON body with the dialect's JSON content type."""
    if indent is None:
        body = dumps(obj)
    else:
        body = json.dumps(obj, ensure_ascii=False, indent=indent).encode("utf-8")
    hs: Headers = [(b"content-type", dialect.json_content_type)]
    if headers:
        hs.extend(headers)
    return Reply(status, body, hs, plan)
