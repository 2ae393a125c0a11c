"""Hostile inputs against the orchestrator facade (issue 16 items 5, 6, 7, 8 and 11).

Each test drives a real facade over a real socket and records its figures (cases, 500s, worst
latency) for the closing table. Every one of them failed against the facade before the fixes.
"""

from __future__ import annotations

import json
import time

import anyio
import httpx
import pytest
from anyio.abc import TaskGroup

from llorch_conformance.adapters.api import (
    ERROR_MAPPING,
    TokenEvent,
    UpstreamCondition,
    check_stream,
)
from llorch_conformance.adapters.orchestrator import AuthPolicy

from ..host.fakes import FakeAdapter, ok
from ._facade_env import TOKEN, FacadeEnv, rss_mb, task
from ._figures import HostileFigures

pytestmark = pytest.mark.timeout(60)

_BUG = next(r for r in ERROR_MAPPING if r.condition is UpstreamCondition.ADAPTER_BUG)


def _boom() -> None:
    raise RuntimeError("adapter exploded mid-stream")


# -- item 5: one adapter that raises mid-stream must not kill the facade ---------------------------
def test_adapter_raising_midstream_ends_only_that_task(
    hostile_figures: HostileFigures, caplog: pytest.LogCaptureFixture
) -> None:
    raising = [FakeAdapter().default[0], FakeAdapter().default[1], _boom]
    scripts = [list(raising) if i % 2 == 0 else ok(3) for i in range(12)]
    with FacadeEnv(FakeAdapter(scripts=scripts)) as e:
        for i in range(12):
            r = e.post("/v1/tasks", json=task(f"t{i}"))
            assert r.status_code == 202, r.text
            events = e.events(f"t{i}")
            assert check_stream(events) == [], [(x.kind, x.data) for x in events]
            if i % 2 == 0:
                last = events[-1]
                assert last.kind == "error"
                assert last.data["code"] == _BUG.code.value
                assert last.data["retriable"] is _BUG.retriable
                assert "RuntimeError" in last.data["message"]
            else:
                assert events[-1].kind == "end"
        assert e.get("/health").json() == {"ok": True}
        h = e.get("/v1/pools/default/health").json()
        assert h["ready"] is True and h["metrics"]["queue_depth"] == 0
        assert e.http_500 == 0
        # the host mapped it: nothing reached the facade's last line of defence
        assert not [r for r in caplog.records if "background task failed" in r.getMessage()]
        hostile_figures.record("facade: adapter raises", e.cases, e.http_500, e.worst_s)


def _dead_task_group() -> TaskGroup:
    async def make() -> TaskGroup:
        async with anyio.create_task_group() as tg:
            pass
        return tg

    return anyio.run(make)


def test_health_tells_the_truth_when_the_facade_cannot_run_tasks(
    hostile_figures: HostileFigures,
) -> None:
    with FacadeEnv(FakeAdapter()) as e:
        e.facade.tg = _dead_task_group()  # what a crashed task group leaves behind
        r = e.post("/v1/tasks", json=task())
        assert r.status_code == 503 and r.json()["code"] == "INTERNAL"
        r = e.get("/health")
        assert r.status_code == 503 and r.json()["ok"] is False
        hostile_figures.record("facade: adapter raises", e.cases, 0, e.worst_s)


# -- item 6: admission cannot be blocked for good -------------------------------------------------
@pytest.mark.parametrize("deadline", [2**63 - 1, 3_600_001, 10**30])
def test_absurd_deadline_is_refused(hostile_figures: HostileFigures, deadline: int) -> None:
    with FacadeEnv(FakeAdapter()) as e:
        r = e.post("/v1/tasks", json=task(deadline_ms=deadline))
        assert r.status_code == 400, r.text
        assert r.json()["field"] == "deadline_ms"
        assert e.post("/v1/tasks", json=task(deadline_ms=3_600_000)).status_code == 202
        hostile_figures.record("facade: admission", e.cases, e.http_500, e.worst_s)


