"""The engine core: state, slots/queue, loading, fault interpreter and the raw-ASGI sender.

Everything that is the same for every engine lives here once; dialects only parse and render
(see :mod:`mock_engines._wire` for the interface).

Performance choices (DESIGN.md "Ecosystem facts"): the whole app is raw ASGI — no Starlette on
any path — and the per-event path does one write per *due moment*: frames due at the same time
are joined into one write. Dialects pre-render each frame shape once (``_wire.template``) and only
encode the token text per event. Untimed streams (the ``fast`` profile) go out through ASGI
``send`` at once; timed streams on our own server are written by one shared :class:`_Ticker` per
event loop, which wakes for the earliest due frame and writes every due frame of every stream in
one pass straight to the transport (chunked framing identical to uvicorn's), so 500 concurrent
streams cost one timer, not 500 sleeping tasks. Deadlines are absolute (``t0 + offset``), never
early, so errors do not accumulate. Nothing is logged per token.

Disconnects: for generation requests a small watcher task waits on ASGI ``receive()`` for
``http.disconnect``; when the client goes away mid-response it records the disconnect in the
journal (``disconnected``, ``t_disconnected``, ``cancels``) and cancels the sender, which frees
the slot in ``finally`` — the mock stops "generating" like a real engine does.

Deliberate connection faults (``conn.accept_then_close``, ``midstream.*``) close the transport
that :mod:`mock_engines._server` exposes to the app under
``scope["extensions"]["llorch.transport"]``; without it (a foreign ASGI server) the sender raises
an exception, which makes any ASGI server drop the connection as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import random
import time
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from llorch_conformance.adapters.api import ConfigError

from ._faults import FAULT_HEADER, Fault, FaultRule, RuleState, parse_faults
from ._journal import Journal, JournalEntry
from ._plan import MAX_CONTEXT, GenerationPlan, make_plan
from ._profile import Profile, load_profile
from ._segments import Seg, segments
from ._wire import (
    Dialect,
    EngineError,
    Frame,
    FrameKind,
    MockRequest,
    Reply,
    Route,
    StreamReply,
    dumps,
)

__all__ = ["CONTROL_PREFIX", "EngineContext", "MockEngineApp", "Overloaded", "SlotPool"]

CONTROL_PREFIX = "/__mock__/"
DEFAULT_MAX_BODY = 16 * 1024 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Overloaded(Exception):
    """No free slot and no room in the queue."""


class SlotPool:
    """``slots`` concurrent generations and a FIFO queue of at most ``queue_size`` waiters.

    Slots have ids (llama.cpp reports ``id_slot``); the lowest free id is handed out first. A
    released slot goes straight to the oldest waiter, so queue order is honoured.
    """

    def __init__(self, slots: int, queue_size: int) -> None:
        self.slots = slots
        self.queue_size = queue_size
        self._free = list(range(slots))
        self._waiting: deque[asyncio.Future[int]] = deque()
        self.owner: dict[int, int] = {}  # slot id -> journal id
        self.last_owner: dict[int, int] = {}  # slot id -> journal id of its latest task

    @property
    def busy(self) -> int:
        return self.slots - len(self._free)

    @property
    def queued(self) -> int:
        return sum(1 for f in self._waiting if not f.done())

    async def acquire(self, owner: int) -> int:
        if self._free and not self._waiting:
            sid = heapq.heappop(self._free)
            self.owner[sid] = owner
            self.last_owner[sid] = owner
            return sid
        if self.queued >= self.queue_size:
            raise Overloaded
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        try:
            sid = await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(fut.result())
            else:
                with contextlib.suppress(ValueError):
                    self._waiting.remove(fut)
            raise
        self.owner[sid] = owner
        self.last_owner[sid] = owner
        return sid

    def release(self, sid: int) -> None:
        self.owner.pop(sid, None)
        while self._waiting:
            fut = self._waiting.popleft()
            if not fut.done():
                fut.set_result(sid)
                return
        if sid < self.slots:
            heapq.heappush(self._free, sid)


@dataclass(slots=True)
class Stats:
    """Counters behind each dialect's ``/metrics``."""

    requests_total: int = 0
    requests_success: int = 0
    prompt_tokens_total: int = 0
    tokens_predicted_total: int = 0
    prompt_seconds_total: float = 0.0
    predicted_seconds_total: float = 0.0
    n_decode_total: int = 0
    finished_length: int = 0
    finished_stop: int = 0
    finished_eos: int = 0
    ttft_sum: float = 0.0
    ttft_count: int = 0


