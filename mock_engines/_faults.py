"""Named faults as objects: one :class:`Fault` per catalogue ID holds its spec and its behaviour.

A fault is one object in one place, like a starlette ``Route`` or ``Response``: :class:`Fault` is a
small base class with one method per *stage* of a request, each a no-op by default; a fault
overrides the stages it acts at. The engine core (``_app``), the fault proxy (``_proxy``), the
in-process ``MockAdapter`` (through :meth:`Fault.outcome`) and the harness steps read these
objects — nothing outside this module compares fault IDs.

Stages, in request order (:class:`Stage`)::

    STATE       engine-wide state while selected: closed port, loading (``state_until``)
    CONNECTION  a new TCP connection (``on_connection``: accept, then close)
    ANSWER      replaces the engine's answer before the handler runs (``answer``: http.*, overload)
    HEADERS     response headers and when they go out (``headers``, ``header_delay_s``)
    FRAMES      the rendered frames of a stream / the complete body (``frames``, ``body``)
    WRITES      how the bytes are cut into writes, delayed or truncated (``writes``)

and, outside the engine, :meth:`Fault.outcome`: the *event-level outcome* a correct HTTP adapter
produces for the fault (what ``MockAdapter`` plays without sockets), and :meth:`Fault.live`: the
same fault applied incrementally by the fault proxy to a live engine's response as it streams
(a :class:`Live` object per response, driving the proxy's :class:`Relay`).

Adding a fault = one subclass (or one more instance of an existing class) listed in
``_CATALOGUE``, plus its test. For example a gateway's HTML 502 page in place of the engine
(``tests/mock_engines/test_fault_objects.py`` runs exactly this on the engine, the proxy and
``MockAdapter``)::

    class GatewayPage(Fault):
        stage = Stage.ANSWER
        summary = "error WORKER_RESET (retriable)"

        async def answer(self, rule, to):
            await to.reply(Reply(502, PAGE, [(b"content-type", b"text/html")]), rule)
            return True

        def outcome(self, rule):
            return Outcome(self.summary, error_for_status(502, "upstream 502: gateway page"))

    # in _CATALOGUE:
    GatewayPage(FaultSpec("gateway.html_502", "a gateway's HTML 502 page, not the engine's")),

Selection: engine-wide (``faults=`` / ``--fault`` / ``POST /__mock__/config``) or per request
(header ``X-Mock-Fault``). Two selection parameters work on any fault: ``first=N`` (only the
first N matching requests get it, then the engine behaves normally) and ``rate=P`` (each
matching request gets it with probability P from a seeded RNG). Engine-wide rules apply to
generation requests, except ``engine.loading``, which applies to every route, and the
connection-level ``conn.*`` faults. At most one fault applies to a request: the header wins,
then the engine rules in order. The dialects declare which faults they cannot render
(``Dialect.unsupported_faults``), so ``applies_to`` is computed from the registry.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import json
import math
import random
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from llorch_conformance.adapters.api import (
    ConfigError,
    UpstreamCondition,
    WorkerError,
    error_for_condition,
    error_for_status,
)

from ._asgi import Receive, Send
from ._segments import Seg, corrupt, mid_char_cuts, split_segments, truncate
from ._wire import Frame, FrameKind, MockRequest, Reply, StreamReply, dumps

if TYPE_CHECKING:
    from ._journal import JournalEntry
    from ._wire import Dialect, Route

__all__ = [
    "FAULTS",
    "FAULT_HEADER",
    "FAULT_IDS",
    "NOT_APPLIED",
    "Fault",
    "FaultHost",
    "FaultParam",
    "FaultRule",
    "FaultSpec",
    "Live",
    "LiveEvent",
    "Outcome",
    "Relay",
    "Responder",
    "RuleState",
    "Stage",
    "Stall",
    "fault_outcome",
    "fault_spec",
    "parse_faults",
]

FAULT_HEADER = "x-mock-fault"

#: Prefix of a journal ``fault_note`` saying the selected fault could not be applied to this
#: response (the engine's own output gave it no room: too few tokens, no JSON frame, ...). A
#: scenario that needed the fault cannot judge the adapter then.
NOT_APPLIED = "not applied: "


@dataclass(frozen=True, slots=True)
class FaultParam:
    name: str
    default: int | float | str | None
    help: str


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One named fault: ``id``, ``description``, ``params`` (with defaults), ``applies_to``."""

    id: str
    description: str
    params: tuple[FaultParam, ...] = ()
    applies_to: tuple[str, ...] = ()
    engine_level_only: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "description": self.description,
            "params": {p.name: p.default for p in self.params},
            "applies_to": list(self.applies_to),
            "engine_level_only": self.engine_level_only,
        }


class Stage(enum.StrEnum):
    """Where in a request a fault acts (see the module docstring)."""

    STATE = "state"
    CONNECTION = "connection"
    ANSWER = "answer"
    HEADERS = "headers"
    FRAMES = "frames"
    WRITES = "writes"


@dataclass(frozen=True, slots=True)
class Stall:
    """A silence in the event stream: ``where`` it falls, ``delay_s`` long.

    ``"headers"``: before ``started`` (the response head is late); ``"first_byte"``: before
    ``started`` too (head sent, body silent); ``"after_tokens"``: after ``after`` tokens.
    """

    where: Literal["headers", "first_byte", "after_tokens"]
    delay_s: float
    after: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """The event-level outcome of a fault: what a correct HTTP adapter makes of it.

    ``MockAdapter`` plays it without sockets: ``error`` (before any stream byte; after the same
    pre-stream retries an HTTP adapter makes when ``retried``), else ``started``, an optional
    ``stall``, then the tokens and terminal error that :meth:`end` gives. ``ready`` / ``live``:
    what the adapter's health shows while the rule is still active engine-wide.
    """

    summary: str
    error: WorkerError | None = None
    retried: bool = False
    stall: Stall | None = None
    ready: bool = True
    live: bool = True
    _end: Callable[[Sequence[str]], tuple[int, WorkerError | None]] | None = None

    def end(self, tokens: Sequence[str]) -> tuple[int, WorkerError | None]:
        """How many of the plan's ``tokens`` are delivered, and the error after them (None:
        the normal end of the stream)."""
        if self._end is None:
            return len(tokens), None
        return self._end(tokens)


class FaultHost(Protocol):
    """What an ``answer``-stage fault needs from the app serving the request (the mock engine or
    the fault proxy)."""

    @property
    def dialect(self) -> Dialect: ...

    def overload_reply(self, req: MockRequest) -> Reply | StreamReply: ...

    async def send_reply(
        self, send: Send, entry: JournalEntry, reply: Reply, rule: FaultRule | None
    ) -> None: ...

    async def send_any(
        self,
        send: Send,
        receive: Receive,
        entry: JournalEntry,
        reply: Reply | StreamReply,
        rule: FaultRule | None,
        transport: Any,
    ) -> bool: ...

    async def abort_connection(self, transport: Any, receive: Receive) -> None: ...


