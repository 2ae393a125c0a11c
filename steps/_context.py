"""The per-scenario context the steps share, and the async machinery they drive through a portal.

Steps are sync (pytest-bdd does not await); every adapter call runs on one anyio event loop in a
blocking portal (``anyio.from_thread.start_blocking_portal``), always under ``anyio.fail_after``
so a hanging adapter fails the scenario instead of the run. Waiting on the engine uses the
journal's ``wait_for_sync`` with a bounded timeout — never a fixed sleep.

Verdicts: a step that finds the adapter wrong calls :meth:`ScenarioContext.fail`, which raises
:class:`~adapters.api.ConformanceFailure` naming the requirement(s) the failed check proves. A
check lists the IDs it proves, most specific first; those the scenario carries are named, and
when the scenario carries none of them the check's first ID is (an index bug found by the TLS
scenario fails the stream grammar requirement, never the TLS ones). The scenario's other tags
are then not proven by this run, not failed. Anything else that goes wrong in a step is a
harness error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import anyio
from anyio.from_thread import BlockingPortal

from llorch_conformance.adapters.api import (
    ConformanceFailure,
    HarnessError,
    TaskRequest,
    TokenEvent,
)
from llorch_conformance.conformance.plugin import PER_RUN, Unsupported

__all__ = [
    "HARNESS_POOL_ID",
    "HARNESS_REPLICA_ID",
    "EnginePool",
    "LogCapture",
    "ScenarioContext",
    "StreamRun",
    "collect_stream",
]

#: Upper bound for one stream in the harness; a stream still open after this is a hang.
STREAM_LIMIT_S = 20.0
#: Upper bound for one control call (health, props, ...).
CALL_LIMIT_S = 10.0
#: The pool and replica every adapter the harness builds belongs to (factory config keys).
HARNESS_POOL_ID = "llorch-pool"
HARNESS_REPLICA_ID = "llorch-replica-0"


@dataclass
class StreamRun:
    """What the caller saw of one ``submit``: timed events and how it ended."""

    request: TaskRequest
    events: list[tuple[float, TokenEvent]] = field(default_factory=list)
    raised: BaseException | None = None
    hung: bool = False
    t_start: float = 0.0
    t_end: float = 0.0
    cancel_called_at: float | None = None
    cancel_returned_at: float | None = None
    cancel_error: BaseException | None = None
    tokens_after_cancel: int = 0
    #: The adapter's retry timeline for this task (proof-bundle evidence), when it keeps one.
    retries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def kinds(self) -> list[str]:
        return [e.kind for _, e in self.events]

    @property
    def tokens(self) -> list[str]:
        return [str(e.data.get("t", "")) for _, e in self.events if e.kind == "token"]

    @property
    def terminal(self) -> TokenEvent | None:
        for _, e in reversed(self.events):
            if e.kind in ("end", "error"):
                return e
        return None

    def started_field(self, key: str) -> Any:
        """``key`` of the first ``started`` event's data (``None`` without one)."""
        started = next((e for _, e in self.events if e.kind == "started"), None)
        return None if started is None else started.data.get(key)

    def terminal_field(self, key: str) -> Any:
        """``key`` of the terminal event's data (``None`` without one)."""
        term = self.terminal
        return None if term is None else term.data.get(key)

    def first_token_time(self) -> float | None:
        return next((t for t, e in self.events if e.kind == "token"), None)

    def terminal_time(self) -> float | None:
        return next((t for t, e in reversed(self.events) if e.kind in ("end", "error")), None)

    def transcript(self) -> list[dict[str, Any]]:
        return [
            {"t_ms": round((t - self.t_start) * 1000.0, 1), "kind": e.kind, "data": e.data}
            for t, e in self.events
        ]


