"""Structured logs and Prometheus metrics for the adapters (ADAPT-3004, OC-METRICS-7101/7102).

Logs: stdlib :mod:`logging`, one record per *lifecycle* step (submit, stream start, end, cancel,
error, retry) — never per token, because the token path is hot and a log line per token would
dominate its cost. Each record carries a JSON-able dict under ``record.llorch`` with the
README_LLM fields (``job_id, session_id, engine, engine_version, pool_id, replica_id,
queue_position, predicted_start_ms, tokens_in, tokens_out, decode_time_ms``; ``None`` when the
adapter cannot know the value, e.g. the queue position belongs to the orchestrator) plus the
narration fields ``actor, action, target, human`` of the narration-core taxonomy (ORCH-3300..3305).
Every string goes through :func:`adapters.http_util.redact` with the adapter's known secrets, so
an API key cannot reach a log line even if an engine echoes it in an error body.

Metrics: the names, types and labels of the original metrics contract (reference §4.3,
``ci/metrics.lint.json``) that an *adapter* can observe: ``tasks_started_total``,
``tasks_canceled_total``, ``tasks_rejected_total`` (labels exactly ``engine, reason`` — the
normative exception), ``tokens_in_total``, ``tokens_out_total``, ``latency_first_token_ms`` and
``latency_decode_ms`` (buckets: the home-profile recommendation of the contract). Queue, placement,
GPU and catalogue metrics belong to the orchestrator and are not emitted here. Label values are
kept inside the contract's cardinality budgets by :class:`LabelBudget`: once a label has seen its
budget of distinct values, further new values are folded into ``"other"`` instead of growing the
series set without bound. The ``engine`` budget is 6 instead of the original 4 because this
project added ``openai`` and ``mock`` to the Engine enum.

Registry choice: each :class:`AdapterMetrics` owns a private ``CollectorRegistry`` unless one is
given. Adapters get a private instance by default, so tests running in parallel (``pytest -n
auto``) or many adapters in one process never collide on metric names; a host that wants one
exposition for all adapters creates one :class:`AdapterMetrics` and hands it to every adapter.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from .http_util import redact

__all__ = [
    "CARDINALITY_BUDGETS",
    "LOG_FIELDS",
    "AdapterMetrics",
    "JsonLogFormatter",
    "LabelBudget",
    "log_event",
]

#: README_LLM / ADAPT-3004 required log fields, in the original order.
LOG_FIELDS: Final[tuple[str, ...]] = (
    "job_id",
    "session_id",
    "engine",
    "engine_version",
    "pool_id",
    "replica_id",
    "queue_position",
    "predicted_start_ms",
    "tokens_in",
    "tokens_out",
    "decode_time_ms",
)

#: Label cardinality budgets of the metrics contract (engine widened to 6, see module docstring).
CARDINALITY_BUDGETS: Final[Mapping[str, int]] = {
    "engine": 6,
    "engine_version": 64,
    "pool_id": 256,
    "replica_id": 1024,
    "priority": 8,
    "reason": 16,
}

#: Reasons ``tasks_rejected_total`` accepts (contract list); other codes are not rejections.
_REJECT_REASONS: Final[frozenset[str]] = frozenset(
    {
        "ADMISSION_REJECT",
        "QUEUE_FULL_DROP_LRU",
        "INVALID_PARAMS",
        "POOL_UNREADY",
        "POOL_UNAVAILABLE",
        "REPLICA_EXHAUSTED",
    }
)

_FIRST_TOKEN_BUCKETS: Final = (50, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000)
_DECODE_BUCKETS: Final = (250, 500, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000)

OTHER: Final = "other"


class LabelBudget:
    """Keeps each label's distinct values within its budget (OC-METRICS-7102).

    Thread-safe because a registry may be shared by adapters running on several threads (the
    harness drives adapters through a blocking portal).
    """

    def __init__(self, budgets: Mapping[str, int] = CARDINALITY_BUDGETS) -> None:
        self._budgets = dict(budgets)
        self._seen: dict[str, set[str]] = {name: set() for name in self._budgets}
        self._lock = threading.Lock()

    def value(self, label: str, value: object) -> str:
        """The value to use for ``label``: ``value`` itself while the budget lasts, else ``other``."""
        text = "" if value is None else str(value)
        budget = self._budgets.get(label)
        if budget is None:
            return text
        with self._lock:
            seen = self._seen[label]
            if text in seen:
                return text
            # Keep one slot free for the fold-over value itself.
            if len(seen) < budget - 1 or (len(seen) == budget - 1 and text == OTHER):
                seen.add(text)
                return text
            seen.add(OTHER)
            return OTHER

    def distinct(self, label: str) -> int:
        with self._lock:
            return len(self._seen.get(label, ()))


class AdapterMetrics:
    """The contract metrics an adapter observes, registered in one registry.

    Methods are called once per task lifecycle step, never per token.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        budgets: Mapping[str, int] = CARDINALITY_BUDGETS,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.budget = LabelBudget(budgets)
        r = self.registry
        task_labels = ("engine", "engine_version", "pool_id", "replica_id", "priority")
        replica_labels = ("engine", "engine_version", "pool_id", "replica_id")
        latency_labels = ("engine", "engine_version", "pool_id", "priority")
        self.tasks_started = Counter(
            "tasks_started_total", "Tasks whose stream started.", task_labels, registry=r
        )
        self.tasks_canceled = Counter(
            "tasks_canceled_total",
            "Tasks cancelled (reason: client, deadline).",
            (*replica_labels, "reason"),
            registry=r,
        )
        self.tasks_rejected = Counter(
            "tasks_rejected_total",
            "Tasks refused before their stream started (reason: ErrorKind code).",
            ("engine", "reason"),
            registry=r,
        )
        self.tokens_in = Counter(
            "tokens_in_total",
            "Prompt tokens as reported by the engine.",
            replica_labels,
            registry=r,
        )
        self.tokens_out = Counter(
            "tokens_out_total", "Tokens delivered to the caller.", replica_labels, registry=r
        )
        self.latency_first_token = Histogram(
            "latency_first_token_ms",
            "Submit to first token, milliseconds.",
            latency_labels,
            buckets=_FIRST_TOKEN_BUCKETS,
            registry=r,
        )
        self.latency_decode = Histogram(
            "latency_decode_ms",
            "First token to end of stream, milliseconds.",
            latency_labels,
            buckets=_DECODE_BUCKETS,
            registry=r,
        )

    # -- label helpers --------------------------------------------------------------------
    def _labels(self, names: Iterable[str], values: Mapping[str, object]) -> list[str]:
        return [self.budget.value(n, values.get(n)) for n in names]

    # -- lifecycle hooks ------------------------------------------------------------------
    def started(self, labels: Mapping[str, object]) -> None:
        self.tasks_started.labels(
            *self._labels(("engine", "engine_version", "pool_id", "replica_id", "priority"), labels)
        ).inc()

    def canceled(self, labels: Mapping[str, object], reason: str) -> None:
        values = self._labels(("engine", "engine_version", "pool_id", "replica_id"), labels)
        self.tasks_canceled.labels(*values, self.budget.value("reason", reason)).inc()

    def rejected(self, engine: str, reason: str) -> None:
        """Count a refusal before the stream started; codes outside the contract list are skipped."""
        if reason in _REJECT_REASONS:
            self.tasks_rejected.labels(
                self.budget.value("engine", engine), self.budget.value("reason", reason)
            ).inc()

    def finished(
        self,
        labels: Mapping[str, object],
        *,
        tokens_in: int | None,
        tokens_out: int,
        first_token_ms: float | None,
        decode_ms: float | None,
    ) -> None:
        replica = self._labels(("engine", "engine_version", "pool_id", "replica_id"), labels)
        if tokens_in:
            self.tokens_in.labels(*replica).inc(tokens_in)
        if tokens_out:
            self.tokens_out.labels(*replica).inc(tokens_out)
        lat = self._labels(("engine", "engine_version", "pool_id", "priority"), labels)
        if first_token_ms is not None:
            self.latency_first_token.labels(*lat).observe(first_token_ms)
        if decode_ms is not None:
            self.latency_decode.labels(*lat).observe(decode_ms)

    def exposition(self) -> bytes:
        """Prometheus text format of this registry (what ``/metrics`` would serve)."""
        return generate_latest(self.registry)