def test_unopened_tasks_with_the_longest_deadline_do_not_hold_the_queue(
    hostile_figures: HostileFigures,
) -> None:
    with FacadeEnv(FakeAdapter(), admission_capacity=8, unopened_ttl_ms=300) as e:
        for i in range(8):
            assert e.post("/v1/tasks", json=task(f"a{i}", deadline_ms=3_600_000)).status_code == 202
        assert e.post("/v1/tasks", json=task("late")).status_code == 429
        for _ in range(200):  # bounded poll: the TTL is 300 ms
            r = e.post("/v1/tasks", json=task("late"))
            if r.status_code == 202:
                break
            time.sleep(0.02)
        assert r.status_code == 202
        assert e.get("/v1/tasks/a0/stream").status_code == 404  # it was dropped, not kept
        assert check_stream(e.events("late")) == []
        hostile_figures.record("facade: admission", e.cases, e.http_500, e.worst_s)


def test_enqueue_cancel_cycles_do_not_leak(
    hostile_figures: HostileFigures, caplog: pytest.LogCaptureFixture
) -> None:
    cycles = 1100  # more than the 1024 cancelled ids the facade remembers by default
    with FacadeEnv(FakeAdapter()) as e:
        before = rss_mb()
        for i in range(cycles):
            assert e.post("/v1/tasks", json=task(f"c{i}", deadline_ms=60_000)).status_code == 202
            assert e.post(f"/v1/tasks/c{i}/cancel").status_code == 204
        grown = rss_mb() - before
        assert len(e.facade.tasks) == 0
        assert len(e.facade.cancelled) == 1024  # bounded: only the newest ids are remembered
        depth = e.series("queue_depth")
        assert depth and all(ln.endswith(" 0.0") for ln in depth), depth
        assert e.get("/v1/pools/default/health").json()["metrics"]["queue_depth"] == 0
        # a remembered cancelled task still answers started + end(cancelled)
        events = e.events(f"c{cycles - 1}")
        assert [x.kind for x in events] == ["started", "end"]
        assert events[-1].data["stop_reason"] == "cancelled"
        assert e.get("/v1/tasks/c0/stream").status_code == 404  # forgotten (bounded)
        assert grown < 64, f"RSS grew {grown:.1f} MiB over {cycles} enqueue+cancel cycles"
        assert not [r for r in caplog.records if "background task failed" in r.getMessage()]
        hostile_figures.record("facade: admission", e.cases, e.http_500, e.worst_s)


def test_a_client_that_never_reads_its_stream_loses_its_slot_after_the_deadline(
    hostile_figures: HostileFigures,
) -> None:
    """A stalled reader stalls the adapter (whose own deadline check then never runs): the
    facade ends the task at ``deadline_ms`` + grace and frees the slot."""
    chunk = "x" * 65536
    flood = [FakeAdapter().default[0], *[TokenEvent.token(chunk, i) for i in range(600)]]
    fake = FakeAdapter(scripts=[flood])
    with FacadeEnv(fake, admission_capacity=1) as e:
        assert e.post("/v1/tasks", json=task("stuck", deadline_ms=500)).status_code == 202
        with (
            httpx.Client(base_url=e.server.base_url, timeout=10, trust_env=False) as other,
            other.stream("GET", "/v1/tasks/stuck/stream") as r,
        ):
            assert r.status_code == 200  # ... and never read: ~40 MB wait in buffers
            t0 = time.perf_counter()
            for _ in range(300):  # bounded poll: deadline 0.5 s + grace 1 s
                got = e.post("/v1/tasks", json=task("next"))
                if got.status_code == 202:
                    break
                time.sleep(0.02)
            freed_after = time.perf_counter() - t0
            assert got.status_code == 202, got.text
            assert fake.cancels == ["stuck"]
        events = e.events("next")
        assert check_stream(events) == [] and events[-1].kind == "end"
        hostile_figures.record("facade: admission", e.cases, e.http_500, freed_after, 1.5)


def test_odd_correlation_ids_are_replaced_not_forwarded(hostile_figures: HostileFigures) -> None:
    with FacadeEnv(FakeAdapter()) as e:
        for cid in (b"a" * 129, b"caf\xe9", b"two words"):
            r = e.post("/v1/tasks", json=task(f"c-{len(cid)}"), headers={"x-correlation-id": cid})
            assert r.status_code == 202
            assert r.headers["x-correlation-id"] != cid.decode("latin-1")
            assert len(r.headers["x-correlation-id"]) == 36  # a fresh UUIDv4
        r = e.get("/health", headers={"x-correlation-id": "ok-id_1.2"})
        assert r.headers["x-correlation-id"] == "ok-id_1.2"
        hostile_figures.record("facade: bad input", e.cases, e.http_500, e.worst_s)


