"""The in-process, fault-injecting mock adapter (ORCH-3058: it must remain and inject faults).

No network: tokens come from :func:`mock_engines.make_plan`, the same deterministic plan the mock
engines render, so the cross-dialect oracle holds for this adapter too (same prompt, seed and
knobs → the same token texts and stop reason as every HTTP adapter against its mock engine).

Faults use the mock engines' catalogue IDs and ``<id>[;k=v;first=N;rate=P]`` syntax
(:class:`mock_engines.FaultRule`). Each is translated into the *event-level outcome* a correct
HTTP adapter produces for it (DESIGN.md mapping table), so the harness can exercise an
orchestrator's handling without sockets:

============================  ===================================================================
fault                         outcome
============================  ===================================================================
http.400 / http.422           ``error`` INVALID_PARAMS, not retriable, nothing before it
http.401                      ``error`` INTERNAL (auth), not retriable
http.404                      ``error`` POOL_UNAVAILABLE, not retriable
http.500                      ``error`` WORKER_RESET, retriable
http.503, engine.loading,     ``error`` POOL_UNAVAILABLE retriable — after the same pre-first-byte
engine.overload,              retries an HTTP adapter makes (``first=N`` lets a retry succeed);
conn.port_closed              ``http.429_retry_after`` adds ``retry_after_ms`` (param ``seconds``)
http.429_retry_after
conn.accept_then_close        ``error`` WORKER_RESET retriable (no retry: the request may have
                              reached the engine)
conn.slow_headers             ``started`` after ``delay_ms``; DECODE_TIMEOUT when that exceeds the
                              first-byte timeout
stall.before_first_byte       silence before the first token (DECODE_TIMEOUT past the timeout)
stall.midstream               silence after ``after_events`` tokens (DECODE_TIMEOUT past the
                              inter-chunk timeout, else the stream continues)
midstream.disconnect          ``after_events`` tokens then WORKER_RESET
midstream.disconnect_bytes    the tokens that fit in ``after_bytes`` UTF-8 bytes, then WORKER_RESET
midstream.cut_utf8            tokens before the first multi-byte character, then WORKER_RESET
frame.missing_terminal        every token, then WORKER_RESET (EOF before the terminal frame)
frame.malformed_json,         ``after_events`` tokens then ``error`` INTERNAL (protocol
frame.duplicate_index,        violation), not retriable
frame.out_of_order_index,
frame.oversized
stream.error_event            ``after_events`` tokens then ``error`` WORKER_RESET retriable
                              (an engine error without a more specific type)
http.wrong_content_type       ``error`` INTERNAL (protocol violation) before ``started``
frame.split_utf8,             benign: the normal stream
frame.split_every_byte,
stream.keepalive_flood
============================  ===================================================================

Faults are configured engine-wide (constructor ``faults=`` or :meth:`MockAdapter.set_faults`) or
per request (``TaskRequest.extra["fault"]``, a string or list of strings); the per-request one
wins, as the ``X-Mock-Fault`` header does on the mock engines. The stream runs through the same
lifecycle as the HTTP adapters' (``adapters._lifecycle``): this module supplies only its frame
source (the plan as frames, bent by each fault's event-level outcome from
``mock_engines.fault_outcome``), so cancellation, ``deadline_ms``, the first-byte and inter-chunk
timeouts and the terminal-event rules are theirs by construction.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, Final

import anyio

from llorch_conformance.mock_engines import FaultRule, fault_outcome

from ._lifecycle import FrameSource, StreamAdapter, StreamRun, StreamState
from ._observability import AdapterMetrics
from .api import (
    Capabilities,
    DeterminismLevel,
    TaskRequest,
    TokenEvent,
    WorkerError,
    WorkerHealth,
    WorkerProps,
)
from .http_util import HttpClientConfig, RetryPolicy, retry_async

__all__ = ["MOCK_FAULT_OUTCOMES", "MockAdapter"]

_LOG = logging.getLogger("llorch.adapters.mock")


def _outcomes() -> Mapping[str, str]:
    from llorch_conformance.mock_engines import FAULTS

    return {f.id: f.outcome(FaultRule.parse(f.id)).summary for f in FAULTS}


#: Fault id → one-line outcome (the table above as data, for reports and ``list`` commands),
#: read from the fault objects (``mock_engines.Fault.outcome``).
MOCK_FAULT_OUTCOMES: Final[Mapping[str, str]] = _outcomes()


def _parse_rules(items: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        out.append(item if isinstance(item, FaultRule) else FaultRule.parse(str(item)))
    return out


class _Rule:
    """An engine-wide rule with its ``first``/``rate`` counters (seeded, deterministic)."""

    __slots__ = ("applied", "rng", "rule")

    def __init__(self, rule: Any, seed: int, position: int) -> None:
        self.rule = rule
        self.applied = 0
        digest = hashlib.sha256(f"mock-adapter|{seed}|{position}|{rule}".encode()).digest()
        self.rng = random.Random(int.from_bytes(digest[:8], "big"))

    def select(self) -> bool:
        rule = self.rule
        if rule.first is not None and self.applied >= rule.first:
            return False
        if rule.rate is not None and self.rng.random() >= rule.rate:
            return False
        self.applied += 1
        return True


class _NoRetry(Exception):
    """A pre-stream error an HTTP adapter would not retry (it leaves ``retry_async`` at once)."""

    def __init__(self, error: WorkerError) -> None:
        super().__init__(error.message)
        self.error = error


class MockAdapter(StreamAdapter):
    """Deterministic in-process adapter with fault injection.

    ``base_url`` is accepted (and ignored) so the mock fits the ``(base_url, **config)``
    factory shape of :data:`adapters.BUILTIN_ADAPTERS`.
    """

    engine = "mock"
    cancel_note = "Cancel requested; mock stream stopped"

    def __init__(
        self,
        base_url: str = "mock://local",
        *,
        seed: int = 0,
        faults: Iterable[Any] = (),
        engine_version: str = "mock-1.0.0",
        ctx_max: int = 4096,
        slots: int = 4,
        token_delay_ms: float = 0.0,
        ready: bool = True,
        http: HttpClientConfig | None = None,
        retry: RetryPolicy | None = None,
        pool_id: str = "default",
        replica_id: str = "r0",
        sampler_profile_version: str | None = "v1",
        metrics: AdapterMetrics | None = None,
        logger: logging.Logger | None = None,
        **_ignored: Any,
    ) -> None:
        self._init_stream(
            http=http if http is not None else HttpClientConfig(),
            retry=retry,
            pool_id=pool_id,
            replica_id=replica_id,
            sampler_profile_version=sampler_profile_version,
            metrics=metrics,
            logger=logger if logger is not None else _LOG,
        )
        self.base_url = base_url
        self.seed = seed
        self._engine_version = engine_version
        self.ctx_max = self._ctx_max = ctx_max
        self.slots = slots
        self.token_delay_s = max(0.0, token_delay_ms) / 1000.0
        self.ready = ready
        self._rules: list[_Rule] = []
        self.set_faults(faults)

    # -- configuration --------------------------------------------------------------------
    def set_faults(self, faults: Iterable[Any]) -> None:
        """Replace the engine-wide fault rules (strings or ``FaultRule``; counters restart)."""
        self._rules = [_Rule(r, self.seed, n) for n, r in enumerate(_parse_rules(faults))]

    def _fault_for(self, request: TaskRequest) -> Any | None:
        raw = request.extra.get("fault")
        if raw:
            items = [raw] if isinstance(raw, str) else list(raw)
            rules = _parse_rules(items)
            if rules:
                return rules[0]
        for state in self._rules:
            if state.select():
                return state.rule
        return None

    # -- contract -------------------------------------------------------------------------
    async def health(self) -> WorkerHealth:
        """Ready unless told otherwise, or while an engine-wide ``engine.loading`` /
        ``conn.port_closed`` rule still has work to do (endless, or ``first=N`` not used up):
        an HTTP adapter would see the engine loading (or not listening) then, too."""
        live, ready = True, self.ready
        for state in self._rules:
            rule = state.rule
            outcome = fault_outcome(rule)
            if outcome.ready or rule.rate is not None:
                continue
            if rule.first is None or state.applied < rule.first:
                ready = False
                live = live and outcome.live
        return WorkerHealth(live=live, ready=ready)

    async def props(self) -> WorkerProps:
        return WorkerProps(slots_total=self.slots, slots_free=max(0, self.slots - len(self._tasks)))

    async def capabilities(self) -> Capabilities:
        return Capabilities(
            engine=self.engine,
            engine_version=self._engine_version or "unknown",
            sampler_profile_version=self.sampler_profile_version,
            ctx_max=self.ctx_max,
            max_tokens_out=self.ctx_max,
            slots=self.slots,
            supported_workloads=("completion",),
            features=("seed", "stop", "faults", "cancel:close"),
        )

    async def engine_version(self) -> str:
        return self._engine_version or "unknown"

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        self._validate(request)
        return self._run(request, _MockSource(self, request, self._fault_for(request)))

    # -- the stream -----------------------------------------------------------------------
    def _plan(self, request: TaskRequest) -> Any:
        from llorch_conformance.mock_engines import make_plan

        strict = request.determinism is DeterminismLevel.STRICT
        stop = request.extra.get("stop") or ()
        prompt = request.prompt if request.prompt is not None else "\n".join(request.inputs or ())
        return make_plan(
            prompt,
            seed=request.seed if request.seed is not None else self.seed,
            max_tokens=request.max_tokens,
            stop=[stop] if isinstance(stop, str) else list(stop),
            temperature=0.0 if strict else None,
            top_p=1.0 if strict else None,
        )


class _Head:
    """The first frame: the engine accepted the task (``started`` carries ``tokens_in``)."""


class _Terminal:
    """The last frame of a stream that ends normally."""


_HEAD: Final = _Head()
_TERMINAL: Final = _Terminal()


class _MockSource(FrameSource):
    """The mock's frames: its deterministic plan, bent by the fault's event-level outcome.

    ``open`` plays the outcome before the first byte (``Outcome.error``), with the same retries
    an HTTP adapter makes when ``Outcome.retried`` (every retry draws the fault again, as a new
    HTTP request would: ``first=N`` ends, a per-request fault stays). ``read`` hands out one
    frame at a time — the head, each token, the terminal frame — sleeping where
    ``Outcome.stall`` or ``token_delay_ms`` says, so the lifecycle's timeouts, deadline and
    ``cancel`` act on the mock exactly as on a socket; ``Outcome.end`` says how many tokens come
    and which error follows them.
    """

    __slots__ = (
        "adapter",
        "after_error",
        "fault",
        "plan",
        "position",
        "request",
        "stall",
        "stop_at",
    )

    def __init__(self, adapter: MockAdapter, request: TaskRequest, fault: Any) -> None:
        self.adapter = adapter
        self.request = request
        self.fault = fault
        self.log_fields = {"fault": fault.id if fault is not None else None}
        self.plan: Any = None
        self.position = -1  # -1: the head is next; then the index of the next token
        self.stop_at = 0
        self.after_error: WorkerError | None = None
        self.stall: Any = None

    async def open(self, run: StreamRun) -> WorkerError | None:
        current: list[Any] = [self.fault]
        adapter, request = self.adapter, self.request

        async def op(attempt: int) -> None:
            if attempt > 1:
                current[0] = adapter._fault_for(request)
            outcome = fault_outcome(current[0])
            err = outcome.error
            if err is None:
                return
            if not outcome.retried:
                raise _NoRetry(err)
            raise err

        try:
            await retry_async(
                op,
                adapter.retry_policy,
                idempotent=True,
                timeline=run.timeline,
                deadline=run.deadline,
            )
        except _NoRetry as wrapped:
            return wrapped.error
        except WorkerError as err:
            return err
        finally:
            self.fault = current[0]
        outcome = fault_outcome(self.fault)
        self.stall = outcome.stall
        self.plan = adapter._plan(request)
        self.stop_at, self.after_error = outcome.end(self.plan.tokens)
        return None

    async def read(self) -> Sequence[Any] | None:
        position, stall = self.position, self.stall
        if position < 0:
            self.position = 0
            if stall is not None and stall.where != "after_tokens":
                # A late head, or a head without a body byte: no good frame yet, no started.
                self.stall = None
                await anyio.sleep(stall.delay_s)
            return (_HEAD,)
        if stall is not None and position == stall.after:
            self.stall = None  # one pause, then the stream goes on (its own silence budget)
            await anyio.sleep(stall.delay_s)
            return ()
        if position >= self.stop_at:
            if self.after_error is not None:
                raise self.after_error
            return (_TERMINAL,)
        delay = self.adapter.token_delay_s
        if delay:
            await anyio.sleep(delay)
        else:
            await anyio.lowlevel.checkpoint()  # the deadline and cancel are seen per token
        self.position = position + 1
        return (self.plan.tokens[position],)

    def parse(self, frame: Any, st: StreamState) -> str | None:
        if frame.__class__ is str:
            return frame
        plan = self.plan
        if frame is _HEAD:
            st.prompt_tokens = plan.prompt_tokens
            return None
        st.done = True
        st.stop_reason = st.engine_stop_reason = plan.stop_reason
        st.stop_string = plan.stop_string or None
        st.completion_tokens = plan.completion_tokens
        return None