@dataclass(frozen=True, slots=True)
class Responder:
    """The request an ANSWER-stage fault answers in place of the engine, with the ways to answer
    it (through the mock engine or the fault proxy that serves it)."""

    host: FaultHost
    req: MockRequest
    entry: JournalEntry
    receive: Receive
    send: Send
    transport: Any

    @property
    def dialect(self) -> Dialect:
        return self.host.dialect

    async def reply(self, reply: Reply, rule: FaultRule | None) -> None:
        """A complete reply (``rule``'s header stage applies)."""
        await self.host.send_reply(self.send, self.entry, reply, rule)

    async def reply_timed(self, reply: Reply | StreamReply) -> None:
        """A reply sent the way generations are (held for its due time, written as frames)."""
        await self.host.send_any(self.send, self.receive, self.entry, reply, None, self.transport)

    async def abort(self) -> None:
        """Close the connection without a response."""
        self.entry.aborted = True
        await self.host.abort_connection(self.transport, self.receive)


def _reset(message: str) -> WorkerError:
    return error_for_condition(UpstreamCondition.RESET, message)


def _tokens_then(summary: str, rule: FaultRule, error: Callable[[int], WorkerError]) -> Outcome:
    """``after_events`` tokens (or all, if fewer), then ``error(k)``."""

    def end(tokens: Sequence[str]) -> tuple[int, WorkerError | None]:
        k = min(len(tokens), rule.int_param("after_events"))
        return k, error(k)

    return Outcome(summary, _end=end)


def _after_events_cut(rule: FaultRule, frames: Sequence[Frame]) -> tuple[int, str | None]:
    """Byte position after the ``after_events``-th event (comments do not count) and a note when
    the stream has fewer events (the fault then acts at its end)."""
    k = rule.int_param("after_events")
    if k <= 0:
        return 0, None
    pos = 0
    seen = 0
    for f in frames:
        pos += len(f.data)
        if f.kind != FrameKind.COMMENT:
            seen += 1
            if seen == k:
                return pos, None
    return pos, f"stream has fewer than {k} events; fault at its end"


#: What the WRITES stage returns: the writes, whether to close the connection after them, a note.
Writes = tuple[list[Seg], bool, str | None]
#: What the FRAMES stage returns: the frames, and a note when the fault could not fully apply.
Frames = tuple[list[Frame], str | None]


class Fault:
    """One named fault. Override the stage methods the fault acts at; the defaults do nothing.

    ``spec`` is the catalogue entry (ID, description, parameters); ``stage`` the stage it acts
    at; ``summary`` its event-level outcome in one line (``MockAdapter``'s table).
    """

    stage: ClassVar[Stage] = Stage.WRITES
    summary: ClassVar[str] = "normal stream"
    #: Changes the engine's state (loading, closed port): a harness gives it a private engine.
    engine_state: ClassVar[bool] = False

    def __init__(self, spec: FaultSpec) -> None:
        self.spec = spec

    @property
    def id(self) -> str:
        return self.spec.id

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}>"

    # -- selection -------------------------------------------------------------------------
    def check(self, rule: FaultRule, dialect: Dialect, *, per_request: bool) -> None:
        """ConfigError when ``rule`` cannot be selected this way on ``dialect``."""
        if self.id in dialect.unsupported_faults:
            raise ConfigError(f"fault {self.id} does not apply to dialect {dialect.name}")

    def selects(self, rule: FaultRule, route: Route | None, dialect: Dialect) -> bool:
        """Whether an engine-wide ``rule`` competes for this request (then its counters draw)."""
        return route is not None and route.generation

    # -- STATE -----------------------------------------------------------------------------
    def state_until(
        self, rule: FaultRule, dialect: Dialect, now: float
    ) -> tuple[float | None, float | None]:
        """Engine-wide: (port closed until, loading until), monotonic; None = no such state."""
        return None, None

    def forces_loading(self, dialect: Dialect) -> bool:
        """The selected rule makes this request see the engine loading."""
        return False

    # -- CONNECTION --------------------------------------------------------------------------
    on_connection: ClassVar[bool] = False
    """Engine-wide rules of this fault are drawn once per new TCP connection (and close it)."""

    # -- ANSWER ------------------------------------------------------------------------------
    async def answer(self, rule: FaultRule, to: Responder) -> bool:
        """Answer the request in place of the engine; True when it did."""
        return False

    # -- HEADERS -----------------------------------------------------------------------------
    def headers(self, rule: FaultRule, headers: list[tuple[bytes, bytes]]) -> None:
        """Change the response headers of a successful answer in place."""

    def header_delay_s(self, rule: FaultRule) -> float:
        """Seconds to hold the response head back."""
        return 0.0

    # -- FRAMES ------------------------------------------------------------------------------
    def frames(
        self, rule: FaultRule, frames: list[Frame], reply: StreamReply, d: Dialect
    ) -> Frames:
        """The stream's frames as sent, and a note when the fault could not fully apply."""
        return frames, None

    def body(self, rule: FaultRule, body: bytes) -> tuple[bytes, str | None]:
        """A complete (non-streamed) body as sent, and a note when the fault did not apply."""
        return body, None

    # -- WRITES ------------------------------------------------------------------------------
    def writes(self, rule: FaultRule, segs: list[Seg], frames: list[Frame]) -> Writes:
        """The writes as sent, whether the connection is closed after them, and a note."""
        return segs, False, None

    # -- outcome (MockAdapter) -------------------------------------------------------------
    def outcome(self, rule: FaultRule) -> Outcome:
        """The event-level outcome a correct HTTP adapter produces for ``rule``."""
        return Outcome(self.summary)

    # -- live (the fault proxy) ------------------------------------------------------------
    def live(self, rule: FaultRule) -> Live:
        """The fault on one live engine response streaming through the fault proxy: the same
        frames/writes stages applied incrementally, as the bytes arrive (:class:`Live`)."""
        return Live(rule)


# ---------------------------------------------------------------------------------------------
# The faults
# ---------------------------------------------------------------------------------------------

_STATUS_OUTCOME = {
    400: "error INVALID_PARAMS (not retriable)",
    401: "error INTERNAL (not retriable)",
    404: "error POOL_UNAVAILABLE (not retriable)",
    422: "error INVALID_PARAMS (not retriable)",
    500: "error WORKER_RESET (retriable)",
    503: "error POOL_UNAVAILABLE (retriable) after pre-stream retries",
}
_PRE_STREAM = "error POOL_UNAVAILABLE (retriable) after pre-stream retries"


