"""Per-replica circuit breaker (ORCH-3602): closed → open → half-open → closed.

The seeds only say "opens after a threshold; subsequent submits fail fast until half-open" with
deterministic clocks in tests. The numbers are ours, documented here and in the README:

* ``failure_threshold`` = 5 consecutive infrastructure failures open the breaker;
* ``open_s`` = 30 s in the open state before one trial is let through (half-open);
* ``half_open_max_calls`` = 1 trial call at a time while half-open;
* a success in half-open closes the breaker; a failure re-opens it for another ``open_s``.

Only infrastructure failures count (pool unavailable, reset, decode timeout): an invalid request
is the caller's fault and says nothing about the replica's health. The clock is injectable so
tests step time instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["BreakerConfig", "BreakerState", "CircuitBreaker"]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    failure_threshold: int = 5
    open_s: float = 30.0
    half_open_max_calls: int = 1

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if self.open_s < 0:
            raise ValueError("open_s must be >= 0")
        if self.half_open_max_calls < 1:
            raise ValueError("half_open_max_calls must be >= 1")


class CircuitBreaker:
    """A small state machine; not thread-safe (the host runs on one event loop)."""

    def __init__(
        self,
        config: BreakerConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState, BreakerState], None] | None = None,
    ) -> None:
        self.config = config or BreakerConfig()
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trials = 0
        #: How many successes and failures were recorded (lets a caller tell "no verdict").
        self.verdicts = 0

    @property
    def state(self) -> BreakerState:
        """Current state; an expired open period reads as half-open."""
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self.config.open_s
        ):
            self._set(BreakerState.HALF_OPEN)
            self._trials = 0
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def retry_after_ms(self) -> int:
        """Milliseconds until the breaker lets a trial through (0 when it already would)."""
        if self.state is not BreakerState.OPEN:
            return 0
        left = self.config.open_s - (self._clock() - self._opened_at)
        return max(0, int(left * 1000 + 0.999))

    def allow(self) -> bool:
        """May a call go to this replica now? Counts a half-open trial when it says yes."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and self._trials < self.config.half_open_max_calls:
            self._trials += 1
            return True
        return False

    def would_allow(self) -> bool:
        """Like :meth:`allow` but without taking a trial slot (for readiness reporting)."""
        state = self.state
        return state is BreakerState.CLOSED or (
            state is BreakerState.HALF_OPEN and self._trials < self.config.half_open_max_calls
        )

    def record_success(self) -> None:
        """A call succeeded. Only a half-open trial closes an open breaker.

        A success that arrives while the breaker is open belongs to a call let through before
        it opened; it says nothing about the replica *now*, so it changes nothing.
        """
        self.verdicts += 1
        state = self.state
        if state is BreakerState.OPEN:
            return
        self._failures = 0
        self._trials = 0
        if state is BreakerState.HALF_OPEN:
            self._set(BreakerState.CLOSED)

    def release_trial(self) -> None:
        """A call let through while half-open ended without a verdict (cancelled, the caller's
        own error, an adapter bug): give its trial slot back, or the breaker would wait forever."""
        if self._state is BreakerState.HALF_OPEN and self._trials > 0:
            self._trials -= 1

    def record_failure(self) -> None:
        self.verdicts += 1
        state = self.state
        self._failures += 1
        if state is BreakerState.HALF_OPEN or (
            state is BreakerState.CLOSED and self._failures >= self.config.failure_threshold
        ):
            self._opened_at = self._clock()
            self._trials = 0
            self._set(BreakerState.OPEN)

    def _set(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if old is not new and self._on_change is not None:
            self._on_change(old, new)