async def collect_stream(
    adapter: Any,
    request: TaskRequest,
    *,
    limit_s: float = STREAM_LIMIT_S,
    cancel_after: int | None = None,
    close_after: int | None = None,
) -> StreamRun:
    """Drive one ``submit`` to its end (or cancel/close it after N tokens), bounded in time."""
    run = StreamRun(request)
    run.t_start = time.monotonic()
    try:
        agen = adapter.submit(request)
    except Exception as exc:  # InvalidTaskRequest is allowed before anything is sent
        run.raised = exc
        run.t_end = time.monotonic()
        return run
    n_tokens = 0

    async def do_cancel() -> None:
        run.cancel_called_at = time.monotonic()
        try:
            with anyio.fail_after(CALL_LIMIT_S):
                await adapter.cancel(request.task_id)
        except BaseException as exc:
            run.cancel_error = exc
        run.cancel_returned_at = time.monotonic()

    try:
        with anyio.fail_after(limit_s):
            async with anyio.create_task_group() as tg:
                async for ev in agen:
                    now = time.monotonic()
                    run.events.append((now, ev))
                    if ev.kind == "token":
                        n_tokens += 1
                        if run.cancel_returned_at is not None:
                            run.tokens_after_cancel += 1
                        if cancel_after is not None and n_tokens == cancel_after:
                            tg.start_soon(do_cancel)
                        if close_after is not None and n_tokens == close_after:
                            break
                if close_after is not None:
                    aclose = getattr(agen, "aclose", None)
                    if aclose is not None:
                        await aclose()
    except TimeoutError:
        run.hung = True
    except Exception as exc:  # an adapter must not raise after submit; a step judges it
        run.raised = exc
    finally:
        aclose = getattr(agen, "aclose", None)
        if aclose is not None:
            with anyio.move_on_after(2.0, shield=True):
                with contextlib.suppress(Exception):
                    await aclose()
    run.t_end = time.monotonic()
    return run