class HttpStatus(Fault):
    """``http.<status>``: the engine's own error envelope, before any stream byte."""

    stage = Stage.ANSWER

    def __init__(self, status: int) -> None:
        super().__init__(
            FaultSpec(
                f"http.{status}",
                f"HTTP {status} with the engine's own error envelope, before any stream byte",
            )
        )
        self.status = status

    async def answer(self, rule: FaultRule, to: Responder) -> bool:
        await to.reply(to.dialect.status_fault_reply(self.status, to.req), rule)
        return True

    def outcome(self, rule: FaultRule) -> Outcome:
        err = error_for_status(self.status, f"upstream {self.status}: mock fault {self.id}")
        return Outcome(_STATUS_OUTCOME[self.status], err, retried=self.status == 503)


class RateLimited(Fault):
    stage = Stage.ANSWER

    async def answer(self, rule: FaultRule, to: Responder) -> bool:
        await to.reply(to.dialect.rate_limit_reply(to.req, rule.int_param("seconds")), rule)
        return True

    def outcome(self, rule: FaultRule) -> Outcome:
        seconds = rule.param("seconds")
        ms = int(float(seconds) * 1000) if isinstance(seconds, int | float) else 1000
        err = error_for_status(429, "upstream 429: mock rate limit", retry_after_ms=ms)
        return Outcome(
            "error POOL_UNAVAILABLE (retriable, retry_after_ms) after retries", err, retried=True
        )


class Loading(Fault):
    """``engine.loading``: llama.cpp answers 503 on every route; the others keep the port closed."""

    stage = Stage.STATE
    engine_state = True

    def check(self, rule: FaultRule, dialect: Dialect, *, per_request: bool) -> None:
        super().check(rule, dialect, per_request=per_request)
        if dialect.loading_mode != "port_closed":
            return
        if per_request:
            raise ConfigError(
                f"fault {self.id} on {dialect.name} is an engine state "
                "(port closed); select it engine-wide, not per request"
            )
        if rule.first is not None or rule.rate is not None:
            raise ConfigError(
                f"engine.loading on {dialect.name} closes the port; "
                "first=/rate= cannot select requests there (use duration_ms)"
            )

    def selects(self, rule: FaultRule, route: Route | None, dialect: Dialect) -> bool:
        return dialect.loading_mode == "http_503" and (
            rule.first is not None or rule.rate is not None
        )

    def state_until(
        self, rule: FaultRule, dialect: Dialect, now: float
    ) -> tuple[float | None, float | None]:
        closes = dialect.loading_mode == "port_closed"
        if not closes and (rule.first is not None or rule.rate is not None):
            return None, None  # selected per request instead
        until = _until(rule, now)
        return (until, None) if closes else (None, until)

    def forces_loading(self, dialect: Dialect) -> bool:
        return dialect.loading_mode == "http_503"

    def outcome(self, rule: FaultRule) -> Outcome:
        return Outcome(
            _PRE_STREAM, error_for_status(503, "upstream 503: mock loading"), True, ready=False
        )


def _until(rule: FaultRule, now: float) -> float:
    dur = rule.int_param("duration_ms")
    return now + dur / 1000.0 if dur > 0 else math.inf


class Overload(Fault):
    stage = Stage.ANSWER

    async def answer(self, rule: FaultRule, to: Responder) -> bool:
        await to.reply_timed(to.host.overload_reply(to.req))
        return True

    def outcome(self, rule: FaultRule) -> Outcome:
        return Outcome(_PRE_STREAM, error_for_status(503, "upstream 503: mock overload"), True)


class PortClosed(Fault):
    stage = Stage.STATE
    engine_state = True

    def check(self, rule: FaultRule, dialect: Dialect, *, per_request: bool) -> None:
        super().check(rule, dialect, per_request=per_request)
        if per_request:
            raise ConfigError(
                f"fault {self.id} on {dialect.name} is an engine state "
                "(port closed); select it engine-wide, not per request"
            )

    def selects(self, rule: FaultRule, route: Route | None, dialect: Dialect) -> bool:
        return False

    def state_until(
        self, rule: FaultRule, dialect: Dialect, now: float
    ) -> tuple[float | None, float | None]:
        return _until(rule, now), None

    def outcome(self, rule: FaultRule) -> Outcome:
        err = error_for_condition(
            UpstreamCondition.CONNECT_FAILED, "connect: connection refused (mock)"
        )
        return Outcome(_PRE_STREAM, err, True, ready=False, live=False)


class AcceptThenClose(Fault):
    stage = Stage.CONNECTION
    on_connection = True

    def selects(self, rule: FaultRule, route: Route | None, dialect: Dialect) -> bool:
        return False  # engine-wide: drawn per connection, not per request

    async def answer(self, rule: FaultRule, to: Responder) -> bool:
        await to.abort()
        return True

    def outcome(self, rule: FaultRule) -> Outcome:
        err = error_for_condition(
            UpstreamCondition.RESET, "before first byte: server closed without a response (mock)"
        )
        return Outcome("error WORKER_RESET (retriable)", err)


class SlowHeaders(Fault):
    stage = Stage.HEADERS
    summary = "delayed start; DECODE_TIMEOUT past the first-byte timeout"

    def header_delay_s(self, rule: FaultRule) -> float:
        return rule.int_param("delay_ms") / 1000.0

    def outcome(self, rule: FaultRule) -> Outcome:
        return Outcome(self.summary, stall=Stall("headers", self.header_delay_s(rule)))


class WrongContentType(Fault):
    stage = Stage.HEADERS

    def headers(self, rule: FaultRule, headers: list[tuple[bytes, bytes]]) -> None:
        ct = str(rule.param("content_type") or "text/plain").encode("latin-1")
        headers[:] = [(k, v) for k, v in headers if k.lower() != b"content-type"]
        headers.append((b"content-type", ct))

    def outcome(self, rule: FaultRule) -> Outcome:
        ctype = rule.param("content_type") or "text/plain"
        err = error_for_condition(
            UpstreamCondition.PROTOCOL, f"stream answered with Content-Type {ctype!r}"
        )
        return Outcome("error INTERNAL (not retriable)", err)


class StallBeforeFirstByte(Fault):
    summary = "delayed first token; DECODE_TIMEOUT past the first-byte timeout"

    def live(self, rule: FaultRule) -> Live:
        return _LiveStallFirstByte(rule)

    def writes(self, rule: FaultRule, segs: list[Seg], frames: list[Frame]) -> Writes:
        d = rule.int_param("delay_ms") / 1000.0
        return [Seg(s.due + d, s.data, s.done) for s in segs], False, None

    def outcome(self, rule: FaultRule) -> Outcome:
        delay = rule.int_param("delay_ms") / 1000.0
        return Outcome(self.summary, stall=Stall("first_byte", delay))


