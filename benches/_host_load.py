"""Load-and-faults driver: many concurrent tasks through AdapterHost → adapters → mock engines.

Shared by the invariant test (``tests/host/test_load.py``) and the benchmark
(``benches/bench_host_load.py``). Three replicas of one pool, each a real adapter over a real mock
engine on a loopback socket, with faults mixed in at seeded rates:

* ``a`` — vLLM mock: 429 with Retry-After at 10 %, mid-stream disconnects at 10 %;
* ``b`` — llama.cpp mock: mid-stream stalls at 10 % (longer than the adapter's inter-chunk
  timeout, so they surface as DECODE_TIMEOUT);
* ``c`` — vLLM mock that fails its first 10 generation requests with 503 (the breaker must open) and then
  recovers (the breaker must close again).

Some tasks are cancelled by the caller right after their first token. For every task the driver
records the events, whether/when it cancelled, and checks the invariants the issue names.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import anyio

from llorch_conformance.adapters import create_adapter
from llorch_conformance.adapters.api import TaskRequest, TokenEvent, check_stream, joined_text
from llorch_conformance.adapters.host import AdapterHost, BreakerConfig, BreakerState
from llorch_conformance.adapters.http_util import HttpClientConfig, RetryPolicy
from llorch_conformance.mock_engines import make_plan, run_mock_engine

__all__ = ["LoadReport", "run_load"]


@dataclass
class LoadReport:
    tasks: int
    wall_s: float
    outcomes: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    tokens: int = 0
    cancelled: int = 0
    tokens_after_cancel: int = 0
    breaker_transitions: list[str] = field(default_factory=list)
    breaker_final: str = ""

    @property
    def tasks_per_s(self) -> float:
        return self.tasks / self.wall_s if self.wall_s else 0.0


def _request(n: int) -> TaskRequest:
    return TaskRequest.from_dict(
        {
            "task_id": f"load-{n}",
            "session_id": f"s-{n % 17}",
            "workload": "completion",
            "model_ref": "m:v0",
            "engine": "vllm",
            "ctx": 2048,
            "priority": "interactive" if n % 3 else "batch",
            "prompt": f"Tell me about item {n}",
            "max_tokens": 12,
            "deadline_ms": 20_000,
            "seed": n,
        }
    )


def run_load(n_tasks: int = 200, *, cancel_every: int = 10, seed: int = 1) -> LoadReport:
    """Run the scenario; returns counts and every invariant violation found (empty = clean)."""
    http = HttpClientConfig(
        connect_timeout_s=2, first_byte_timeout_s=5, inter_chunk_timeout_s=0.25, total_timeout_s=10
    )
    # The adapters do not retry: the host retries before the first token (and may fail over), so
    # every pre-token failure reaches the host and its breakers.
    retry = RetryPolicy(max_attempts=1, seed=seed)
    with ExitStack() as stack:
        a = stack.enter_context(
            run_mock_engine(
                "vllm",
                seed=seed,
                model="m",
                faults=["http.429_retry_after;seconds=0;rate=0.1", "midstream.disconnect;rate=0.1"],
            )
        )
        b = stack.enter_context(
            run_mock_engine(
                "llamacpp", seed=seed, faults=["stall.midstream;delay_ms=1000;rate=0.1"]
            )
        )
        c = stack.enter_context(
            run_mock_engine("vllm", seed=seed, model="m", faults=["http.503;first=10"])
        )
        return anyio.run(_drive, n_tasks, cancel_every, seed, http, retry, (a, b, c))


async def _drive(
    n_tasks: int,
    cancel_every: int,
    seed: int,
    http: HttpClientConfig,
    retry: RetryPolicy,
    engines: tuple[Any, Any, Any],
) -> LoadReport:
    a, b, c = engines
    host = AdapterHost(
        retry_policy=RetryPolicy(base_ms=5, cap_ms=50, max_attempts=4, seed=seed),
        breaker=BreakerConfig(failure_threshold=3, open_s=0.2),
        health_ttl_s=0.05,
    )
    adapters = [
        create_adapter("vllm", a.base_url, http=http, retry=retry, model="m", replica_id="a"),
        create_adapter("llamacpp", b.base_url, http=http, retry=retry, replica_id="b"),
        create_adapter("vllm", c.base_url, http=http, retry=retry, model="m", replica_id="c"),
    ]
    for name, ad in zip("abc", adapters, strict=True):
        host.bind("p", name, ad)
    report = LoadReport(tasks=n_tasks, wall_s=0.0)
    rng = random.Random(seed)
    order = list(range(n_tasks))
    rng.shuffle(order)

    async def one(n: int) -> None:
        req = _request(n)
        events: list[TokenEvent] = []
        cancel_returned_at: int | None = None
        async for ev in host.submit("p", req):
            events.append(ev)
            if (
                ev.kind == "token"
                and cancel_every
                and n % cancel_every == 0
                and cancel_returned_at is None
            ):
                await host.cancel("p", req.task_id)
                cancel_returned_at = len(events)
        problems = check_stream(events)
        report.violations.extend(f"{req.task_id}: {p}" for p in problems)
        if cancel_returned_at is not None:
            report.cancelled += 1
            late = sum(1 for e in events[cancel_returned_at:] if e.kind == "token")
            report.tokens_after_cancel += late
            if late:
                report.violations.append(f"{req.task_id}: {late} token(s) after cancel returned")
        report.tokens += sum(1 for e in events if e.kind == "token")
        last = events[-1] if events else None
        if last is not None and last.kind == "end" and cancel_returned_at is None:
            # Nothing lost or duplicated: the text is the plan's, token for token (the plan is
            # the same in every dialect — the cross-dialect oracle).
            plan = make_plan(req.prompt or "", seed=n, max_tokens=req.max_tokens)
            if joined_text(events) != plan.text:
                report.violations.append(f"{req.task_id}: text differs from the plan")
        if last is None:
            report.outcomes["lost"] += 1
        elif last.kind == "end":
            report.outcomes["cancelled" if cancel_returned_at is not None else "end"] += 1
        else:
            report.outcomes[f"error:{last.data.get('code')}"] += 1

    t0 = time.perf_counter()
    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            for n in order:
                tg.start_soon(one, n)
        # Let the recovering replica prove it closes again: probe until the breaker is closed.
        # Bounded by time, not by count: on a loaded machine each half-open trial takes longer.
        probe_until = anyio.current_time() + 30.0
        k = 0
        while anyio.current_time() < probe_until:
            if host.breaker("p", "c").state is BreakerState.CLOSED and any(
                "open" in t for t in _transitions(host)
            ):
                break
            async for _ in host.submit("p", _request(n_tasks + k)):
                pass
            k += 1
            await anyio.sleep(0.02)
    report.wall_s = time.perf_counter() - t0
    report.breaker_transitions = _transitions(host)
    report.breaker_final = host.breaker("p", "c").state.value
    for ad in adapters:
        close = getattr(ad, "aclose", None)
        if close is not None:
            await close()
    return report


def _transitions(host: AdapterHost) -> list[str]:
    out = []
    for metric in host.metrics.breaker_transitions.collect():
        for s in metric.samples:
            if s.name.endswith("_total") and s.value:
                out.append(f"{s.labels['replica_id']}->{s.labels['to']} x{int(s.value)}")
    return sorted(out)
