"""retry_async with respx-mocked upstreams and an injected sleep that only records (no waiting)."""

from __future__ import annotations

import json
import random

import anyio
import httpx
import pytest
import respx
from hypothesis import given, settings
from hypothesis import strategies as st

from llorch_conformance.adapters.api import ConfigError, ErrorCode, WorkerError, WorkerErrorKind
from llorch_conformance.adapters.http_util import (
    HttpClientConfig,
    RetryPolicy,
    RetryRecord,
    RetryTimeline,
    build_client,
    fetch,
    retry_async,
)

pytestmark = pytest.mark.anyio

URL = "http://engine.test/health"


class FakeSleep:
    """Records requested delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


async def _run(
    responses: list[httpx.Response | Exception],
    *,
    policy: RetryPolicy,
    idempotent: bool = True,
) -> tuple[httpx.Response | WorkerError, respx.Route, RetryTimeline, FakeSleep]:
    timeline = RetryTimeline()
    sleep = FakeSleep()
    with respx.mock(assert_all_called=False) as router:
        route = router.get(URL).mock(side_effect=responses)
        async with build_client(HttpClientConfig()) as client:

            async def op(attempt: int) -> httpx.Response:
                return await fetch(client, "GET", URL, total_timeout_s=5)

            with anyio.fail_after(5):
                try:
                    result: httpx.Response | WorkerError = await retry_async(
                        op, policy, idempotent=idempotent, timeline=timeline, sleep=sleep
                    )
                except WorkerError as err:
                    result = err
    return result, route, timeline, sleep


def _status(code: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(code, json={"error": {"message": f"status {code}"}}, headers=headers)


async def test_503_twice_then_success_follows_the_default_policy() -> None:
    result, route, timeline, sleep = await _run(
        [_status(503), _status(503), httpx.Response(200, json={"ok": True})],
        policy=RetryPolicy(seed=7),
    )
    assert isinstance(result, httpx.Response) and result.json() == {"ok": True}
    assert route.call_count == 3
    assert [r.attempt for r in timeline] == [1, 2]
    assert timeline[0].delay_ms <= 100 and timeline[1].delay_ms <= 200
    assert sleep.delays == [r.delay_ms / 1000 for r in timeline]
    assert all(r.code == "POOL_UNAVAILABLE" and r.status == 503 for r in timeline)
    assert timeline[0].reason == "upstream 503: status 503"


async def test_seeded_jitter_is_reproducible_and_drawn_uniformly_in_bounds() -> None:
    a = await _run([_status(500)] * 4, policy=RetryPolicy(seed=42))
    b = await _run([_status(500)] * 4, policy=RetryPolicy(seed=42))
    delays = [r.delay_ms for r in a[2]]
    assert delays == [r.delay_ms for r in b[2]]
    rng = random.Random(42)
    assert delays == [rng.randint(0, 100), rng.randint(0, 200), rng.randint(0, 400)]


@settings(deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32))
def test_every_delay_is_within_its_full_jitter_bound(seed: int) -> None:
    async def main() -> list[RetryRecord]:
        timeline = RetryTimeline()

        async def op(attempt: int) -> None:
            raise WorkerError(WorkerErrorKind.WORKER_RESET, "reset", retriable=True)

        with pytest.raises(WorkerError):
            await retry_async(
                op, RetryPolicy(seed=seed), idempotent=True, timeline=timeline, sleep=FakeSleep()
            )
        return timeline.records

    records = anyio.run(main)
    assert [r.attempt for r in records] == [1, 2, 3]
    for record, bound in zip(records, (100, 200, 400), strict=True):
        assert 0 <= record.delay_ms <= bound


async def test_jitter_spreads_over_the_whole_range() -> None:
    async def op(attempt: int) -> int:
        if attempt == 1:
            raise WorkerError(WorkerErrorKind.WORKER_RESET, "reset", retriable=True)
        return attempt

    firsts = []
    for seed in range(200):
        timeline = RetryTimeline()
        assert (
            await retry_async(
                op, RetryPolicy(seed=seed), idempotent=True, timeline=timeline, sleep=FakeSleep()
            )
            == 2
        )
        firsts.append(timeline[0].delay_ms)
    assert min(firsts) < 20 and max(firsts) > 80


async def test_four_attempts_in_all_then_the_last_error() -> None:
    result, route, timeline, sleep = await _run([_status(503)] * 6, policy=RetryPolicy(seed=1))
    assert isinstance(result, WorkerError)
    assert result.code is ErrorCode.POOL_UNAVAILABLE
    assert route.call_count == 4
    assert len(timeline) == 3 and len(sleep.delays) == 3


async def test_400_is_not_retried_and_leaves_no_record() -> None:
    result, route, timeline, sleep = await _run([_status(400), _status(200)], policy=RetryPolicy())
    assert isinstance(result, WorkerError)
    assert result.code is ErrorCode.INVALID_PARAMS and not result.retriable
    assert route.call_count == 1
    assert len(timeline) == 0 and sleep.delays == []


async def test_401_is_not_retried() -> None:
    result, route, timeline, _ = await _run([_status(401), _status(200)], policy=RetryPolicy())
    assert isinstance(result, WorkerError) and result.code is ErrorCode.INTERNAL
    assert route.call_count == 1 and len(timeline) == 0


async def test_non_idempotent_operation_is_never_retried() -> None:
    result, route, timeline, _ = await _run(
        [_status(503), _status(200)], policy=RetryPolicy(), idempotent=False
    )
    assert isinstance(result, WorkerError) and result.retriable
    assert route.call_count == 1 and len(timeline) == 0


async def test_retry_after_is_honoured_when_larger_than_the_drawn_delay() -> None:
    result, _, timeline, sleep = await _run(
        [_status(429, {"Retry-After": "1"}), httpx.Response(200)], policy=RetryPolicy(seed=3)
    )
    assert isinstance(result, httpx.Response)
    assert timeline[0].retry_after_ms == 1000
    assert timeline[0].delay_ms == 1000
    assert sleep.delays == [1.0]


async def test_retry_after_smaller_than_the_drawn_delay_keeps_the_draw() -> None:
    policy = RetryPolicy(seed=5, base_ms=1000, cap_ms=1000)
    drawn = random.Random(5).randint(0, 1000)
    assert drawn > 0
    _, _, timeline, _ = await _run(
        [_status(503, {"Retry-After": "0"}), httpx.Response(200)], policy=policy
    )
    assert timeline[0].retry_after_ms == 0
    assert timeline[0].delay_ms == drawn


async def test_retry_after_beyond_the_policy_limit_is_handed_back_not_waited() -> None:
    result, route, timeline, sleep = await _run(
        [_status(429, {"Retry-After": "3600"}), httpx.Response(200)], policy=RetryPolicy()
    )
    assert isinstance(result, WorkerError) and result.retry_after_ms == 3_600_000
    assert route.call_count == 1 and len(timeline) == 0 and sleep.delays == []


async def test_connect_failure_is_retried() -> None:
    result, route, timeline, _ = await _run(
        [httpx.ConnectError("[Errno 111] Connection refused"), httpx.Response(200)],
        policy=RetryPolicy(seed=0),
    )
    assert isinstance(result, httpx.Response)
    assert route.call_count == 2
    assert timeline[0].code == "POOL_UNAVAILABLE" and timeline[0].status is None


async def test_non_worker_errors_propagate_untouched() -> None:
    calls = []

    async def op(attempt: int) -> None:
        calls.append(attempt)
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await retry_async(op, RetryPolicy(), idempotent=True, sleep=FakeSleep())
    assert calls == [1]


async def test_timeline_is_json_evidence() -> None:
    _, _, timeline, _ = await _run([_status(503), httpx.Response(200)], policy=RetryPolicy(seed=9))
    (entry,) = json.loads(json.dumps(timeline.to_list()))
    assert set(entry) == {
        "attempt",
        "delay_ms",
        "reason",
        "code",
        "status",
        "retry_after_ms",
        "at_s",
        "bound_ms",
    }
    assert entry["attempt"] == 1 and entry["at_s"] >= 0
    assert entry["bound_ms"] == 100 and 0 <= entry["delay_ms"] <= 100


def test_delay_bounds_of_the_default_policy() -> None:
    policy = RetryPolicy()
    assert [policy.delay_bound_ms(n) for n in range(1, 8)] == [100, 200, 400, 800, 1600, 2000, 2000]
    assert RetryPolicy(base_ms=3, multiplier=1.5).delay_bound_ms(3) == 6
    with pytest.raises(ValueError):
        policy.delay_bound_ms(0)
    assert policy.delay_bound_ms(10_000) == 2000


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"base_ms": -1}, {"multiplier": 0.5}, {"max_retry_after_ms": -1}],
)
def test_bad_policies_are_config_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


async def test_no_retry_that_would_sleep_past_the_deadline() -> None:
    now = [100.0]
    calls: list[int] = []

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    async def op(attempt: int) -> None:
        calls.append(attempt)
        raise WorkerError(
            WorkerErrorKind.POOL_UNAVAILABLE, "busy", retriable=True, retry_after_ms=300
        )

    timeline = RetryTimeline()
    with pytest.raises(WorkerError):
        await retry_async(
            op,
            RetryPolicy(seed=1, base_ms=10, cap_ms=10),
            idempotent=True,
            timeline=timeline,
            sleep=sleep,
            deadline=100.7,
            clock=lambda: now[0],
        )
    # 100.0 + 0.3 ok, 100.3 + 0.3 ok (100.6 < 100.7), 100.6 + 0.3 would pass the deadline.
    assert calls == [1, 2, 3]
    assert [r.delay_ms for r in timeline] == [300, 300]