class LogCapture(logging.Handler):
    """Collects every log record of the scenario (all loggers, DEBUG and up)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._old_level: int | None = None

    #: Loggers of the harness itself (pytest-bdd logs step names, which may quote a test key)
    #: and of the engine side; everything else — the adapter, its HTTP client — is judged.
    IGNORED = (
        "pytest_bdd",
        "_pytest",
        "pytest",
        "llorch.conformance",
        "llorch.mock_engines",
        "asyncio",
    )

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(self.IGNORED):
            return
        self.records.append(record)

    def install(self) -> None:
        root = logging.getLogger()
        self._old_level = root.level
        root.setLevel(logging.DEBUG)
        root.addHandler(self)

    def remove(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self)
        if self._old_level is not None:
            root.setLevel(self._old_level)

    @staticmethod
    def fields(record: logging.LogRecord) -> dict[str, Any]:
        """Structured fields of a record: its ``llorch`` mapping, plain attributes, a JSON message."""
        out: dict[str, Any] = {}
        msg = record.getMessage()
        if msg.startswith("{"):
            try:
                parsed = json.loads(msg)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                out.update(parsed)
        for k, v in record.__dict__.items():
            if k not in _STD_ATTRS and not k.startswith("_"):
                out[k] = v
        nested = record.__dict__.get("llorch")
        if isinstance(nested, Mapping):
            out.update(nested)
        return out

    def texts(self) -> list[str]:
        """Everything a log sink could write: message, structured fields, exception text."""
        out: list[str] = []
        for r in self.records:
            out.append(r.getMessage())
            out.append(json.dumps(self.fields(r), default=str))
            if r.exc_info and r.exc_info[1] is not None:
                out.append(repr(r.exc_info[1]))
            if r.exc_text:
                out.append(r.exc_text)
        return out


_STD_ATTRS = frozenset(logging.LogRecord("x", 0, "x", 0, "x", None, None).__dict__) | {
    "message",
    "asctime",
}


class EnginePool:
    """Mock engines of one test session, started on first use and stopped at the end.

    Keyed by ``(dialect, variant)``; scenarios reset the engine (faults, journal) before use, so
    one engine per worker process serves every scenario sequentially (pytest-xdist runs one test
    at a time per worker; nothing is shared across workers).
    """

    def __init__(self, seed: int, live: Mapping[str, str] | None = None) -> None:
        self.seed = seed
        #: dialect → live engine URL (``run --engine-url``): those dialects get a fault proxy
        #: (:mod:`mock_engines._proxy`) in front of the live engine instead of a mock engine.
        self.live: dict[str, str] = dict(live or {})
        self._engines: dict[tuple[str, str], Any] = {}
        self._cms: list[Any] = []

    def get(self, dialect: str, variant: str = "main", **options: Any) -> Any:
        key = (dialect, variant)
        handle = self._engines.get(key)
        if handle is None:
            cm = self.new(dialect, **options)
            handle = cm.__enter__()
            self._cms.append(cm)
            self._engines[key] = handle
        return handle

    def new(self, dialect: str, **options: Any) -> Any:
        """A fresh (not yet started) engine handle: a mock, or a proxy for a live dialect."""
        url = self.live.get(dialect)
        if url is not None:
            from llorch_conformance.mock_engines import run_fault_proxy

            return run_fault_proxy(dialect, url, seed=self.seed)
        from llorch_conformance.mock_engines import run_mock_engine

        return run_mock_engine(dialect, seed=self.seed, **options)

    def close(self) -> None:
        while self._cms:
            cm = self._cms.pop()
            try:
                cm.__exit__(None, None, None)
            except Exception:
                logging.getLogger("llorch.conformance").exception("stopping a mock engine failed")
        self._engines.clear()


class ScenarioContext:
    """Everything one scenario run knows: target, engine, adapter, request, runs, evidence."""

    def __init__(
        self,
        *,
        target: Any,
        requirements: list[str],
        tags: set[str],
        portal: BlockingPortal,
        engines: EnginePool,
        seed: int,
        getfixturevalue: Callable[[str], Any],
        scenario_key: str = "",
    ) -> None:
        self.target = target
        self.requirements = requirements
        self.tags = tags
        self.portal = portal
        self.engines = engines
        self.seed = seed
        self.scenario_key = scenario_key
        self._getfixturevalue = getfixturevalue
        self.engine: Any = None
        self.adapter: Any = None
        self.adapter_config: dict[str, Any] = {}
        self.timeouts_s: float | None = None
        self.tls_ca: str | None = None
        self.max_attempts: int | None = None
        self.api_key: str | None = None
        self.env_secrets: list[str] = []
        self.faults: list[str] = []
        self.request_fields: dict[str, Any] = {}
        #: ``TaskRequest.extra`` of the scenario's task (stop, endpoint, engine_params).
        self.request_extra: dict[str, Any] = {}
        self.runs: list[StreamRun] = []
        self.replica_runs: list[StreamRun] = []
        self.replica_journals: list[Any] = []
        self.logs = LogCapture()
        self.notes: dict[str, Any] = {}  # JSON-able: goes into the evidence
        self.scratch: dict[str, Any] = {}  # live objects the steps hand to each other
        self.surface: dict[str, Any] = {}
        self._extra_cleanup: list[Callable[[], None]] = []
        self._closed_adapters: list[Any] = []

    # -- identity ---------------------------------------------------------------------------
    @property
    def per_run(self) -> bool:
        return self.target is PER_RUN

    @property
    def dialect(self) -> str:
        return str(self.target.dialect)

    @property
    def live(self) -> bool:
        return bool(getattr(self.target, "live", False))

    @property
    def in_process(self) -> bool:
        """A target without an engine (the in-process mock adapter)."""
        return not self.per_run and self.dialect == "mock"

    # -- verdicts ---------------------------------------------------------------------------
    def fail(self, title: str, detail: str = "", ids: Iterable[str] = ()) -> NoReturn:
        """Raise the failure of the requirement(s) the failed check proves (module docstring)."""
        proven = list(dict.fromkeys(ids))
        named = (
            [i for i in proven if i in self.requirements]
            or proven[:1]
            or list(self.requirements)
            or ["?"]
        )
        exc = ConformanceFailure(named[0], title, detail)
        exc.requirements = named  # type: ignore[attr-defined]
        raise exc

    def check(self, cond: object, title: str, detail: str = "", ids: Iterable[str] = ()) -> None:
        if not cond:
            self.fail(title, detail, ids)

    def unsupported(self, reason: str) -> NoReturn:
        raise Unsupported(reason)

    # -- engine -----------------------------------------------------------------------------
    def need_engine(self, what: str = "fault control and the engine journal") -> Any:
        """The mock engine; ``unsupported`` for live engines and in-process adapters."""
        if getattr(self.target, "orchestrator", False):
            self.unsupported(
                f"orchestrator at {self.target.orchestrator_url}: no {what} behind a black-box "
                "orchestrator"
            )
        if self.live and self.dialect not in self.engines.live:
            self.unsupported(f"live engine at {self.target.engine_url}: no {what}")
        if self.in_process:
            self.unsupported(f"in-process adapter {self.target.name!r}: no engine journal")
        if self.engine is None:
            # a live engine is reached through the fault proxy in front of it
            self.engine = self.engines.get(self.dialect)
            self.engine.reset()
        return self.engine

    @property
    def proxied(self) -> bool:
        """A live engine behind the fault proxy: faults and journal work, the plan is observed."""
        return self.live and self.dialect in self.engines.live

    def _private_engine(self) -> Any:
        if self.live or self.in_process:
            self.need_engine()
        engine = self.engines.new(self.dialect)
        engine.start()
        self.add_cleanup(engine.stop)
        return engine

    def base_url(self) -> str:
        if getattr(self.target, "orchestrator", False):
            return str(self.target.orchestrator_url)
        if self.live and not self.proxied:
            return str(self.target.engine_url)
        if self.in_process:
            return "mock://local"
        return str(self.need_engine().base_url)

    def set_faults(self, faults: list[str]) -> None:
        self.faults = faults
        if self.in_process:
            adapter = self.get_adapter()
            setter = getattr(adapter, "set_faults", None)
            if setter is None:
                self.unsupported("in-process adapter without set_faults: no fault control")
            setter(faults)
            return
        if any(_engine_state_fault(f) for f in faults):
            # Faults that change the engine's state (loading, closed port) get a private engine,
            # so no later scenario inherits the state.
            self.engine = self._private_engine()
        engine = self.need_engine()
        self.check_fault_applies(faults)
        engine.set_faults(faults)

    def check_fault_applies(self, faults: list[str]) -> None:
        from llorch_conformance.mock_engines import FaultRule

        for text in faults:
            rule = FaultRule.parse(text)
            spec = _fault_spec(rule.id)
            applies = tuple(getattr(spec, "applies_to", ()) or ())
            if applies and self.dialect not in applies:
                import pytest

                pytest.skip(
                    f"not applicable: fault {rule.id} does not apply to dialect {self.dialect}"
                )
            check = getattr(self.engine, "check_applies", None)
            if check is not None:
                try:
                    check(rule)
                except Exception as exc:
                    import pytest

                    pytest.skip(f"not applicable: {exc}")

    # -- adapter ----------------------------------------------------------------------------
    def build_config(self, **overrides: Any) -> dict[str, Any]:
        """The harness's adapter config convention (keys a factory may ignore)."""
        from llorch_conformance.adapters.http_util import HttpClientConfig, RetryPolicy

        t = self.timeouts_s
        http = HttpClientConfig(
            connect_timeout_s=2.0,
            first_byte_timeout_s=t if t is not None else 5.0,
            inter_chunk_timeout_s=t if t is not None else 5.0,
            total_timeout_s=5.0,
        )
        if self.tls_ca is not None:
            http = dataclasses.replace(http, verify=self.tls_ca)
        retry = RetryPolicy(seed=self.seed, max_attempts=self.max_attempts or 4)
        # pool_id/replica_id: what an adapter labels its logs and metrics with (ADAPT-3004);
        # a factory must take them (docs/writing-an-adapter.md), the harness always passes them.
        config: dict[str, Any] = {
            "http": http,
            "retry": retry,
            "pool_id": HARNESS_POOL_ID,
            "replica_id": HARNESS_REPLICA_ID,
        }
        model = getattr(self.engine, "model", None)
        if model:
            config["model"] = model
        elif self.dialect == "openai":
            config["model"] = "mock-model"
        if self.api_key:
            config["api_key"] = self.api_key
        elif self.api_key is None and self.dialect == "openai":
            # The OpenAI adapter requires a key; the harness gives a throwaway one.
            config["api_key"] = "sk-llorch-harness-default-key"
        config.update(self.adapter_config)
        config.update(overrides)
        return config

    def make_adapter(self, base_url: str | None = None, **overrides: Any) -> Any:
        url = base_url if base_url is not None else self.base_url()
        try:
            adapter = self.target.factory(url, **self.build_config(**overrides))
        except Exception as exc:
            if self.api_key == "" and "api_key" in str(exc):
                self.unsupported(f"adapter {self.target.name!r} requires an API key: {exc}")
            raise HarnessError(f"adapter factory for {self.target.name!r} failed: {exc}") from exc
        self._closed_adapters.append(adapter)
        return adapter

    def get_adapter(self) -> Any:
        if self.adapter is None:
            self.adapter = self.make_adapter()
        return self.adapter

    def declared_unsupported(self) -> tuple[str, ...]:
        """What the adapter declares it does not support, read from a throwaway instance.

        Throwaway because scenarios configure the adapter (API key, TLS, timeouts) in their
        Given steps, after this check.
        """
        probe = self.make_adapter()
        try:
            caps = self.call(probe.capabilities)
        finally:
            aclose = getattr(probe, "aclose", None)
            if aclose is not None:
                self.call(aclose)
            self._closed_adapters.remove(probe)
        return tuple(getattr(caps, "declared_unsupported", ()) or ())

    # -- async bridging ---------------------------------------------------------------------
    def call(self, fn: Callable[..., Any], *args: Any, limit_s: float = CALL_LIMIT_S) -> Any:
        async def bounded() -> Any:
            with anyio.fail_after(limit_s):
                return await fn(*args)

        try:
            return self.portal.call(bounded)
        except TimeoutError:
            self.fail(
                f"{getattr(fn, '__name__', 'call')} did not return within {limit_s:g} s",
                ids=("ADAPT-3005",),
            )

    # -- requests ---------------------------------------------------------------------------
    def make_request(self, **overrides: Any) -> TaskRequest:
        fields: dict[str, Any] = {
            "task_id": f"t-{uuid.uuid4().hex[:12]}",
            "session_id": "s-llorch",
            "workload": "completion",
            "model_ref": "hf:llorch/mock-model",
            "engine": self._orchestrator_engine() or _engine_for(self.dialect),
            "ctx": 4096,
            "priority": "interactive",
            "max_tokens": 8,
            "deadline_ms": 30_000,
            "prompt": "hello",
            "seed": self.task_seed,
        }
        fields.update(self.request_fields)
        fields.update(overrides)
        window = getattr(self.need_engine(), "ctx_size", None) if self.proxied else None
        if isinstance(window, int) and "ctx" not in overrides and "ctx" not in self.request_fields:
            # a live engine's context window is what it is: ask for no more than it has
            fields["ctx"] = min(int(fields["ctx"]), window)
            if isinstance(fields.get("max_tokens"), int) and fields["max_tokens"] > fields["ctx"]:
                self.unsupported(
                    f"live engine at {self.target.engine_url}: its context window ({window} "
                    f"tokens) is smaller than this scenario's max_tokens ({fields['max_tokens']})"
                )
        request = TaskRequest.from_dict(fields)
        if self.request_extra:
            request = dataclasses.replace(request, extra=dict(self.request_extra))
        return request

    @property
    def task_seed(self) -> int:
        """The scenario's own task seed: derived from the run seed and the scenario, never the
        engines' default seed (so a dropped seed shows; ``steps._oracle``)."""
        from ._oracle import derive_task_seed

        return derive_task_seed(self.seed, self.scenario_key or "|".join(self.requirements))

    def expected_plan(self, request: TaskRequest, dialect: str | None = None) -> Any:
        """The independent oracle's plan for ``request`` (``steps._oracle.expected_plan``)."""
        from ._oracle import expected_plan

        return expected_plan(request, dialect or self.dialect, self.seed)

    def _orchestrator_engine(self) -> str | None:
        engine: str | None = self.scratch.get("orchestrator_engine")
        return engine

    def learn_orchestrator_engine(self) -> None:
        """Read the engine an orchestrator target's pool lists (``/v1/capabilities``), so its
        tasks name the engine that pool serves. Called from sync code (the fixture), never
        inside the portal: ``make_request`` also runs inside async step helpers."""
        if not getattr(self.target, "orchestrator", False):
            return
        try:
            caps = self.call(self.get_adapter().capabilities)
            engine = str(getattr(caps, "engine", ""))
        except Exception:  # the scenario's own steps judge the orchestrator's answers
            engine = ""
        if engine in _ENGINES:
            self.scratch["orchestrator_engine"] = engine

    def stream(self, adapter: Any = None, **kwargs: Any) -> StreamRun:
        adapter = adapter if adapter is not None else self.get_adapter()
        request = self.make_request()
        limit = kwargs.pop("limit_s", STREAM_LIMIT_S)
        run: StreamRun = self.portal.call(
            lambda: collect_stream(adapter, request, limit_s=limit, **kwargs)
        )
        run.retries = _retry_records(adapter, request.task_id)
        self.runs.append(run)
        return run

    @property
    def last(self) -> StreamRun:
        if not self.runs:
            raise HarnessError("no stream was run in this scenario (a When step is missing)")
        run = self.runs[-1]
        if self.proxied and self.faults:
            self._fault_applied(run)
        return run

    def _fault_applied(self, run: StreamRun) -> None:
        """A live engine's own output may leave a fault no room (fewer tokens than the
        scenario planned, no JSON frame ...): the fault proxy says so, and the scenario, which
        cannot judge the adapter without its fault, is unsupported with that reason."""
        from llorch_conformance.mock_engines import NOT_APPLIED

        for e in self.journal().entries:
            note = e.fault_note or ""
            if e.fault and e.t_received >= run.t_start and NOT_APPLIED in note:
                self.unsupported(
                    f"live engine at {self.target.engine_url}: fault {e.fault} could not be "
                    f"applied to the engine's own answer ({note[note.index(NOT_APPLIED) :]})"
                )

    # -- journal helpers ---------------------------------------------------------------------
    def journal(self) -> Any:
        return self.need_engine().journal

    def generation_entries(self) -> list[Any]:
        return [e for e in self.journal().entries if getattr(e, "generation", False)]

    def wait_journal(self, predicate: Callable[[Any], Any], timeout: float, what: str) -> Any:
        try:
            return self.journal().wait_for_sync(predicate, timeout)
        except TimeoutError:
            return None

    # -- cleanup and evidence ----------------------------------------------------------------
    def add_cleanup(self, fn: Callable[[], None]) -> None:
        self._extra_cleanup.append(fn)

    def close(self) -> None:
        for adapter in self._closed_adapters:
            aclose = getattr(adapter, "aclose", None)
            if aclose is not None:
                try:
                    self.call(aclose)
                except BaseException:
                    logging.getLogger("llorch.conformance").debug(
                        "adapter aclose failed", exc_info=True
                    )
        self._closed_adapters.clear()
        while self._extra_cleanup:
            fn = self._extra_cleanup.pop()
            try:
                fn()
            except Exception:
                logging.getLogger("llorch.conformance").debug("cleanup failed", exc_info=True)
        if self.engine is not None:
            with contextlib.suppress(Exception):
                self.engine.set_faults([])

    def _target_token(self) -> str | None:
        """The orchestrator target's API token (read from its variable), so evidence redacts it."""
        env = getattr(self.target, "token_env", None) if self.target is not PER_RUN else None
        if not isinstance(env, str):
            return None
        return os.environ.get(env) or None

    def _budgets(self) -> dict[str, Any]:
        """The time and attempt budgets the adapter was configured with (failure reports quote
        them next to the injected fault: "DECODE_TIMEOUT expected within 0.3 s")."""
        try:
            config = self.build_config()
        except Exception:  # evidence must never break a verdict
            return {}
        http, retry = config.get("http"), config.get("retry")
        out: dict[str, Any] = {}
        for name in ("connect_timeout_s", "first_byte_timeout_s", "inter_chunk_timeout_s"):
            value = getattr(http, name, None)
            if isinstance(value, int | float):
                out[name] = value
        attempts = getattr(retry, "max_attempts", None)
        if isinstance(attempts, int):
            out["max_attempts"] = attempts
        return out

    def evidence(self) -> dict[str, Any]:
        """Redacted, JSON-able evidence a reviewer can read without rerunning anything."""
        from llorch_conformance.adapters.http_util import redact

        secrets = [s for s in (self.api_key, *self.env_secrets, self._target_token()) if s]
        ev: dict[str, Any] = {
            "target": None if self.per_run else self.target.describe(),
            "seed": self.seed,
            "faults": self.faults,
            "request": self.runs[-1].request.to_dict() if self.runs else None,
            "streams": [
                {
                    "transcript": r.transcript()[:400],
                    "raised": None if r.raised is None else repr(r.raised),
                    "hung": r.hung,
                    "duration_ms": round((r.t_end - r.t_start) * 1000.0, 1),
                    "tokens_after_cancel": r.tokens_after_cancel,
                    # monotonic start, comparable with the journal's times (proof-bundle timings)
                    "t0": r.t_start,
                }
                for r in (self.runs + self.replica_runs)[-4:]
            ],
            "retry_timelines": [r.retries for r in (self.runs + self.replica_runs)[-4:]],
            "notes": self.notes,
            "budgets": self._budgets(),
            "fault_descriptions": _fault_descriptions(self.faults),
        }
        if self.engine is not None:
            try:
                entries = self.engine.journal.entries[-20:]
                ev["journal"] = [_entry_summary(e) for e in entries]
            except Exception:
                ev["journal"] = "unavailable"
        ev["logs"] = [
            {
                "level": r.levelname,
                "logger": r.name,
                "message": r.getMessage()[:300],
                "fields": _scalar_fields(LogCapture.fields(r)),
            }
            for r in self.logs.records[-30:]
        ]
        text = json.dumps(ev, default=str, ensure_ascii=False)
        return dict(json.loads(redact(text, secrets)))