# -- item 7: bounded metric labels; /metrics behind the token ------------------------------------
def test_invalid_engine_values_do_not_mint_series(hostile_figures: HostileFigures) -> None:
    with FacadeEnv(FakeAdapter()) as e:
        for i in range(300):
            r = e.post("/v1/tasks", json=task(engine=f"engine-{i:04d}"))
            assert r.status_code == 400
        for bad in (7, None, ["mock"], {"x": 1}, "mock\n", "m" * 10_000):
            assert e.post("/v1/tasks", json=task(engine=bad)).status_code == 400
        lines = e.series("tasks_rejected_total")
        assert len(lines) == 1, lines
        assert lines[0] == 'tasks_rejected_total{engine="invalid",reason="INVALID_PARAMS"} 306.0'
        hostile_figures.record("facade: metric labels", e.cases, e.http_500, e.worst_s)


def test_metrics_need_the_token_when_one_is_configured(hostile_figures: HostileFigures) -> None:
    with FacadeEnv(FakeAdapter(), auth=AuthPolicy(token=TOKEN)) as e:
        r = e.get("/metrics")
        assert r.status_code == 401 and "tasks_enqueued_total" not in r.text
        r = e.get("/metrics", headers={"Authorization": "Bearer " + TOKEN})
        assert r.status_code == 200 and "# TYPE tasks_enqueued_total" in r.text
        hostile_figures.record("facade: metric labels", e.cases, e.http_500, e.worst_s)


# -- item 8: bad input is a 4xx, never a 500 ------------------------------------------------------
_DEEP = 100_000


def _task_with(field: str, raw: bytes) -> bytes:
    """A valid task's JSON with ``"field": raw`` spliced in (raw bytes, not re-encoded)."""
    body = json.dumps(task()).encode()
    return body[:-1] + b', "' + field.encode() + b'": ' + raw + b"}"