def log_event(
    logger: logging.Logger,
    level: int,
    action: str,
    human: str,
    *,
    secrets: Iterable[str] = (),
    **fields: Any,
) -> None:
    """Emit one structured lifecycle record.

    ``record.llorch`` holds the README_LLM fields (missing ones as ``None``), the narration
    fields and any extra ``fields``; every string value and the message are redacted. The check
    ``isEnabledFor`` comes first so that a silenced logger costs almost nothing.
    """
    if not logger.isEnabledFor(level):
        return
    secrets = tuple(s for s in secrets if s)
    payload: dict[str, Any] = {name: None for name in LOG_FIELDS}
    for key, value in fields.items():
        payload[key] = _redact_value(value, secrets)
    text = redact(human, secrets)
    payload["actor"] = f"adapter:{payload.get('engine') or 'unknown'}"
    payload["action"] = action
    payload["target"] = payload.get("job_id")
    payload["human"] = text
    logger.log(level, text, extra={"llorch": payload})


def _redact_value(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, Mapping):
        return {str(k): _redact_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v, secrets) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value), secrets)


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the ``llorch`` fields.

    Offered so a CLI or a proof bundle can write adapter logs as NDJSON without knowing the
    record layout; the fields are already redacted by :func:`log_event`.
    """

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "llorch", None)
        if isinstance(extra, dict):
            out.update(extra)
        return json.dumps(out, ensure_ascii=False, default=str)
