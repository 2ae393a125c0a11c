"""200 concurrent tasks through host, real adapters and mock engines with faults mixed in."""

from __future__ import annotations

import logging

import pytest

from benches._host_load import run_load


def test_load_with_faults_keeps_every_invariant(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL)
    r = run_load(200, cancel_every=10, seed=1)
    assert r.violations == []
    assert sum(r.outcomes.values()) == 200 and "lost" not in r.outcomes
    assert r.cancelled == 20 and r.tokens_after_cancel == 0
    # the faults really happened and surfaced as their mapped errors
    assert r.outcomes["error:DECODE_TIMEOUT"] > 0
    assert r.outcomes["error:WORKER_RESET"] > 0
    # the failing replica's breaker opened, and closed again once the engine recovered
    assert any(t.startswith("c->open") for t in r.breaker_transitions)
    assert any(t.startswith("c->closed") for t in r.breaker_transitions)
    assert r.breaker_final == "closed"