BAD_BODIES: list[tuple[str, bytes]] = [
    ("5000-digit integer", b'{"ctx": ' + b"9" * 5000 + b"}"),
    ("5000-digit integer in a task", _task_with("seed", b"1" * 5000)),
    ("100k-deep arrays", b"[" * _DEEP + b"]" * _DEEP),
    ("100k-deep objects", b'{"a":' * _DEEP + b"1" + b"}" * _DEEP),
    ("deep placement", b'{"placement": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
    ("invalid UTF-8", b'{"prompt": "\xff\xfe"}'),
    ("NaN", b'{"deadline_ms": NaN}'),
    ("1e400", b'{"deadline_ms": 1e400}'),
    ("top-level array", b"[]"),
    ("top-level string", b'"task"'),
    ("top-level null", b"null"),
    ("empty", b""),
]


WRONG_TYPES: list[tuple[str, object]] = [
    ("task_id", 12),
    ("task_id", ["a"]),
    ("ctx", "4096"),
    ("ctx", True),
    ("ctx", 1.5),
    ("max_tokens", -1),
    ("deadline_ms", "soon"),
    ("priority", {"p": 1}),
    ("placement", "pin"),
    ("placement", {"mode": 5}),
    ("placement", {"allow_fallback": None}),
    ("placement", {"zzz": 1}),
    ("inputs", "x"),
    ("inputs", [1, 2]),
    ("seed", 2**64),
    ("expected_tokens", -5),
    ("kv_hint", "warm"),
    ("unknown_field", 1),
]


def test_bad_bodies_are_4xx(hostile_figures: HostileFigures) -> None:
    with FacadeEnv(FakeAdapter()) as e:  # default max_body_bytes: 1 MiB
        for name, body in BAD_BODIES:
            r = e.post("/v1/tasks", content=body, headers={"content-type": "application/json"})
            assert r.status_code == 400, (name, r.status_code, r.text[:200])
            assert r.json()["code"] == "INVALID_PARAMS", name
        for field, value in WRONG_TYPES:
            r = e.post("/v1/tasks", json=task(**{field: value}))
            assert r.status_code == 400, (field, value, r.text[:200])
            assert r.json()["code"] == "INVALID_PARAMS"
        big = b'{"prompt": "' + b"x" * (2 << 20) + b'"}'
        r = e.post("/v1/tasks", content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413
        # a lone surrogate in the task id: admitted and echoed escaped, not a 500
        r = e.post(
            "/v1/tasks",
            content=_task_with("session_id", b'"\\ud800"').replace(b'"t-0"', b'"\\udc00"'),
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 202 and r.json()["task_id"] == "\udc00"
        assert e.http_500 == 0
        hostile_figures.record("facade: bad input", e.cases, e.http_500, e.worst_s)


def test_bad_registration_bodies_are_4xx(hostile_figures: HostileFigures) -> None:
    auth = {"Authorization": "Bearer " + TOKEN, "content-type": "application/json"}
    with FacadeEnv(FakeAdapter(), auth=AuthPolicy(token=TOKEN)) as e:
        for _name, body in BAD_BODIES:
            r = e.post("/v1/workers/register", content=body, headers=auth)
            assert r.status_code == 400, (_name, r.text[:200])
        for config in ({"timeout_s": "x"}, {"retry": [1]}, {"max_line_bytes": -1}, {"x": {}}):
            r = e.post(
                "/v1/workers/register",
                json={"engine": "llamacpp", "url": "http://127.0.0.1:9", "config": config},
                headers={"Authorization": "Bearer " + TOKEN},
            )
            assert r.status_code in (200, 400), (config, r.text[:200])
        assert e.http_500 == 0
        hostile_figures.record("facade: bad input", e.cases, e.http_500, e.worst_s)


# -- item 11: a token-less facade refuses cross-site requests -------------------------------------
def test_tokenless_facade_refuses_cross_site_requests(hostile_figures: HostileFigures) -> None:
    with FacadeEnv(FakeAdapter()) as e:
        port = e.server.port
        form = json.dumps(task("csrf")).encode()
        # the browser CSRF of the issue: text/plain, foreign Origin
        r = e.post(
            "/v1/tasks",
            content=form,
            headers={"content-type": "text/plain", "origin": "http://evil.example"},
        )
        assert r.status_code == 403 and r.json() == {"code": 40302, "message": "FOREIGN_ORIGIN"}
        # DNS rebinding: the page's own name points at 127.0.0.1
        for path in ("/v1/tasks", "/metrics", "/v1/capabilities", "/health"):
            method = "POST" if path == "/v1/tasks" else "GET"
            r = e.request(
                method,
                path,
                json=task("rebind") if method == "POST" else None,
                headers={"host": f"evil.example:{port}"},
            )
            assert r.status_code == 403 and r.json()["code"] == 40303, (path, r.text)
        for origin in ("null", f"http://evil.example:{port}", f"http://localhost:{port + 1}"):
            r = e.post("/v1/tasks", json=task("o"), headers={"origin": origin})
            assert r.status_code == 403, origin
        r = e.post("/v1/tasks", json=task("s"), headers={"sec-fetch-site": "cross-site"})
        assert r.status_code == 403
        # text/plain without an Origin (old browsers, plugins): 415
        r = e.post("/v1/tasks", content=form, headers={"content-type": "text/plain"})
        assert r.status_code == 415
        r = e.post("/v1/tasks/x/cancel", content=b"x", headers={"content-type": "text/plain"})
        assert r.status_code == 415
        assert e.facade.tasks == {}  # nothing above was admitted
        # the facade's own origin and loopback names are fine
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "127.0.0.2"):
            r = e.post(
                "/v1/tasks",
                json=task(f"ok-{host}"),
                headers={"host": host, "origin": f"http://{host}"},
            )
            assert r.status_code == 202, (host, r.text)
        hostile_figures.record("facade: cross-site", e.cases, e.http_500, e.worst_s)


def test_token_presented_skips_the_cross_site_checks(hostile_figures: HostileFigures) -> None:
    with FacadeEnv(FakeAdapter(), auth=AuthPolicy(token=TOKEN, optional=True)) as e:
        # loopback without the token (optional): the checks stand in for the token
        r = e.post("/v1/tasks", json=task("a"), headers={"origin": "http://evil.example"})
        assert r.status_code == 403
        # with the token a browser cannot have sent it on its own: no check
        r = e.post(
            "/v1/tasks",
            json=task("b"),
            headers={"authorization": "Bearer " + TOKEN, "host": "orch.internal:8080"},
        )
        assert r.status_code == 202
        hostile_figures.record("facade: cross-site", e.cases, e.http_500, e.worst_s)
