"""The worker side of the heartbeat protocol (built here: the original left it a TODO).

Wire facts (reference §8.3): ``POST {queen}/v1/worker-heartbeat`` with
``{"worker": WorkerInfo, "timestamp": RFC 3339 UTC}`` every ``HEARTBEAT_INTERVAL_SECS`` (30 s);
the queen answers ``HeartbeatAck{status, message}``.

Choices where the contract is silent:

* A beat is sent at once on start, then every ``interval_s``; :meth:`HeartbeatSender.poke`
  sends one early (the bridge pokes on lifecycle changes: ready, stopping) so the queen learns
  about them without waiting a whole interval. Busy/ready flips are *not* poked — they can
  happen per request and would turn heartbeats into a request log.
* A failed beat (connection refused, timeout, non-2xx, an ``error`` ack) is retried with capped
  full-jitter backoff: the delay before retry ``n`` is uniform in
  ``[0, min(cap, base·2^(n-1))]`` (the math of :class:`adapters.http_util.RetryPolicy`), with
  ``base = interval/8`` and ``cap = interval`` by default, so a worker never beats a down queen
  faster than the backoff allows nor slower than the normal interval. Retries go on for as long
  as the worker lives; they never touch request serving (the loop runs in its own task).
* :meth:`HeartbeatSender.final` sends the last beat (``stopped``) with a short bounded retry, so a
  graceful shutdown is not held hostage by a queen that is down.
* The queen URL may carry credentials in the future; nothing here logs it unredacted.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

from llorch_conformance.adapters.http_util import RetryPolicy, redact_url, verifying_context

from ._contract import HEARTBEAT_PATH, HeartbeatAck, WorkerHeartbeat, WorkerInfo, WorkerStatus

__all__ = ["HeartbeatAttempt", "HeartbeatSender"]

_LOG = logging.getLogger("llorch.rbee_worker.heartbeat")

#: Hook for fault injection (the mock worker): payload dict -> payload to send, or None to skip.
PayloadHook = Callable[[dict[str, Any]], dict[str, Any] | None]


@dataclass(frozen=True, slots=True)
class HeartbeatAttempt:
    """One try to reach the queen: evidence for transcripts and tests."""

    at_s: float  # time.monotonic()
    status: str  # the worker status it carried
    ok: bool
    detail: str  # "ack ok", "connect refused", "HTTP 503", ...
    next_delay_s: float  # what the sender waits before its next try


@dataclass
class _Stats:
    attempts: list[HeartbeatAttempt] = field(default_factory=list)
    sent_ok: int = 0
    failures: int = 0
    consecutive_failures: int = 0


class HeartbeatSender:
    """Sends heartbeats for one worker; ``info`` is called for the current WorkerInfo each time."""

    def __init__(
        self,
        queen_url: str,
        info: Callable[[], WorkerInfo],
        *,
        interval_s: float = 30.0,
        backoff: RetryPolicy | None = None,
        timeout_s: float | None = None,
        seed: int | None = None,
        client: httpx.AsyncClient | None = None,
        payload_hook: PayloadHook | None = None,
        keep_attempts: int = 1000,
        on_attempt: Callable[[HeartbeatAttempt], None] | None = None,
    ) -> None:
        if not interval_s > 0:
            raise ValueError("heartbeat interval must be positive")
        self.url = queen_url.rstrip("/") + HEARTBEAT_PATH
        self._info = info
        self.interval_s = float(interval_s)
        interval_ms = max(1, round(self.interval_s * 1000))
        self.backoff = backoff or RetryPolicy(
            base_ms=max(1, interval_ms // 8), cap_ms=interval_ms, seed=seed
        )
        self.timeout_s = timeout_s if timeout_s is not None else min(5.0, max(0.5, self.interval_s))
        self._rng = random.Random(self.backoff.seed)
        self._client = client
        self._own_client = client is None
        self._hook = payload_hook
        self._keep = keep_attempts
        self.on_attempt = on_attempt
        self._wake = anyio.Event()
        self._next_delay = self.interval_s
        self.stats = _Stats()

    # -- facts --------------------------------------------------------------------------------
    @property
    def attempts(self) -> list[HeartbeatAttempt]:
        return list(self.stats.attempts)

    def backoff_delay_s(self, failure_number: int) -> float:
        """Jittered delay after the ``failure_number``-th consecutive failure (1-based)."""
        bound = self.backoff.delay_bound_ms(failure_number)
        return self._rng.randint(0, bound) / 1000.0

    # -- sending ------------------------------------------------------------------------------
    def _client_or_new(self) -> httpx.AsyncClient:
        if self._client is None:
            # Plain client, no environment (proxies, netrc): the queen URL is explicit config.
            # The process's verifying TLS context: loading the CA bundle per sender was the
            # largest CPU cost of the worker scenarios (one sender per worker started).
            self._client = httpx.AsyncClient(
                verify=verifying_context(), trust_env=False, follow_redirects=False
            )
        return self._client

    async def send_once(self, info: WorkerInfo | None = None) -> HeartbeatAck | None:
        """POST one heartbeat; returns the ack, ``None`` when the hook suppressed it.

        Raises :class:`OSError`-family / :class:`httpx.HTTPError` / ``TimeoutError`` or
        ``ValueError`` (bad ack) on failure; the caller decides about retries.
        """
        worker = info if info is not None else self._info()
        payload: dict[str, Any] | None = WorkerHeartbeat.now(worker).to_dict()
        if self._hook is not None and payload is not None:
            payload = self._hook(payload)
        if payload is None:
            return None
        client = self._client_or_new()
        with anyio.fail_after(self.timeout_s):
            resp = await client.post(self.url, json=payload)
        if resp.status_code >= 300:
            raise ValueError(f"HTTP {resp.status_code}")
        try:
            ack = HeartbeatAck.from_dict(resp.json())
        except ValueError as exc:
            raise ValueError(f"bad ack: {exc}") from None
        if not ack.ok:
            raise ValueError(f"ack error: {ack.message}")
        return ack

    def _record(self, status: str, ok: bool, detail: str, delay: float) -> None:
        st = self.stats
        attempt = HeartbeatAttempt(time.monotonic(), status, ok, detail, delay)
        st.attempts.append(attempt)
        if len(st.attempts) > self._keep:
            del st.attempts[: len(st.attempts) - self._keep]
        if self.on_attempt is not None:
            self.on_attempt(attempt)

    async def _beat(self) -> bool:
        status = "unknown"
        try:
            info = self._info()
            status = info.status.value
            await self.send_once(info)
        except Exception as exc:  # any failure is retried; nothing here may stop the worker
            st = self.stats
            st.failures += 1
            st.consecutive_failures += 1
            delay = min(self.backoff_delay_s(st.consecutive_failures), self.interval_s)
            detail = _describe(exc)
            if st.consecutive_failures in (1, 10) or st.consecutive_failures % 100 == 0:
                _LOG.warning(
                    "heartbeat to %s failed (%s); retry %d in %.3f s",
                    redact_url(self.url),
                    detail,
                    st.consecutive_failures,
                    delay,
                )
            self._record(status, False, detail, delay)
            self._next_delay = delay
            return False
        self.stats.sent_ok += 1
        self.stats.consecutive_failures = 0
        self._record(status, True, "ack ok", self.interval_s)
        self._next_delay = self.interval_s
        return True

    def poke(self) -> None:
        """Send the next heartbeat now (lifecycle changes)."""
        self._wake.set()

    async def run(self) -> None:
        """Beat until cancelled: at once, every interval, with backoff while the queen fails."""
        self._next_delay = self.interval_s
        while True:
            self._wake = anyio.Event()
            await self._beat()
            with anyio.move_on_after(self._next_delay):
                await self._wake.wait()

    async def final(
        self, status: WorkerStatus = WorkerStatus.STOPPED, *, budget_s: float = 2.0
    ) -> bool:
        """The last heartbeat (graceful shutdown): a few jittered tries within ``budget_s``."""
        info = self._info().with_status(status)
        deadline = time.monotonic() + budget_s
        n = 0
        while True:
            try:
                with anyio.fail_after(max(0.05, deadline - time.monotonic())):
                    await self.send_once(info)
            except Exception as exc:
                n += 1
                delay = self.backoff_delay_s(n)
                self._record(status.value, False, _describe(exc), delay)
                if time.monotonic() + delay >= deadline:
                    return False
                await anyio.sleep(delay)
                continue
            self.stats.sent_ok += 1
            self._record(status.value, True, "ack ok (final)", 0.0)
            return True

    async def aclose(self) -> None:
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "connect failed"
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.HTTPError):
        return type(exc).__name__
    if isinstance(exc, ValueError):
        return str(exc)[:200]
    return type(exc).__name__
