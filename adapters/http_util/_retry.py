"""Capped full-jitter retries for idempotent operations, with a timeline kept as evidence.

Wire facts and choices, and where they come from:

* Policy numbers are DESIGN.md's decision on reference §9 item 2: base 100 ms, ×2, cap 2 s,
  4 attempts in all; the delay before retry ``n`` (n = 1, 2, 3) is uniform in
  ``[0, min(cap, base·mult^(n-1))]`` — bounds 100, 200, 400 ms. (The original Rust used the failing
  attempt number as exponent, giving 200/400/800; we decided on the spec's reading.)
* Only idempotent operations are retried, and only errors the table marks retriable
  (HTU-1002, HTU-EXP-1102). A non-retriable error is re-raised at once and leaves no record.
* ``Retry-After`` (``WorkerError.retry_after_ms``) wins when larger than the drawn delay
  (DESIGN.md). A hint longer than ``max_retry_after_ms`` (default 60 s) is not waited for: the
  error goes back to the caller with its hint, because an adapter stream must not sit silent for
  minutes and the orchestrator can schedule the retry itself.
* Jitter is seedable (HTU-EXP-1103) through an explicit ``seed`` — never the environment
  (HTU-EXP-1101). Each :func:`retry_async` call draws from its own ``random.Random(seed)``.
* The timeline is per call and passed explicitly (the original used a process-global list that
  tests had to clear); records carry monotonic offsets so a transcript shows real spacing.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, TypeVar, overload

import anyio

from llorch_conformance.adapters.api import ConfigError, WorkerError

__all__ = ["RetryPolicy", "RetryRecord", "RetryTimeline", "retry_async"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait; defaults are the project decision (see module doc)."""

    base_ms: int = 100
    multiplier: float = 2.0
    cap_ms: int = 2000
    max_attempts: int = 4
    seed: int | None = None
    max_retry_after_ms: int = 60_000

    def __post_init__(self) -> None:
        if self.base_ms < 0 or self.cap_ms < 0:
            raise ConfigError("RetryPolicy: base_ms and cap_ms must not be negative")
        if self.multiplier < 1.0:
            raise ConfigError("RetryPolicy: multiplier must be at least 1.0")
        if self.max_attempts < 1:
            raise ConfigError("RetryPolicy: max_attempts must be at least 1")
        if self.max_retry_after_ms < 0:
            raise ConfigError("RetryPolicy: max_retry_after_ms must not be negative")

    def delay_bound_ms(self, retry_number: int) -> int:
        """Upper bound of the jittered delay before retry ``retry_number`` (1-based)."""
        if retry_number < 1:
            raise ValueError("retry_number starts at 1")
        # Compare in float first so a large exponent cannot build a huge int.
        bound = self.base_ms * self.multiplier ** min(retry_number - 1, 64)
        return int(min(float(self.cap_ms), bound))


@dataclass(frozen=True)
class RetryRecord:
    """One retry decision: after failed ``attempt`` we waited ``delay_ms`` because of ``reason``."""

    attempt: int
    delay_ms: int
    reason: str
    code: str
    status: int | None
    retry_after_ms: int | None
    at_s: float
    bound_ms: int | None = None  # the full-jitter bound the delay was drawn under (evidence)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RetryTimeline:
    """The retries of one operation, in order: evidence for transcripts (HTU-INT-3302).

    List-like (``len``, iteration, indexing); :meth:`to_list` gives JSON-able dicts.
    ``at_s`` of each record is measured from the moment the timeline was created.
    """

    __slots__ = ("_records", "_t0")

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self._records: list[RetryRecord] = []

    @property
    def records(self) -> list[RetryRecord]:
        return list(self._records)

    def elapsed_s(self) -> float:
        return time.monotonic() - self._t0

    def append(self, record: RetryRecord) -> None:
        self._records.append(record)

    def to_list(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self._records]

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[RetryRecord]:
        return iter(self._records)

    @overload
    def __getitem__(self, index: int) -> RetryRecord: ...
    @overload
    def __getitem__(self, index: slice) -> list[RetryRecord]: ...
    def __getitem__(self, index: int | slice) -> RetryRecord | list[RetryRecord]:
        return self._records[index]

    def __repr__(self) -> str:
        return f"RetryTimeline({self._records!r})"


async def retry_async(
    op: Callable[[int], Awaitable[T]],
    policy: RetryPolicy,
    *,
    idempotent: bool,
    timeline: RetryTimeline | None = None,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    deadline: float | None = None,
    clock: Callable[[], float] = anyio.current_time,
) -> T:
    """Run ``op(attempt)`` (attempt from 1) and retry retriable :class:`WorkerError` failures.

    Retries only when ``idempotent``, the error is ``retriable`` and attempts remain; otherwise
    the error is re-raised at once without a record. Other exceptions propagate untouched (a bug
    is not a transient failure). After the last attempt the last error is re-raised.

    ``deadline`` (optional, on ``clock``, by default the anyio clock) is when the caller's task
    must be done (``deadline_ms``): a retry whose wait would end past it is not started, the
    error goes back at once — sleeping into a missed deadline helps nobody.
    """
    rng = random.Random(policy.seed)
    line = timeline if timeline is not None else RetryTimeline()
    attempt = 1
    while True:
        try:
            return await op(attempt)
        except WorkerError as err:
            if not idempotent or not err.retriable or attempt >= policy.max_attempts:
                raise
            hint = err.retry_after_ms
            if hint is not None and hint > policy.max_retry_after_ms:
                raise
            bound = policy.delay_bound_ms(attempt)
            delay = rng.randint(0, bound)
            if hint is not None and hint > delay:
                delay = hint
            if deadline is not None and clock() + delay / 1000.0 >= deadline:
                raise
            line.append(
                RetryRecord(
                    attempt=attempt,
                    delay_ms=delay,
                    reason=err.message,
                    code=err.code.value,
                    status=err.upstream_status,
                    retry_after_ms=hint,
                    at_s=round(line.elapsed_s(), 6),
                    bound_ms=bound,
                )
            )
            await sleep(delay / 1000.0)
            attempt += 1