class EngineContext:
    """One mock engine's state; handlers get it as ``ctx``.

    Public for dialects: ``dialect``, ``model``, ``seed``, ``profile``, ``api_key``, ``stats``,
    ``slots``, ``started_at`` and the helpers :meth:`plan`, :meth:`chunks`, :meth:`created`,
    :meth:`new_id`.
    """

    def __init__(
        self,
        dialect: Dialect,
        *,
        seed: int = 0,
        profile: str | Profile | None = "fast",
        faults: Iterable[str | FaultRule] = (),
        control: bool = True,
        model: str | None = None,
        api_key: str | None = None,
        created: int | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        journal: Journal | None = None,
        ctx_size: int | None = None,
        metrics: bool = True,
    ) -> None:
        if ctx_size is not None and not 16 <= ctx_size <= MAX_CONTEXT:
            raise ConfigError(f"ctx_size must be between 16 and {MAX_CONTEXT}, got {ctx_size}")
        self.dialect = dialect
        #: The deployment's context length in tokens (llama.cpp ``--ctx-size``, vLLM
        #: ``--max-model-len``): prompts and ``max_tokens`` are held against it as the engine does.
        self.ctx_size = ctx_size or dialect.default_ctx_size
        #: Whether the engine serves ``/metrics`` (llama.cpp needs ``--metrics``).
        self.metrics_enabled = metrics
        self.seed = int(seed)
        self.profile = load_profile(profile)
        self.control = control
        self.model = model or dialect.default_model
        self.api_key = api_key or None
        self.fixed_created = created
        self.max_body_bytes = max_body_bytes
        self.journal = journal or Journal()
        self.stats = Stats()
        self.slots = SlotPool(self.profile.slots, self.profile.queue_size)
        self.started_at = time.time()
        self.started_mono = time.monotonic()
        self._counter = 0
        self._jitter_rng = random.Random(self.seed)
        self._rules: list[RuleState] = []
        self._startup_until: float | None = None
        self._fault_loading_until: float | None = None
        self._port_closed_until: float | None = None
        self.port_listener: Callable[[], None] | None = None
        self.accept_closes = 0
        self._exact: dict[tuple[str, str], Route] = {}
        self._patterns: list[tuple[Route, list[str]]] = []
        for route in dialect.routes():
            if "{" in route.path:
                self._patterns.append((route, route.path.strip("/").split("/")))
            else:
                self._exact[(route.method, route.path)] = route
        if self.profile.load_ms > 0:
            self._startup_until = self.started_mono + self.profile.load_ms / 1000.0
        self.set_faults(faults)

    # -- helpers for dialects ---------------------------------------------------------------
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
    ) -> GenerationPlan:
        """The plan for a request; a request without a seed uses the engine seed."""
        return make_plan(
            prompt,
            seed=self.seed if seed is None else seed,
            max_tokens=max_tokens,
            stop=stop,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            ignore_eos=ignore_eos,
            min_tokens=min_tokens,
        )

    def chunks(self, plan: GenerationPlan) -> list[tuple[str, tuple[int, ...]]]:
        """The plan's tokens grouped ``tokens_per_chunk`` at a time: one entry per engine step."""
        n = self.profile.tokens_per_chunk
        toks, ids = plan.tokens, plan.token_ids
        if n == 1:
            return [(t, (i,)) for t, i in zip(toks, ids, strict=True)]
        return [("".join(toks[k : k + n]), tuple(ids[k : k + n])) for k in range(0, len(toks), n)]

    def created(self) -> int:
        """Unix seconds for ``created`` fields (fixed when the engine was built with ``created=``)."""
        return self.fixed_created if self.fixed_created is not None else int(time.time())

    def new_id(self, n_hex: int = 24) -> str:
        """A deterministic hex id: the same engine seed gives the same id sequence."""
        self._counter += 1
        return hashlib.sha256(f"{self.seed}|{self._counter}".encode()).hexdigest()[:n_hex]

    # -- configuration ------------------------------------------------------------------------
    @property
    def faults(self) -> list[FaultRule]:
        return [s.rule for s in self._rules]

    def set_faults(self, faults: Iterable[str | FaultRule]) -> None:
        """Replace the engine-wide fault rules (ConfigError for unknown or inapplicable ones)."""
        rules = parse_faults(faults)
        for r in rules:
            r.fault.check(r, self.dialect, per_request=False)
        self._rules = [RuleState(r, self.seed, i) for i, r in enumerate(rules)]
        now = time.monotonic()
        self._port_closed_until = None
        loading_from_fault: float | None = None
        for r in rules:
            closed, loading = r.fault.state_until(r, self.dialect, now)
            if closed is not None:
                self._port_closed_until = max(self._port_closed_until or 0.0, closed)
            if loading is not None:
                loading_from_fault = loading
        self._fault_loading_until = loading_from_fault
        if self.port_listener is not None:
            self.port_listener()

    def check_applies(self, rule: FaultRule) -> None:
        """ConfigError when the dialect cannot render ``rule``'s fault."""
        Fault.check(rule.fault, rule, self.dialect, per_request=False)

    def set_profile(self, profile: str | Profile) -> None:
        self.profile = load_profile(profile)
        if self.slots.busy == 0 and self.slots.queued == 0:
            self.slots = SlotPool(self.profile.slots, self.profile.queue_size)
        else:
            self.slots.queue_size = self.profile.queue_size

    def reset(self) -> None:
        """Clear the journal and restart the fault counters (``first=`` / ``rate=``)."""
        self.journal.clear()
        self._rules = [RuleState(s.rule, self.seed, i) for i, s in enumerate(self._rules)]
        self._counter = 0
        self.accept_closes = 0

    def config_dict(self) -> dict[str, Any]:
        return {
            "dialect": self.dialect.name,
            "engine_version": self.dialect.engine_version,
            "model": self.model,
            "ctx_size": self.ctx_size,
            "seed": self.seed,
            "profile": self.profile.to_dict(),
            "faults": [str(r) for r in self.faults],
            "loading": self.is_loading(),
            "port_closed": self.port_closed(),
            "api_key_set": self.api_key is not None,
        }

    # -- states ---------------------------------------------------------------------------------
    def _loading_deadline(self) -> float | None:
        now = time.monotonic()
        best: float | None = None
        for until in (self._startup_until, self._fault_loading_until):
            if until is not None and until > now:
                best = until if best is None else max(best, until)
        return best

    def is_loading(self) -> bool:
        """True while the engine is loading (startup ``load_ms`` or an ``engine.loading`` fault)."""
        return self._loading_deadline() is not None

    def port_closed_until(self) -> float | None:
        """Monotonic deadline until which the port must stay closed (``inf`` = until cleared)."""
        deadline: float | None = None
        now = time.monotonic()
        if self.dialect.loading_mode == "port_closed":
            deadline = self._loading_deadline()
        pc = self._port_closed_until
        if pc is not None and pc > now:
            deadline = pc if deadline is None else max(deadline, pc)
        return deadline

    def port_closed(self) -> bool:
        return self.port_closed_until() is not None

    def select_connection_fault(self) -> FaultRule | None:
        """Engine-wide ``conn.accept_then_close`` for a new TCP connection."""
        for state in self._rules:
            if state.rule.fault.on_connection and state.select():
                self.accept_closes += 1
                return state.rule
        return None

    def select_request_fault(self, route: Route | None) -> FaultRule | None:
        for state in self._rules:
            rule = state.rule
            if rule.fault.selects(rule, route, self.dialect) and state.select():
                return rule
        return None

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, path params, path exists with another method)."""
        route = self._exact.get((method, path))
        if route is not None:
            return route, {}, False
        other = any(p == path for (_, p) in self._exact)
        segs = path.strip("/").split("/")
        for r, pat in self._patterns:
            if len(pat) != len(segs):
                continue
            params: dict[str, str] = {}
            for a, b in zip(pat, segs, strict=True):
                if a.startswith("{") and a.endswith("}"):
                    params[a[1:-1]] = b
                elif a != b:
                    break
            else:
                if r.method == method:
                    return r, params, False
                other = True
        return None, {}, other


# ---------------------------------------------------------------------------------------------
# The ASGI application
# ---------------------------------------------------------------------------------------------


class _Job:
    """The timed segments of one stream, written by the :class:`_Ticker` at their due times.

    Body writes go straight to the transport in HTTP/1.1 chunked framing — exactly the bytes
    uvicorn's ``send`` would write for ``more_body=True`` — so uvicorn's own ``send`` still
    sends the headers and the final zero-length chunk and keeps its state consistent.
    """

    __slots__ = (
        "cancelled",
        "entry",
        "finished",
        "i",
        "journal",
        "lost",
        "segs",
        "t0",
        "transport",
    )

    def __init__(
        self, segs: list[Seg], t0: float, transport: Any, entry: JournalEntry, journal: Journal
    ) -> None:
        self.segs = segs
        self.t0 = t0
        self.i = 0
        self.transport = transport
        self.entry = entry
        self.journal = journal
        self.cancelled = False
        self.lost = False
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def next_due(self) -> float:
        return self.t0 + self.segs[self.i].due

    def fire(self, now: float) -> bool:
        """Write every segment due by ``now``; True while more remain."""
        segs = self.segs
        n = len(segs)
        tr = self.transport
        entry = self.entry
        while self.i < n and self.t0 + segs[self.i].due <= now:
            if tr.is_closing():
                self.lost = True
                break
            seg = segs[self.i]
            data = seg.data
            tr.write(b"%x\r\n%b\r\n" % (len(data), data))
            entry.n_writes += 1
            if entry.t_first_byte is None:
                entry.t_first_byte = time.monotonic()
            entry.frames.extend(seg.done)
            self.i += 1
        self.journal.notify()
        if self.lost or self.i >= n:
            if not self.finished.done():
                self.finished.set_result(None)
            return False
        return True


class _Ticker:
    """One timer per event loop for all timed streams: the earliest due job wakes it, and each
    wake-up writes every frame that is due, across all streams, in one pass."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.heap: list[tuple[float, int, _Job]] = []
        self.seq = 0
        self.handle: asyncio.TimerHandle | None = None
        self.armed_for = float("inf")

    def add(self, job: _Job) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (job.next_due, self.seq, job))
        self._arm()

    def _arm(self) -> None:
        if not self.heap:
            return
        due = self.heap[0][0]
        if self.handle is not None:
            if due >= self.armed_for:
                return
            self.handle.cancel()
        # loop.time() is not time.monotonic() on uvloop: schedule by delay, never by absolute.
        delay = due - time.monotonic()
        self.handle = self.loop.call_later(max(delay, 0.0), self._run)
        self.armed_for = due

    def _run(self) -> None:
        self.handle = None
        self.armed_for = float("inf")
        heap = self.heap
        now = time.monotonic()
        while heap and heap[0][0] <= now:
            _, _, job = heapq.heappop(heap)
            if job.cancelled:
                continue
            if job.fire(now):
                self.seq += 1
                heapq.heappush(heap, (job.next_due, self.seq, job))
        if heap and heap[0][0] - now < 0.001:
            # uvloop timers have 1 ms resolution: a timer for a due time less than 1 ms away
            # may fire early again; wait one tick instead of spinning.
            self.seq += 1
            self.handle = self.loop.call_later(0.001, self._run)
            self.armed_for = heap[0][0]
            return
        self._arm()


