"""The raw ASGI app of a mock engine: request handling, fault stages, sending, control plane.

Everything that is the same for every engine lives in this package once; dialects only parse
and render (see :mod:`mock_engines._wire` for the interface). The jobs are split by module:
:mod:`._slots` (slots, queue, counters), :mod:`._context` (engine state and fault selection),
:mod:`._faults` (what each fault does at each stage), :mod:`._pacing` (due times and the shared
ticker) and this module (the raw ASGI app that runs a request through them).

Performance choices (DESIGN.md "Ecosystem facts"): the whole app is raw ASGI — no Starlette on
any path — and the per-event path does one write per *due moment*: frames due at the same time
are joined into one write. Dialects pre-render each frame shape once (``_wire.template``) and only
encode the token text per event; :func:`mock_engines._pacing.pace` writes them.

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
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from llorch_conformance.adapters.api import ConfigError

from ._asgi import Receive, Scope, Send
from ._context import EngineContext
from ._faults import FAULT_HEADER, FaultRule, Responder
from ._journal import JournalEntry
from ._pacing import flush_due, pace
from ._profile import load_profile
from ._segments import segments
from ._slots import Overloaded
from ._wire import (
    CONTROL_PREFIX,
    EngineError,
    Frame,
    FrameKind,
    MockRequest,
    Rejected,
    Reply,
    StreamReply,
    dumps,
)

__all__ = ["MockEngineApp"]


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
            rule, Responder(self, req, entry, receive, send, transport)
        ):
            return

        if route.generation:
            flush_due()  # a render costs 0.3-1 ms of CPU: frames already due go out first
        try:
            result = route.handler(req, ctx)
        except EngineError as exc:
            reply = dialect.error_reply(
                exc.status, exc.message, etype=exc.etype, param=exc.param, code=exc.code
            )
            await self.send_reply(send, entry, reply, rule)
            return
        except Rejected as rejected:
            result = rejected.reply
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
            # A free slot and nobody queued (the pool's fast path): the schedule starts when the
            # request arrived, as a real engine's TTFT does, so the mock's own parsing and
            # rendering (or a burst of other requests ahead of it on the loop) do not add to
            # the TTFT it models. After a wait in the queue it starts when the slot is granted.
            immediate = pool.busy < pool.slots and pool.queued == 0
            try:
                sid = await pool.acquire(entry.id)
            except Overloaded:
                state.done = True
                await self.send_any(
                    send, receive, entry, self.dialect.overload_reply(req, ctx), None, transport
                )
                return
            t0 = entry.t_received if immediate else time.monotonic()
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
            if await self._quiet_cancel(state, entry, transport, watcher):
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

    async def _quiet_cancel(
        self,
        state: _WatchState,
        entry: JournalEntry,
        transport: Any,
        watcher: asyncio.Task[Any] | None = None,
    ) -> bool:
        """Whether a cancelled request ends quietly (the caller returns) or the cancellation
        is someone else's (the caller re-raises it): the client went away, or the server is
        stopping — then the connection drops like a dying engine's (``watcher``, when given,
        gets a moment to notice)."""
        cur = asyncio.current_task()
        if state.client_gone:
            if cur is not None:
                cur.uncancel()
            return True
        if self._shutting_down and transport is not None:
            if cur is not None:
                cur.uncancel()
            state.aborting = True
            entry.aborted = True
            transport.close()
            if watcher is not None:
                await asyncio.wait({watcher}, timeout=1.0)
            return True
        return False

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
        # From here the segments carry the frames: a reply the callers still hold must not keep
        # one collector-tracked object per frame alive for the whole stream (see _pacing).
        del frames
        if isinstance(reply, StreamReply):
            reply.frames = []
        if not await pace(segs, t0, send, transport if streamed else None, entry, journal):
            # The connection went away under us: the client cancelled.
            journal.mark_disconnect(entry, cancel=True)
            return False
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
                out = self.journal.to_dict(
                    frames=qs.get("frames", "1") not in ("0", "false"),
                    timing=qs.get("timing", "0") not in ("0", "false"),
                )
            elif name == "config" and method == "GET":
                out = ctx.config_dict()
            elif name == "config" and method in ("POST", "PUT"):
                import json

                try:
                    data = json.loads(body or b"{}")
                except RecursionError:
                    raise ConfigError("config body nests too deep") from None
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