def _fault_descriptions(faults: Iterable[str]) -> dict[str, str]:
    """What each injected fault does, from the mock engines' catalogue (failure reports quote
    it next to the fault spec)."""
    try:
        from llorch_conformance.mock_engines import fault_catalogue

        by_id = {f.id: f.description for f in fault_catalogue()}
    except Exception:  # evidence must never break a verdict
        return {}
    out: dict[str, str] = {}
    for spec in faults:
        fid = str(spec).split(";", 1)[0].strip()
        if fid in by_id:
            out[str(spec)] = by_id[fid]
    return out


def _scalar_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A log record's structured fields as evidence: scalars only, bounded (the report shows
    which fields a record carried, e.g. for the logging contract's checks)."""
    out: dict[str, Any] = {}
    for k, v in list(fields.items())[:40]:
        if v is None or isinstance(v, bool | int | float):
            out[str(k)] = v
        elif isinstance(v, str):
            out[str(k)] = v[:200]
    return out


def _engine_state_fault(text: str) -> bool:
    """Whether the fault changes the engine's state (loading, closed port): the fault object
    says so (``mock_engines.Fault.engine_state``); an unknown ID is reported by the engine."""
    from llorch_conformance.mock_engines import FAULT_IDS, FaultRule

    fid = text.split(";", 1)[0].strip()
    return fid in FAULT_IDS and FaultRule.parse(fid).fault.engine_state