class StallMidstream(Fault):
    summary = "pause mid-stream; DECODE_TIMEOUT past the inter-chunk timeout"

    def live(self, rule: FaultRule) -> Live:
        return _LiveStall(rule)

    def writes(self, rule: FaultRule, segs: list[Seg], frames: list[Frame]) -> Writes:
        cut_at, note = _after_events_cut(rule, frames)
        d = rule.int_param("delay_ms") / 1000.0
        out: list[Seg] = []
        acc = 0
        for s in split_segments(segs, lambda b: [cut_at]):
            out.append(Seg(s.due + (d if acc >= cut_at else 0.0), s.data, s.done))
            acc += len(s.data)
        return out, False, note

    def outcome(self, rule: FaultRule) -> Outcome:
        delay = rule.int_param("delay_ms") / 1000.0
        return Outcome(
            self.summary, stall=Stall("after_tokens", delay, rule.int_param("after_events"))
        )


class Disconnect(Fault):
    summary = "tokens then error WORKER_RESET (retriable)"

    def live(self, rule: FaultRule) -> Live:
        return _LiveDisconnect(rule)

    def writes(self, rule: FaultRule, segs: list[Seg], frames: list[Frame]) -> Writes:
        cut_at, note = _after_events_cut(rule, frames)
        return truncate(segs, cut_at), True, note

    def outcome(self, rule: FaultRule) -> Outcome:
        return _tokens_then(
            self.summary,
            rule,
            lambda k: _reset(f"stream ended before its terminal frame after {k} tokens"),
        )


class DisconnectBytes(Fault):
    summary = "tokens then error WORKER_RESET (retriable)"

    def live(self, rule: FaultRule) -> Live:
        return _LiveDisconnectBytes(rule)

    def writes(self, rule: FaultRule, segs: list[Seg], frames: list[Frame]) -> Writes:
        return truncate(segs, max(0, rule.int_param("after_bytes"))), True, None

    def outcome(self, rule: FaultRule) -> Outcome:
        def end(tokens: Sequence[str]) -> tuple[int, WorkerError | None]:
            budget = rule.int_param("after_bytes")
            used = k = 0
            for t in tokens:
                size = len(t.encode("utf-8"))
                if used + size > budget:
                    break
                used += size
                k += 1
            return k, _reset(f"stream ended before its terminal frame after {k} tokens")

        return Outcome(self.summary, _end=end)