_TICKERS: dict[asyncio.AbstractEventLoop, _Ticker] = {}


def _ticker() -> _Ticker:
    loop = asyncio.get_running_loop()
    t = _TICKERS.get(loop)
    if t is None:
        for old in [lp for lp in _TICKERS if lp.is_closed()]:
            del _TICKERS[old]
        t = _TICKERS[loop] = _Ticker(loop)
    return t


class _Gone(Exception):
    """The client disconnected while we were working on its request."""


class MockEngineApp:
    """Raw ASGI app of one mock engine. Build it with :func:`mock_engines.create_app`."""

    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx
        self.dialect = ctx.dialect
        self.journal = ctx.journal
        self._base_headers = self.dialect.base_headers()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._shutting_down = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    def overload_reply(self, req: MockRequest) -> Reply | StreamReply:
        """The engine's own answer when slots and queue are full."""
        return self.dialect.overload_reply(req, self.ctx)

    def abort_all(self) -> None:
        """Cancel every request in progress (fast shutdown of the in-process runner)."""
        self._shutting_down = True
        for t in list(self._tasks):
            t.cancel()

    # -- request handling -------------------------------------------------------------------------
    async def _read_body(self, receive: Receive) -> tuple[bytes, bool, bool]:
        """(body, too_large, disconnected)."""
        chunks: list[bytes] = []
        size = 0
        limit = self.ctx.max_body_bytes
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return b"".join(chunks), False, True
            body = msg.get("body", b"")
            if body:
                size += len(body)
                if size > limit:
                    chunks.append(body)
                    return b"".join(chunks), True, False
                chunks.append(body)
            if not msg.get("more_body", False):
                return b"".join(chunks), False, False

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = self.ctx
        path: str = scope["path"]
        method: str = scope["method"]
        if ctx.control and path.startswith(CONTROL_PREFIX):
            body, _, _ = await self._read_body(receive)
            await self._control(method, path, scope, body, send)
            return
        body, too_large, gone = await self._read_body(receive)
        raw_headers = scope.get("headers") or []
        str_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw_headers]
        query_string = scope.get("query_string", b"").decode("latin-1")
        entry = self.journal.new_entry(method, path, query_string, str_headers, body)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        transport = (scope.get("extensions") or {}).get("llorch.transport")
        try:
            if gone:
                self.journal.mark_disconnect(entry, cancel=True)
                return
            req = MockRequest(
                method=method,
                path=path,
                query=dict(urllib.parse.parse_qsl(query_string, keep_blank_values=True)),
                headers={k.lower(): v for k, v in str_headers},
                body=body,
                journal_id=entry.id,
            )
            if too_large:
                reply = self.dialect.body_too_large_reply(req, ctx.max_body_bytes)
                reply.headers.append((b"connection", b"close"))
                await self.send_reply(send, entry, reply, None)
                return
            await self._dispatch(req, entry, receive, send, transport)
        finally:
            if task is not None:
                self._tasks.discard(task)
            self.journal.finish(entry)

    #: who signs a reply to a rejected fault header (the fault proxy says "proxy")
    _who = "mock"

    async def _select_rule(
        self, req: MockRequest, entry: JournalEntry, send: Send
    ) -> tuple[bool, FaultRule | None, Any, bool]:
        """This request's fault (the ``X-Mock-Fault`` header wins over engine rules), its route,
        and whether the request was already answered (a rejected header, or loading).

        Returns ``(handled, rule, route, other_method)``; shared by the mock engine and the fault
        proxy so both select faults, journal them and answer loading the same way."""
        ctx = self.ctx
        dialect = self.dialect
        header_rule: FaultRule | None = None
        raw_fault = req.headers.get(FAULT_HEADER)
        if raw_fault:
            try:
                header_rule = FaultRule.parse(raw_fault)
                header_rule.fault.check(header_rule, dialect, per_request=True)
            except ConfigError as exc:
                entry.fault = raw_fault
                entry.fault_note = f"rejected: {exc}"
                reply = dialect.error_reply(400, f"{self._who}: {exc}")
                await self.send_reply(send, entry, reply, None)
                return True, None, None, False
        route, params, other_method = ctx.match(req.method, req.path)
        req.path_params = params
        if route is not None:
            entry.route = route.path
            entry.generation = route.generation
        rule = header_rule if header_rule is not None else ctx.select_request_fault(route)
        if rule is not None:
            entry.fault = str(rule)
            if rule is header_rule and (rule.first is not None or rule.rate is not None):
                entry.fault_note = "first=/rate= select among requests; ignored per request"
        # Loading: llama.cpp answers 503 on every route.
        if dialect.loading_mode == "http_503" and (
            ctx.is_loading() or (rule is not None and rule.fault.forces_loading(dialect))
        ):
            await self.send_reply(send, entry, dialect.loading_reply(req), None)
            return True, rule, route, other_method
        return False, rule, route, other_method

    async def _dispatch(
        self,
        req: MockRequest,
        entry: JournalEntry,
        receive: Receive,
        send: Send,
        transport: Any,
    ) -> None:
        ctx = self.ctx
        dialect = self.dialect
        handled, rule, route, other_method = await self._select_rule(req, entry, send)
        if handled:
            return
        if route is None:
            reply = (
                dialect.method_not_allowed_reply(req)
                if other_method
                else dialect.not_found_reply(req)
            )
            await self.send_reply(send, entry, reply, rule)
            return
        denied = dialect.check_auth(req, ctx.api_key, route)
        if denied is not None:
            await self.send_reply(send, entry, denied, None)
            return

        if rule is not None and await rule.fault.answer(
            rule, self, req, entry, receive, send, transport
        ):
            return

        try:
            result = route.handler(req, ctx)
        except EngineError as exc:
            reply = dialect.error_reply(
                exc.status, exc.message, etype=exc.etype, param=exc.param, code=exc.code
            )
            await self.send_reply(send, entry, reply, rule)
            return
        plan = result.plan
        if plan is None:
            await self.send_any(send, receive, entry, result, rule, transport)
            return
        entry.plan = plan
        await self._generate(req, entry, result, rule, receive, send, transport)

    async def _generate(
        self,
        req: MockRequest,
        entry: JournalEntry,
        result: Reply | StreamReply,
        rule: FaultRule | None,
        receive: Receive,
        send: Send,
        transport: Any,
    ) -> None:
        ctx = self.ctx
        plan = result.plan
        assert plan is not None
        state = _WatchState()
        task = asyncio.current_task()
        watcher = asyncio.create_task(self._watch(receive, entry, state, task))
        sid: int | None = None
        pool = ctx.slots
        try:
            try:
                sid = await pool.acquire(entry.id)
            except Overloaded:
                state.done = True
                await self.send_any(
                    send, receive, entry, self.dialect.overload_reply(req, ctx), None, transport
                )
                return
            t0 = time.monotonic()
            chunks = ctx.chunks(plan)
            sizes = [len(ids) for _, ids in chunks] or [1]
            busy = (pool.busy - 1) / pool.slots if pool.slots > 1 else 0.0
            if result.offsets is not None:
                offsets = result.offsets  # a replay: the recorded timing, not the profile's
            else:
                offsets = ctx.profile.step_offsets(
                    len(sizes), plan.prompt_tokens, sizes, busy, ctx._jitter_rng
                )
            ctx.stats.requests_total += 1
            ok = await self.send_any(
                send, receive, entry, result, rule, transport, t0=t0, offsets=offsets, state=state
            )
            if ok:
                st = ctx.stats
                st.requests_success += 1
                st.prompt_tokens_total += plan.prompt_tokens
                st.tokens_predicted_total += plan.completion_tokens
                st.n_decode_total += plan.completion_tokens
                ttft = offsets[0]
                st.prompt_seconds_total += ttft
                st.predicted_seconds_total += max(0.0, offsets[-1] - ttft)
                st.ttft_sum += ttft
                st.ttft_count += 1
                if plan.stop_reason == "length":
                    st.finished_length += 1
                elif plan.stop_reason == "stop":
                    st.finished_stop += 1
                else:
                    st.finished_eos += 1
        except asyncio.CancelledError:
            cur = asyncio.current_task()
            if state.client_gone:
                if cur is not None:
                    cur.uncancel()
                return
            if self._shutting_down and transport is not None:
                # Server stop: drop the connection like a dying engine, quietly.
                if cur is not None:
                    cur.uncancel()
                state.aborting = True
                entry.aborted = True
                transport.close()
                await asyncio.wait({watcher}, timeout=1.0)
                return
            raise
        finally:
            state.done = True
            if sid is not None:
                pool.release(sid)
            if not watcher.done():
                watcher.cancel()

    async def _watch(
        self,
        receive: Receive,
        entry: JournalEntry,
        state: _WatchState,
        task: asyncio.Task[Any] | None,
    ) -> None:
        """Wait for ``http.disconnect``; if the response is unfinished, record it and cancel."""
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                break
        if state.done or state.aborting:
            return
        state.client_gone = True
        self.journal.mark_disconnect(entry, cancel=True)
        if task is not None:
            task.cancel()

    async def abort_connection(self, transport: Any, receive: Receive) -> None:
        """Close the connection without (the rest of) a response, then wait until uvicorn saw it."""
        if transport is None:
            raise _Gone("mock fault: connection closed deliberately")
        transport.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                while True:
                    msg = await receive()
                    if msg["type"] == "http.disconnect":
                        break

    def _headers(
        self, reply_headers: list[tuple[bytes, bytes]], rule: FaultRule | None
    ) -> list[tuple[bytes, bytes]]:
        if reply_headers:
            own = {k.lower() for k, _ in reply_headers}
            hs = [h for h in self._base_headers if h[0] not in own] + reply_headers
        else:
            hs = list(self._base_headers)
        if rule is not None:
            rule.fault.headers(rule, hs)
        return hs

    async def send_reply(
        self, send: Send, entry: JournalEntry, reply: Reply, rule: FaultRule | None
    ) -> None:
        """A plain reply with Content-Length (no timing, no stream faults)."""
        hs = self._headers(reply.headers, rule)
        hs.append((b"content-length", str(len(reply.body)).encode()))
        entry.status = reply.status
        await send({"type": "http.response.start", "status": reply.status, "headers": hs})
        now = time.monotonic()
        entry.t_first_byte = now
        await send({"type": "http.response.body", "body": reply.body, "more_body": False})
        entry.t_last_byte = time.monotonic()
        entry.frames.append(reply.body)
        entry.completed = True

    async def send_any(
        self,
        send: Send,
        receive: Receive,
        entry: JournalEntry,
        reply: Reply | StreamReply,
        rule: FaultRule | None,
        transport: Any,
        *,
        t0: float | None = None,
        offsets: list[float] | None = None,
        state: _WatchState | None = None,
    ) -> bool:
        """Send a reply or a stream with timing and faults. True when it completed normally."""
        if t0 is None:
            t0 = time.monotonic()
        if offsets is None:
            offsets = [0.0]
        note: str | None = None
        streamed = isinstance(reply, StreamReply)
        if isinstance(reply, StreamReply):
            frames = reply.frames
            if rule is not None:
                frames, note = rule.fault.frames(rule, frames, reply, self.dialect)
        else:
            # A complete body is one frame, due when the whole generation is done.
            body = reply.body
            if rule is not None:
                body, note = rule.fault.body(rule, body)
            frames = [Frame(body, len(offsets) - 1, FrameKind.TERMINAL)]
        segs = segments(frames, offsets)
        abort = False
        note2: str | None = None
        if rule is not None:
            segs, abort, note2 = rule.fault.writes(rule, segs, frames)
        if note2:
            note = note2 if note is None else f"{note}; {note2}"
        if note:
            entry.fault_note = note

        hs = self._headers(reply.headers, rule)
        if not streamed:
            hs.append((b"content-length", str(len(reply.body)).encode()))  # type: ignore[union-attr]
        delay = 0.0 if rule is None else rule.fault.header_delay_s(rule)
        if delay > 0.0:
            await asyncio.sleep(delay)
        entry.status = reply.status
        await send({"type": "http.response.start", "status": reply.status, "headers": hs})
        journal = self.journal
        mono = time.monotonic
        if streamed and transport is not None and segs and segs[-1].due > 0.0:
            # Timed stream on our own server: one shared ticker writes every due frame of every
            # stream in a single pass, straight to the transport (no task switch per event).
            job = _Job(segs, t0, transport, entry, journal)
            _ticker().add(job)
            try:
                await job.finished
            finally:
                job.cancelled = True
            if job.lost:
                # The connection went away under us: the client cancelled.
                self.journal.mark_disconnect(entry, cancel=True)
                return False
        else:
            sink = entry.frames
            first = True
            sleep = asyncio.sleep
            for seg in segs:
                due = seg.due
                if due > 0.0:
                    # Loop: uvloop timers have millisecond resolution and may fire a little
                    # early; a frame must never leave before its due time.
                    delay = t0 + due - mono()
                    while delay > 0.0:
                        await sleep(delay)
                        delay = t0 + due - mono()
                await send({"type": "http.response.body", "body": seg.data, "more_body": True})
                entry.n_writes += 1
                if first:
                    entry.t_first_byte = mono()
                    first = False
                sink.extend(seg.done)
                journal.notify()
        if abort:
            if state is not None:
                state.aborting = True
            entry.aborted = True
            entry.t_last_byte = mono()
            await self.abort_connection(transport, receive)
            return False
        if state is not None:
            state.done = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        entry.t_last_byte = mono()
        if entry.t_first_byte is None:
            entry.t_first_byte = entry.t_last_byte
        entry.completed = True
        journal.notify()
        return True

    # -- control plane ------------------------------------------------------------------------------
    async def _control(self, method: str, path: str, scope: Scope, body: bytes, send: Send) -> None:
        ctx = self.ctx
        status = 200
        out: Any
        name = path[len(CONTROL_PREFIX) :].strip("/")
        qs = dict(urllib.parse.parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        try:
            if name == "journal" and method == "GET":
                out = self.journal.to_dict(frames=qs.get("frames", "1") not in ("0", "false"))
            elif name == "config" and method == "GET":
                out = ctx.config_dict()
            elif name == "config" and method in ("POST", "PUT"):
                import json

                try:
                    data = json.loads(body or b"{}")
                except ValueError as exc:
                    raise ConfigError(f"config body is not JSON: {exc}") from None
                if not isinstance(data, dict):
                    raise ConfigError("config body must be a JSON object")
                unknown = set(data) - {"faults", "seed", "profile"}
                if unknown:
                    raise ConfigError(f"unknown config keys: {', '.join(sorted(unknown))}")
                if "profile" in data:
                    p = data["profile"]
                    if isinstance(p, dict):
                        ctx.set_profile(load_profile(p.pop("base", "fast"), **p))
                    else:
                        ctx.set_profile(str(p))
                if "seed" in data:
                    ctx.seed = int(data["seed"])
                if "faults" in data:
                    faults = data["faults"]
                    if not isinstance(faults, list):
                        raise ConfigError("faults must be a list of strings")
                    ctx.set_faults([str(f) for f in faults])
                out = ctx.config_dict()
            elif name == "reset" and method == "POST":
                ctx.reset()
                out = {"ok": True}
            else:
                status, out = 404, {"error": f"unknown control endpoint {method} {path}"}
        except (ConfigError, ValueError, TypeError) as exc:
            status, out = 400, {"error": str(exc)}
        body_out = dumps(out)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body_out)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body_out, "more_body": False})


@dataclass(slots=True)
class _WatchState:
    done: bool = False
    aborting: bool = False
    client_gone: bool = False
