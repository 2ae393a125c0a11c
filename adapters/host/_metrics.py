"""Host metrics through prometheus_client (AH-2003, reference §4.3).

Names and labels follow the metrics contract where the contract names them
(``tasks_started_total``, ``tasks_canceled_total``, ``tokens_out_total``,
``latency_first_token_ms``, ``latency_decode_ms``); host-only series are prefixed
``adapter_host_``. Every host has its own ``CollectorRegistry`` so that several hosts (tests under
xdist, a facade and a self-test) never collide; :meth:`HostMetrics.render` gives the text format.
Buckets are the home-profile recommendation of the contract.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

if TYPE_CHECKING:
    from llorch_conformance.adapters.api import TaskRequest

__all__ = ["DECODE_BUCKETS", "FIRST_TOKEN_BUCKETS", "HostMetrics"]

FIRST_TOKEN_BUCKETS = (50, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000)
DECODE_BUCKETS = (250, 500, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000)


class _Rep(Protocol):
    pool_id: str
    replica_id: str
    engine: str
    engine_version: str


class HostMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        rep = ["engine", "engine_version", "pool_id", "replica_id"]
        self.tasks_started = Counter(
            "tasks_started_total", "Tasks started on a replica", [*rep, "priority"], registry=r
        )
        self.tasks_canceled = Counter(
            "tasks_canceled_total", "Tasks canceled", [*rep, "reason"], registry=r
        )
        self.tokens_out_total = Counter(
            "tokens_out_total", "Tokens streamed to callers", rep, registry=r
        )
        pool = ["engine", "engine_version", "pool_id", "priority"]
        self.latency_first_token = Histogram(
            "latency_first_token_ms",
            "Submit to first token, milliseconds",
            pool,
            buckets=FIRST_TOKEN_BUCKETS,
            registry=r,
        )
        self.latency_decode = Histogram(
            "latency_decode_ms",
            "First token to terminal event, milliseconds",
            pool,
            buckets=DECODE_BUCKETS,
            registry=r,
        )
        self.retries_total = Counter(
            "adapter_host_retries_total", "Retries before the first token", ["pool_id"], registry=r
        )
        self.breaker_transitions = Counter(
            "adapter_host_breaker_transitions_total",
            "Circuit breaker state changes",
            ["pool_id", "replica_id", "to"],
            registry=r,
        )

    def started(self, rep: _Rep, req: TaskRequest) -> None:
        self.tasks_started.labels(
            rep.engine, rep.engine_version, rep.pool_id, rep.replica_id, req.priority.value
        ).inc()

    def canceled(self, rep: _Rep, reason: str) -> None:
        self.tasks_canceled.labels(
            rep.engine, rep.engine_version, rep.pool_id, rep.replica_id, reason
        ).inc()

    def tokens_out(self, rep: _Rep, n: int) -> None:
        self.tokens_out_total.labels(
            rep.engine, rep.engine_version, rep.pool_id, rep.replica_id
        ).inc(n)

    def first_token(self, rep: _Rep, req: TaskRequest, ms: float) -> None:
        self.latency_first_token.labels(
            rep.engine, rep.engine_version, rep.pool_id, req.priority.value
        ).observe(ms)

    def decode(self, rep: _Rep, req: TaskRequest, ms: float) -> None:
        self.latency_decode.labels(
            rep.engine, rep.engine_version, rep.pool_id, req.priority.value
        ).observe(ms)

    def retries(self, pool_id: str, n: int) -> None:
        if n:
            self.retries_total.labels(pool_id).inc(n)

    def breaker_transition(self, pool_id: str, replica_id: str, to: str) -> None:
        self.breaker_transitions.labels(pool_id, replica_id, to).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