class CutUtf8(Fault):
    summary = "tokens then error WORKER_RESET (retriable)"

    def live(self, rule: FaultRule) -> Live:
        return _LiveCutUtf8(rule)

    def writes(self, rule: FaultRule, segs: list[Seg], frames: list[Frame]) -> Writes:
        body = b"".join(s.data for s in segs)
        for i, b in enumerate(body):
            if b >= 0xC0:
                return truncate(segs, i + 1), True, None
        return (
            truncate(segs, len(body) // 2),
            True,
            "body has no multi-byte character; cut in the middle instead",
        )

    def outcome(self, rule: FaultRule) -> Outcome:
        def end(tokens: Sequence[str]) -> tuple[int, WorkerError | None]:
            n = len(tokens)
            k = next((i for i, t in enumerate(tokens) if any(ord(c) > 0x7F for c in t)), n)
            return k, _reset(f"stream ended inside a UTF-8 character after {k} tokens")

        return Outcome(self.summary, _end=end)


class SplitUtf8(Fault):
    def live(self, rule: FaultRule) -> Live:
        return _LiveSplit(rule, mid_char_cuts)

    def writes(self, rule: FaultRule, segs: list[Seg], frames: list[Frame]) -> Writes:
        note = None
        if not any(b >= 0xC0 for s in segs for b in s.data):
            note = "body has no multi-byte character; writes left unsplit"
        return split_segments(segs, mid_char_cuts), False, note


class SplitEveryByte(Fault):
    def live(self, rule: FaultRule) -> Live:
        return _LiveSplit(rule, lambda b: list(range(1, len(b))))

    def writes(self, rule: FaultRule, segs: list[Seg], frames: list[Frame]) -> Writes:
        return split_segments(segs, lambda b: list(range(1, len(b)))), False, None


class FrameFault(Fault):
    """A fault on the rendered frames of a stream; a complete body is sent normally."""

    stage = Stage.FRAMES
    summary = "tokens then error INTERNAL (not retriable)"
    #: the note for a complete (non-streamed) body
    body_note: ClassVar[str] = "applies to streamed responses only; sent normally"

    def body(self, rule: FaultRule, body: bytes) -> tuple[bytes, str | None]:
        return body, self.body_note

    def outcome(self, rule: FaultRule) -> Outcome:
        """Protocol violation after ``after_events`` tokens (the default of frame faults)."""
        return _tokens_then(
            self.summary,
            rule,
            lambda k: error_for_condition(
                UpstreamCondition.PROTOCOL, f"protocol violation ({self.id}) after {k} tokens"
            ),
        )


class MalformedJson(FrameFault):
    def live(self, rule: FaultRule) -> Live:
        return _LiveMalformed(rule)

    def frames(
        self, rule: FaultRule, frames: list[Frame], reply: StreamReply, d: Dialect
    ) -> Frames:
        target = rule.int_param("after_events")
        events = [i for i, f in enumerate(frames) if f.kind != FrameKind.COMMENT]
        for i in events[target:] + events[:target]:
            bad = corrupt(frames[i].data)
            if bad is not None:
                out = list(frames)
                out[i] = Frame(bad, frames[i].step, frames[i].kind)
                return out, None
        return frames, "no JSON frame to corrupt"

    def body(self, rule: FaultRule, body: bytes) -> tuple[bytes, str | None]:
        bad = corrupt(body)
        return (body, "no JSON object to corrupt") if bad is None else (bad, None)


class MissingTerminal(FrameFault):
    summary = "all tokens then error WORKER_RESET (retriable)"
    body_note = "non-streamed response: no terminal frame to drop"

    def live(self, rule: FaultRule) -> Live:
        return _LiveMissingTerminal(rule)

    def frames(
        self, rule: FaultRule, frames: list[Frame], reply: StreamReply, d: Dialect
    ) -> Frames:
        return [f for f in frames if f.kind != FrameKind.TERMINAL], None

    def outcome(self, rule: FaultRule) -> Outcome:
        def end(tokens: Sequence[str]) -> tuple[int, WorkerError | None]:
            n = len(tokens)
            return n, _reset(f"stream ended before its terminal frame after {n} tokens")

        return Outcome(self.summary, _end=end)


class DuplicateIndex(FrameFault):
    def live(self, rule: FaultRule) -> Live:
        return _LiveDuplicate(rule)

    def frames(
        self, rule: FaultRule, frames: list[Frame], reply: StreamReply, d: Dialect
    ) -> Frames:
        toks = [i for i, f in enumerate(frames) if f.kind == FrameKind.TOKEN]
        if not toks:
            return frames, "no token frame to duplicate"
        i = toks[min(rule.int_param("after_events"), len(toks) - 1)]
        out = list(frames)
        out.insert(i + 1, Frame(frames[i].data, frames[i].step, FrameKind.TOKEN))
        return out, None


class OutOfOrderIndex(FrameFault):
    def live(self, rule: FaultRule) -> Live:
        return _LiveOutOfOrder(rule)

    def frames(
        self, rule: FaultRule, frames: list[Frame], reply: StreamReply, d: Dialect
    ) -> Frames:
        toks = [i for i, f in enumerate(frames) if f.kind == FrameKind.TOKEN]
        if len(toks) < 2:
            return frames, "fewer than two token frames; nothing to reorder"
        j = min(rule.int_param("after_events"), len(toks) - 2)
        a, b = toks[j], toks[j + 1]
        out = list(frames)
        out[a] = Frame(frames[b].data, frames[a].step, FrameKind.TOKEN)
        out[b] = Frame(frames[a].data, frames[b].step, FrameKind.TOKEN)
        return out, None


class Oversized(FrameFault):
    def live(self, rule: FaultRule) -> Live:
        return _LiveOversized(rule)

    def frames(
        self, rule: FaultRule, frames: list[Frame], reply: StreamReply, d: Dialect
    ) -> Frames:
        if reply.token_frame is None:
            return frames, "this response has no token frame shape"
        size = max(1, rule.int_param("size"))
        base = len(reply.token_frame(""))
        big = reply.token_frame("x" * max(0, size - base))
        k = rule.int_param("after_events")
        toks = [i for i, f in enumerate(frames) if f.kind == FrameKind.TOKEN]
        out = list(frames)
        if toks:
            i = toks[min(k, len(toks) - 1)]
            out[i] = Frame(big, frames[i].step, FrameKind.TOKEN)
        else:
            out.insert(0, Frame(big, 0, FrameKind.TOKEN))
        return out, None


class ErrorEvent(FrameFault):
    summary = "tokens then error WORKER_RESET (retriable)"

    def live(self, rule: FaultRule) -> Live:
        return _LiveErrorEvent(rule)

    def frames(
        self, rule: FaultRule, frames: list[Frame], reply: StreamReply, d: Dialect
    ) -> Frames:
        if reply.error_frames is None:
            return frames, "this response has no in-stream error shape"
        k = rule.int_param("after_events")
        out = []
        seen = 0
        step = 0
        for f in frames:
            if f.kind != FrameKind.COMMENT:
                if seen >= k:
                    break
                seen += 1
            out.append(f)
            step = f.step
        out.extend(Frame(d, step, FrameKind.META) for d in reply.error_frames(_message(rule)))
        return out, None

    def outcome(self, rule: FaultRule) -> Outcome:
        message = f"engine error in stream: {_message(rule)}"[:200]
        return _tokens_then(
            self.summary,
            rule,
            lambda k: error_for_condition(UpstreamCondition.SERVER_ERROR, message),
        )


def _message(rule: FaultRule) -> str:
    return str(rule.param("message") or "mock in-stream failure")


class KeepaliveFlood(FrameFault):
    summary = "normal stream"

    def live(self, rule: FaultRule) -> Live:
        return _LiveKeepalive(rule)

    def frames(
        self, rule: FaultRule, frames: list[Frame], reply: StreamReply, d: Dialect
    ) -> Frames:
        ka = d.keepalive
        if ka is None:
            return frames, "this dialect sends no keep-alive comments"
        # Half go out with the headers, before any event; the rest are spread evenly in front
        # of the events (each comment is due with the event that follows it).
        count = max(0, rule.int_param("count"))
        before = count // 2
        rest = count - before
        out = [Frame(ka, -1, FrameKind.COMMENT) for _ in range(before)]
        if not frames:
            out.extend(Frame(ka, -1, FrameKind.COMMENT) for _ in range(rest))
            return out, None
        per, extra = divmod(rest, len(frames))
        for idx, f in enumerate(frames):
            c = per + (1 if idx < extra else 0)
            out.extend(Frame(ka, f.step, FrameKind.COMMENT) for _ in range(c))
            out.append(f)
        return out, None

    def outcome(self, rule: FaultRule) -> Outcome:
        return Outcome(self.summary)


# ---------------------------------------------------------------------------------------------
# Live: a fault applied by the fault proxy to a live engine's answer as it streams
# ---------------------------------------------------------------------------------------------


class Relay(Protocol):
    """What a :class:`Live` fault drives in the fault proxy's relay of one engine response.

    ``write`` sends bytes to the adapter and journals ``frame`` (False once the stream was cut);
    ``raw`` sends bytes as they are; ``cut`` closes the connection mid-response; ``error_event``
    sends the dialect's in-stream error and ends the response (True when the route has no such
    shape). ``notes`` end up in the journal entry's ``fault_note``."""

    notes: list[str]
    events_sent: int
    text_sent: int
    bytes_sent: int
    sse: bool

    @property
    def keepalive(self) -> bytes: ...

    async def write(self, data: bytes, frame: bytes | None) -> bool: ...

    async def raw(self, data: bytes) -> None: ...

    async def cut(self) -> None: ...

    async def error_event(self, message: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One SSE event of the engine as the relay classified it; ``index``: its position among
    the token frames (-1 when it carries none)."""

    data: bytes
    kind: FrameKind
    text: str | None
    reason: str | None
    path: list[str | int] | None
    index: int

    @property
    def finishing(self) -> bool:
        """The engine's last frame (terminal, or carrying the stop reason)."""
        return self.kind == FrameKind.TERMINAL or self.reason is not None

    @property
    def counts(self) -> bool:
        return self.kind != FrameKind.COMMENT


class Live:
    """A fault on a live engine's response, one object per response (it holds the fault's state
    while the response streams through the fault proxy). Made by :meth:`Fault.live`; the base
    class passes everything through unchanged."""

    def __init__(self, rule: FaultRule) -> None:
        self.rule = rule

    def whole_body(self, observed: bool) -> bool:
        """Read a non-SSE body whole before sending it (to observe or rewrite it)."""
        return observed

    async def after_head(self, relay: Relay) -> None:
        """After the response head of a successful answer went out."""

    async def write(self, relay: Relay, data: bytes) -> bool | None:
        """Send ``data`` bent by the fault: None = not handled (sent as is), True = sent,
        False = the fault cut the stream."""
        return None

    async def before_body(self, relay: Relay) -> None:
        """Before a complete (non-SSE) body is sent."""

    async def after_body(self, relay: Relay) -> None:
        """After a complete (non-SSE) body was sent."""

    async def event(self, relay: Relay, ev: LiveEvent) -> bytes | None:
        """The bytes to send for one engine event (None: nothing now)."""
        return ev.data

    async def end(self, relay: Relay) -> None:
        """The engine's stream ended: what the fault still owes."""


class _LiveAfterText(Live):
    """``midstream.disconnect`` / ``stall.midstream`` once ``after_events`` token frames went out.

    Counted in frames that delivered text: a live engine's empty deltas (vLLM's first chunk,
    held-back partial UTF-8) are no tokens for the adapter, so they must not move the fault
    earlier than the scenario's "after k tokens" planned. An engine that finishes sooner gets
    the fault before its finishing frame, so it still lands mid-stream."""

    fired = False

    async def fire(self, relay: Relay) -> None:
        raise NotImplementedError

    async def event(self, relay: Relay, ev: LiveEvent) -> bytes | None:
        if ev.counts and not self.fired:
            k = self.rule.int_param("after_events")
            due = relay.text_sent >= k
            if not due and ev.finishing:
                due = True
                relay.notes.append(
                    f"the engine finished after {relay.text_sent} of {k} token frames; "
                    "fault before its finishing frame"
                )
            if due:
                self.fired = True
                await self.fire(relay)
        return ev.data

    async def end(self, relay: Relay) -> None:
        if not self.fired:
            k = self.rule.int_param("after_events")
            relay.notes.append(f"stream has fewer than {k} events; fault at its end")
            self.fired = True
            await self.fire(relay)


class _LiveDisconnect(_LiveAfterText):
    async def fire(self, relay: Relay) -> None:
        await relay.cut()

    async def after_body(self, relay: Relay) -> None:
        relay.notes.append("non-streamed response: closed after the body")
        await relay.cut()


class _LiveStall(_LiveAfterText):
    async def fire(self, relay: Relay) -> None:
        await asyncio.sleep(self.rule.int_param("delay_ms") / 1000.0)

    async def before_body(self, relay: Relay) -> None:
        relay.notes.append("non-streamed response: the stall comes before the body")
        await self.fire(relay)


class _LiveStallFirstByte(Live):
    async def after_head(self, relay: Relay) -> None:
        await asyncio.sleep(self.rule.int_param("delay_ms") / 1000.0)


class _LiveDisconnectBytes(Live):
    def whole_body(self, observed: bool) -> bool:
        return False  # the byte count is of the engine's own bytes

    async def write(self, relay: Relay, data: bytes) -> bool | None:
        room = max(0, self.rule.int_param("after_bytes")) - relay.bytes_sent
        if len(data) < room:
            return None
        if room > 0:
            await relay.raw(data[:room])
        await relay.cut()
        return False


class _LiveCutUtf8(Live):
    """Cut inside the first multi-byte character; one event of lag, so a stream without any
    can still be cut inside its last frame."""

    lag: bytes | None = None

    async def write(self, relay: Relay, data: bytes) -> bool | None:
        for i, b in enumerate(data):
            if b >= 0xC0:
                await relay.raw(data[: i + 1])
                await relay.cut()
                return False
        return None

    async def event(self, relay: Relay, ev: LiveEvent) -> bytes | None:
        lag, self.lag = self.lag, ev.data
        return lag

    async def end(self, relay: Relay) -> None:
        lag, self.lag = self.lag, None
        relay.notes.append("body has no multi-byte character; cut in the middle of the last frame")
        if lag:
            await relay.raw(lag[: max(1, len(lag) // 2)])
        await relay.cut()


class _LiveSplit(Live):
    def __init__(self, rule: FaultRule, cuts: Callable[[bytes], list[int]]) -> None:
        super().__init__(rule)
        self.cuts = cuts

    async def write(self, relay: Relay, data: bytes) -> bool | None:
        start = 0
        for c in self.cuts(data):
            await relay.raw(data[start:c])
            start = c
        if start < len(data):
            await relay.raw(data[start:])
        return True


class _LiveKeepalive(Live):
    """Half the comments with the head, the rest spread before the events (16 per event at
    most), whatever is left before the end."""

    left = 0
    per = 0

    async def after_head(self, relay: Relay) -> None:
        if not relay.sse:
            return
        count = max(0, self.rule.int_param("count"))
        before = count // 2
        self.left = count - before
        self.per = max(1, self.left // 16)
        if before:
            await relay.write(relay.keepalive * before, None)

    async def event(self, relay: Relay, ev: LiveEvent) -> bytes | None:
        if self.left and ev.counts:
            n = self.left if ev.kind == FrameKind.TERMINAL else min(self.per, self.left)
            self.left -= n
            await relay.write(relay.keepalive * n, None)
        return ev.data

    async def end(self, relay: Relay) -> None:
        if self.left:
            await relay.write(relay.keepalive * self.left, None)
            self.left = 0


class _LiveMalformed(Live):
    done = False

    def whole_body(self, observed: bool) -> bool:
        return True

    async def event(self, relay: Relay, ev: LiveEvent) -> bytes | None:
        if (
            ev.counts
            and not self.done
            and (relay.events_sent >= self.rule.int_param("after_events") or ev.finishing)
        ):
            bad = corrupt(ev.data)
            if bad is not None:
                self.done = True
                return bad
        return ev.data

    async def end(self, relay: Relay) -> None:
        if not self.done:
            relay.notes.append(NOT_APPLIED + "no JSON frame to corrupt")


class _LiveMissingTerminal(Live):
    async def event(self, relay: Relay, ev: LiveEvent) -> bytes | None:
        return None if ev.kind == FrameKind.TERMINAL else ev.data


class _LiveErrorEvent(Live):
    async def event(self, relay: Relay, ev: LiveEvent) -> bytes | None:
        if ev.counts and (relay.events_sent >= self.rule.int_param("after_events") or ev.finishing):
            # an engine that finishes early gets the error in place of its finishing frame
            if await relay.error_event(_message(self.rule)):
                relay.notes.append(NOT_APPLIED + "this response has no in-stream error shape")
            return None
        return ev.data


class _LiveDuplicate(Live):
    done = False
    last: bytes | None = None

    async def event(self, relay: Relay, ev: LiveEvent) -> bytes | None:
        if ev.kind == FrameKind.TOKEN:
            if ev.index == self.rule.int_param("after_events"):
                self.last = None
                if await relay.write(ev.data, ev.data):
                    relay.events_sent += 1
                self.done = True
            elif not self.done:
                self.last = ev.data
        elif ev.kind == FrameKind.TERMINAL:
            await self._late(relay)
        return ev.data

    async def _late(self, relay: Relay) -> None:
        """Fewer tokens than ``after_events``: repeat the last one."""
        if self.done or self.last is None:
            return
        last, self.last = self.last, None
        self.done = True
        relay.notes.append("fewer token frames than after_events; the last one repeated")
        await relay.write(last, last)

    async def end(self, relay: Relay) -> None:
        await self._late(relay)
        if not self.done:
            relay.notes.append(NOT_APPLIED + "no token frame to duplicate")


class _LiveOutOfOrder(Live):
    done = False
    noted = False
    held: bytes | None = None

    async def event(self, relay: Relay, ev: LiveEvent) -> bytes | None:
        if ev.kind == FrameKind.TOKEN and not self.done:
            if self.held is None and ev.index >= self.rule.int_param("after_events"):
                self.held = ev.data
                return None
            if self.held is not None:
                held, self.held = self.held, None
                self.done = True
                if await relay.write(ev.data, ev.data):
                    relay.events_sent += 1
                return held
        if ev.kind == FrameKind.TERMINAL:
            await self._flush(relay)
        return ev.data

    async def _flush(self, relay: Relay) -> None:
        if self.held is not None:
            held, self.held = self.held, None
            relay.notes.append(NOT_APPLIED + "fewer than two token frames; nothing to reorder")
            self.noted = True
            await relay.write(held, held)

    async def end(self, relay: Relay) -> None:
        await self._flush(relay)
        if not self.done and not self.noted:
            relay.notes.append(NOT_APPLIED + "fewer than two token frames; nothing to reorder")


class _LiveOversized(Live):
    inflated = False
    last: tuple[bytes, list[str | int]] | None = None

    async def event(self, relay: Relay, ev: LiveEvent) -> bytes | None:
        data = ev.data
        if ev.kind == FrameKind.TOKEN and ev.path:
            if ev.index == self.rule.int_param("after_events"):
                data = self._inflate(relay, data, ev.path)
            else:
                self.last = (data, ev.path)
        if not self.inflated and ev.finishing and self.last is not None:
            # fewer token frames than after_events: the oversized frame is a copy of the last
            # one, sent before the engine's finishing frame (which still follows)
            big = self._inflate(relay, *self.last)
            relay.notes.append("fewer token frames than after_events; a copy of the last inflated")
            await relay.write(big, big)
        return data

    def _inflate(self, relay: Relay, event: bytes, path: list[str | int]) -> bytes:
        size = max(1, self.rule.int_param("size"))
        try:
            lines = [ln for ln in event.splitlines() if ln.startswith(b"data:")]
            obj = json.loads(b"\n".join(ln[5:].lstrip(b" ") for ln in lines))
            _set_path(obj, path, "")
            base = len(b"data: " + dumps(obj) + b"\n\n")
            _set_path(obj, path, "x" * max(0, size - base))
            self.inflated = True
            return b"data: " + dumps(obj) + b"\n\n"
        except (ValueError, KeyError, IndexError, TypeError):
            relay.notes.append(NOT_APPLIED + "token frame could not be inflated")
            return event

    async def end(self, relay: Relay) -> None:
        if not self.inflated:
            relay.notes.append(NOT_APPLIED + "no token frame to inflate")


def _set_path(obj: Any, path: list[str | int], value: str) -> None:
    """Set ``obj[path[0]][path[1]]...`` to ``value``."""
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


_AFTER_EVENTS_2 = FaultParam("after_events", 2, "SSE events sent before the fault")
_AFTER_EVENTS_1 = FaultParam("after_events", 1, "SSE events sent before the fault")
_DELAY = FaultParam("delay_ms", 2000, "length of the silence in milliseconds")
_DURATION = FaultParam("duration_ms", 0, "engine-wide: how long it lasts (0 = until cleared)")

_CATALOGUE: tuple[Fault, ...] = (
    *(HttpStatus(code) for code in (400, 401, 404, 422, 500, 503)),
    RateLimited(
        FaultSpec(
            "http.429_retry_after",
            "HTTP 429 with Retry-After (OpenAI/vLLM also x-ratelimit-* where the engine sends them)",
            (FaultParam("seconds", 1, "Retry-After value in seconds"),),
        )
    ),
    Loading(
        FaultSpec(
            "engine.loading",
            "the engine's own loading behaviour (llama.cpp: 503 'Loading model' on every route; "
            "vLLM/TGI/Triton: port closed until ready)",
            (_DURATION,),
        )
    ),
    Overload(FaultSpec("engine.overload", "the engine's own answer when slots and queue are full")),
    PortClosed(
        FaultSpec(
            "conn.port_closed",
            "nothing listens on the port (connection refused)",
            (_DURATION,),
            engine_level_only=True,
        )
    ),
    AcceptThenClose(
        FaultSpec(
            "conn.accept_then_close",
            "accept the TCP connection, then close it without an HTTP response",
        )
    ),
    SlowHeaders(FaultSpec("conn.slow_headers", "response headers only after delay_ms", (_DELAY,))),
    StallBeforeFirstByte(
        FaultSpec(
            "stall.before_first_byte",
            "headers sent, then silence for delay_ms before the first body byte",
            (_DELAY,),
        )
    ),
    StallMidstream(
        FaultSpec(
            "stall.midstream",
            "after after_events events, silence for delay_ms, then continue",
            (_AFTER_EVENTS_2, _DELAY),
        )
    ),
    Disconnect(
        FaultSpec(
            "midstream.disconnect",
            "close the connection after after_events events, no terminal frame",
            (_AFTER_EVENTS_2,),
        )
    ),
    DisconnectBytes(
        FaultSpec(
            "midstream.disconnect_bytes",
            "close the connection after after_bytes body bytes",
            (FaultParam("after_bytes", 64, "body bytes sent before closing"),),
        )
    ),
    CutUtf8(
        FaultSpec(
            "midstream.cut_utf8",
            "close the connection in the middle of a multi-byte UTF-8 character",
        )
    ),
    SplitUtf8(
        FaultSpec(
            "frame.split_utf8",
            "benign: every write boundary falls inside a multi-byte character",
        )
    ),
    SplitEveryByte(FaultSpec("frame.split_every_byte", "benign: every body byte is its own write")),
    MalformedJson(
        FaultSpec("frame.malformed_json", "one data frame carries invalid JSON", (_AFTER_EVENTS_1,))
    ),
    MissingTerminal(
        FaultSpec("frame.missing_terminal", "the stream ends without its terminal frame")
    ),
    DuplicateIndex(
        FaultSpec(
            "frame.duplicate_index",
            "a token/index repeated (where the dialect carries an index)",
            (_AFTER_EVENTS_1,),
        )
    ),
    OutOfOrderIndex(
        FaultSpec(
            "frame.out_of_order_index",
            "token indices out of order (where the dialect carries one)",
            (_AFTER_EVENTS_1,),
        )
    ),
    ErrorEvent(
        FaultSpec(
            "stream.error_event",
            "an in-stream error event in the engine's own shape after after_events events",
            (_AFTER_EVENTS_1, FaultParam("message", "mock in-stream failure", "error message")),
        )
    ),
    KeepaliveFlood(
        FaultSpec(
            "stream.keepalive_flood",
            "count keep-alive comments interleaved before and among the events",
            (FaultParam("count", 1000, "number of keep-alive comments"),),
        )
    ),
    Oversized(
        FaultSpec(
            "frame.oversized",
            "one frame of size bytes; a client must fail cleanly, not buffer forever",
            (_AFTER_EVENTS_1, FaultParam("size", 8 * 1024 * 1024, "frame size in bytes")),
        )
    ),
    WrongContentType(
        FaultSpec(
            "http.wrong_content_type",
            "success body with a wrong Content-Type (text/plain)",
            (FaultParam("content_type", "text/plain", "the Content-Type sent"),),
        )
    ),
)

#: Every fault object, in catalogue order.
FAULTS: tuple[Fault, ...] = _CATALOGUE
_BY_ID: dict[str, Fault] = {f.id: f for f in _CATALOGUE}
FAULT_IDS: tuple[str, ...] = tuple(f.id for f in _CATALOGUE)
_SELECTION_PARAMS = ("first", "rate")


def fault_object(fault_id: str) -> Fault:
    """The fault object of ``fault_id``; ConfigError if unknown."""
    try:
        return _BY_ID[fault_id]
    except KeyError:
        raise ConfigError(
            f"unknown fault id {fault_id!r} (see 'llorch-conformance list faults')"
        ) from None


def fault_spec(fault_id: str) -> FaultSpec:
    """The catalogue entry of ``fault_id`` (without ``applies_to``); ConfigError if unknown."""
    return fault_object(fault_id).spec


def catalogue_specs() -> tuple[FaultSpec, ...]:
    return tuple(f.spec for f in _CATALOGUE)


_NO_FAULT = Outcome("normal stream")


def fault_outcome(rule: FaultRule | None) -> Outcome:
    """The event-level outcome of ``rule`` (a normal stream for None): ``MockAdapter``'s API."""
    return _NO_FAULT if rule is None else rule.fault.outcome(rule)


def _coerce(spec: FaultSpec, name: str, raw: str) -> int | float | str:
    default = next((p.default for p in spec.params if p.name == name), None)
    try:
        if isinstance(default, bool):
            return raw.lower() in ("1", "true", "yes")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        raise ConfigError(f"fault {spec.id}: parameter {name}={raw!r} is not a number") from None
    return raw


@dataclass(frozen=True, slots=True)
class FaultRule:
    """A parsed fault selection: ``id``, ``params`` (defaults filled in), ``first``, ``rate``."""

    id: str
    params: Mapping[str, int | float | str | None] = field(default_factory=dict)
    first: int | None = None
    rate: float | None = None

    @classmethod
    def parse(cls, text: str) -> FaultRule:
        """Parse ``"<id>[;k=v;...]"``, e.g. ``"stall.midstream;after_events=3;first=2"``."""
        parts = [p.strip() for p in text.strip().split(";") if p.strip()]
        if not parts:
            raise ConfigError("empty fault specification")
        spec = fault_spec(parts[0])
        known = {p.name for p in spec.params}
        params: dict[str, int | float | str | None] = {p.name: p.default for p in spec.params}
        first: int | None = None
        rate: float | None = None
        for item in parts[1:]:
            key, sep, value = item.partition("=")
            key = key.strip()
            value = value.strip()
            if not sep:
                raise ConfigError(f"fault {spec.id}: parameter {item!r} is not key=value")
            if key == "first":
                try:
                    first = int(value)
                except ValueError:
                    raise ConfigError(
                        f"fault {spec.id}: first={value!r} is not an integer"
                    ) from None
                if first < 0:
                    raise ConfigError(f"fault {spec.id}: first must be >= 0")
            elif key == "rate":
                try:
                    rate = float(value)
                except ValueError:
                    raise ConfigError(f"fault {spec.id}: rate={value!r} is not a number") from None
                if not 0.0 <= rate <= 1.0:
                    raise ConfigError(f"fault {spec.id}: rate must be within 0..1")
            elif key in known:
                params[key] = _coerce(spec, key, value)
            else:
                allowed = ", ".join([*sorted(known), *_SELECTION_PARAMS])
                raise ConfigError(
                    f"fault {spec.id}: unknown parameter {key!r} (allowed: {allowed})"
                )
        return cls(spec.id, params, first, rate)

    @property
    def fault(self) -> Fault:
        """The fault object (behaviour at every stage) of this rule."""
        return _BY_ID[self.id]

    def outcome(self) -> Outcome:
        """The event-level outcome of this rule (see :class:`Outcome`)."""
        return self.fault.outcome(self)

    def param(self, name: str) -> Any:
        return self.params.get(name)

    def int_param(self, name: str) -> int:
        v = self.params.get(name)
        return int(v) if isinstance(v, int | float) else 0

    def __str__(self) -> str:
        spec = _BY_ID[self.id].spec
        defaults = {p.name: p.default for p in spec.params}
        items = [f"{k}={v}" for k, v in self.params.items() if defaults.get(k) != v]
        if self.first is not None:
            items.append(f"first={self.first}")
        if self.rate is not None:
            items.append(f"rate={self.rate}")
        return ";".join([self.id, *items])


def parse_faults(items: Iterable[str | FaultRule]) -> list[FaultRule]:
    """Parse a list of fault specifications (strings or ready rules)."""
    return [i if isinstance(i, FaultRule) else FaultRule.parse(i) for i in items]


class RuleState:
    """An engine-wide rule with its counters: ``first`` counts down, ``rate`` draws seeded.

    Thread-safe: the runner may replace rules from the test thread while the server thread
    selects faults.
    """

    def __init__(self, rule: FaultRule, seed: int, position: int) -> None:
        self.rule = rule
        self.matched = 0
        self.applied = 0
        digest = hashlib.sha256(f"{seed}|{position}|{rule}".encode()).digest()
        self._rng = random.Random(int.from_bytes(digest[:8], "big"))
        self._lock = threading.Lock()

    def select(self) -> bool:
        """Count one matching request; True when this request gets the fault."""
        with self._lock:
            self.matched += 1
            rule = self.rule
            if rule.first is not None and self.applied >= rule.first:
                return False
            if rule.rate is not None and self._rng.random() >= rule.rate:
                return False
            self.applied += 1
            return True