#: Wire frames kept per journal entry in the evidence (the proof bundle's wire.ndjson).
_FRAMES_KEPT = 500


def _retry_records(adapter: Any, task_id: str) -> list[dict[str, Any]]:
    """The adapter's retry timeline of one task as JSON-able records (empty when it keeps none)."""
    getter = getattr(adapter, "retry_timeline", None)
    if not callable(getter):
        return []
    try:
        timeline = getter(task_id)
        records = list(timeline.to_list()) if timeline is not None else []
    except Exception:  # evidence must never break a verdict
        return []
    p = getattr(adapter, "retry_policy", None)
    if p is not None and records:
        policy = {
            k: getattr(p, k, None)
            for k in ("base_ms", "multiplier", "cap_ms", "max_attempts", "seed")
        }
        records = [{**r, "policy": policy} for r in records]
    return records


def _entry_summary(e: Any) -> dict[str, Any]:
    d = e.to_dict(frames=False) if hasattr(e, "to_dict") else {"repr": repr(e)}
    frames = getattr(e, "frames", None)
    if isinstance(frames, list):
        d["frames"] = [bytes(f).decode("utf-8", "replace") for f in frames[:_FRAMES_KEPT]]
    body = d.get("body")
    if isinstance(body, str) and len(body) > 400:
        d["body"] = body[:400] + "…"
    return dict(d)


def _fault_spec(fault_id: str) -> Any:
    """The fault's catalogue entry with ``applies_to`` filled in by the mock engines."""
    from llorch_conformance import mock_engines

    for spec in mock_engines.fault_catalogue():
        if spec.id == fault_id:
            return spec
    return None


_ENGINES = frozenset({"llamacpp", "vllm", "tgi", "triton", "openai", "mock"})


def _engine_for(dialect: str) -> str:
    return dialect if dialect in ("llamacpp", "vllm", "tgi", "triton", "openai", "mock") else "mock"
