"""Steps of ``features/http_util``: the shared HTTP layer — client defaults, connection reuse, retries, redaction, the mapping table."""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
from pytest_bdd import parsers, then, when

from ._context import CALL_LIMIT_S, ScenarioContext


@when(parsers.parse("the adapter streams the task {n:d} times"))
def stream_task_n(llorch_ctx: ScenarioContext, n: int) -> None:
    for _ in range(n):
        llorch_ctx.stream()


@when("the shared HTTP client is built with its defaults")
def build_default_client(llorch_ctx: ScenarioContext) -> None:
    from llorch_conformance.adapters.http_util import HttpClientConfig, build_client

    client = build_client(HttpClientConfig())
    llorch_ctx.scratch["client"] = client
    llorch_ctx.add_cleanup(lambda: llorch_ctx.portal.call(client.aclose))


@when(parsers.parse("an operation that keeps failing retriably is retried with seed {seed:d}"))
def retry_seeded(llorch_ctx: ScenarioContext, seed: int) -> None:
    from llorch_conformance.adapters.api import UpstreamCondition, error_for_condition
    from llorch_conformance.adapters.http_util import RetryPolicy, RetryTimeline, retry_async

    async def attempt_all(
        policy: RetryPolicy, *, idempotent: bool, retriable: bool
    ) -> dict[str, Any]:
        attempts: list[int] = []
        delays: list[float] = []

        async def fake_sleep(s: float) -> None:
            delays.append(s)

        async def op(n: int) -> None:
            attempts.append(n)
            cond = UpstreamCondition.OVERLOADED if retriable else UpstreamCondition.INVALID_REQUEST
            raise error_for_condition(cond, "mock failure")

        timeline = RetryTimeline()
        try:
            with anyio.fail_after(CALL_LIMIT_S):
                await retry_async(
                    op, policy, idempotent=idempotent, timeline=timeline, sleep=fake_sleep
                )
        except Exception as exc:
            final = type(exc).__name__
        else:
            final = "success"
        return {
            "attempts": attempts,
            "delays_ms": [round(d * 1000.0, 3) for d in delays],
            "timeline": timeline.to_list(),
            "final": final,
        }

    policy = RetryPolicy(seed=seed)
    first = llorch_ctx.portal.call(lambda: attempt_all(policy, idempotent=True, retriable=True))
    second = llorch_ctx.portal.call(
        lambda: attempt_all(RetryPolicy(seed=seed), idempotent=True, retriable=True)
    )
    non_idem = llorch_ctx.portal.call(lambda: attempt_all(policy, idempotent=False, retriable=True))
    non_retr = llorch_ctx.portal.call(lambda: attempt_all(policy, idempotent=True, retriable=False))
    llorch_ctx.notes["retry"] = {
        "first": first,
        "second": second,
        "non_idempotent": non_idem,
        "non_retriable": non_retr,
        "bounds_ms": [policy.delay_bound_ms(n) for n in (1, 2, 3)],
        "at": time.time(),
    }


@then(parsers.parse("the engine saw at most {n:d} connections"))
def at_most_connections(llorch_ctx: ScenarioContext, n: int) -> None:
    counters = llorch_ctx.journal().counters()
    total = counters.get("connections_total", 0)
    llorch_ctx.check(
        total <= n,
        f"the engine saw {total} TCP connections for {len(llorch_ctx.runs)} sequential tasks (at "
        f"most {n} allowed): the adapter does not reuse one pooled HTTP client across requests",
        f"a keep-alive client opens one connection and reuses it; {total} means a new client "
        f"per request, or streams closed before their body ended (a response closed early "
        f"cannot return its connection to the pool: read to the end after the terminal frame) "
        f"(counters: {counters})",
        ids=("HTU-PERF-1301", "ORCH-3612"),
    )


@then("it connects within 5 s and reads within 30 s")
def client_timeouts(llorch_ctx: ScenarioContext) -> None:
    client = llorch_ctx.scratch["client"]
    t = client.timeout
    llorch_ctx.notes["timeouts"] = {
        "connect": t.connect,
        "read": t.read,
        "write": t.write,
        "pool": t.pool,
    }
    llorch_ctx.check(
        t.connect == 5.0 and t.read is not None and t.read <= 30.0,
        "client timeouts differ from connect 5 s / request 30 s",
        repr(t),
        ids=("HTU-1001", "ORCH-3610"),
    )


@then("it prefers HTTP/2, verifies TLS and ignores the environment")
def client_h2_tls(llorch_ctx: ScenarioContext) -> None:
    import ssl

    client = llorch_ctx.scratch["client"]
    transport = client._transport
    pool = getattr(transport, "_pool", None)
    http2 = bool(getattr(pool, "_http2", False))
    ssl_ctx = getattr(pool, "_ssl_context", None)
    verify = (
        isinstance(ssl_ctx, ssl.SSLContext)
        and ssl_ctx.verify_mode == ssl.CERT_REQUIRED
        and ssl_ctx.check_hostname
    )
    trust_env = bool(getattr(client, "_trust_env", True))
    llorch_ctx.notes["client_flags"] = {"http2": http2, "verify": verify, "trust_env": trust_env}
    llorch_ctx.check(
        http2, "the shared client does not offer HTTP/2", ids=("HTU-1001", "ORCH-3610")
    )
    llorch_ctx.check(
        verify,
        "the shared client does not verify TLS by default",
        ids=("HTU-SEC-1401", "HTU-EXP-1105", "HTU-1001"),
    )
    llorch_ctx.check(
        not trust_env,
        "the shared client trusts the environment (proxies, netrc)",
        ids=("HTU-SEC-1401",),
    )


@then(parsers.parse("it was attempted 4 times with delays within 100, 200 and 400 ms"))
def retry_attempts(llorch_ctx: ScenarioContext) -> None:
    r = llorch_ctx.notes["retry"]["first"]
    llorch_ctx.check(
        r["attempts"] == [1, 2, 3, 4],
        "the policy did not make 4 attempts",
        str(r),
        ids=("HTU-1002", "ORCH-3611"),
    )
    delays = r["delays_ms"]
    ok = len(delays) == 3 and all(
        0 <= d <= b for d, b in zip(delays, (100, 200, 400), strict=False)
    )
    llorch_ctx.check(
        ok,
        "retry delays are outside the capped full-jitter bounds 100/200/400 ms",
        str(delays),
        ids=("HTU-1002", "ORCH-3611"),
    )


@then("the same seed gives the same delays")
def retry_seeded_same(llorch_ctx: ScenarioContext) -> None:
    r = llorch_ctx.notes["retry"]
    llorch_ctx.check(
        r["first"]["delays_ms"] == r["second"]["delays_ms"],
        "the same seed gave different jitter",
        str(r["first"]["delays_ms"]) + " vs " + str(r["second"]["delays_ms"]),
        ids=("HTU-EXP-1103",),
    )


@then("a non-idempotent or non-retriable operation is attempted once")
def retry_gated(llorch_ctx: ScenarioContext) -> None:
    r = llorch_ctx.notes["retry"]
    llorch_ctx.check(
        r["non_idempotent"]["attempts"] == [1],
        "a non-idempotent operation was retried",
        ids=("HTU-1002", "HTU-EXP-1102", "ORCH-3611"),
    )
    llorch_ctx.check(
        r["non_retriable"]["attempts"] == [1],
        "a non-retriable failure was retried",
        ids=("HTU-EXP-1102", "ORCH-3611"),
    )


@then(parsers.parse('redacting "{secret}" as a secret gives "{want}"'))
def redaction_vector(llorch_ctx: ScenarioContext, secret: str, want: str) -> None:
    from llorch_conformance.adapters.http_util import redact

    got = redact(f"value {secret} here", [secret])
    llorch_ctx.check(
        want in got and f" {secret} " not in got,
        "redaction does not use the ****<fp6> style",
        f"{got!r}",
        ids=("HTU-1004", "HTU-ERR-4001"),
    )


@then("authorization headers, API-key headers, key=value pairs and URL credentials are redacted")
def redaction_patterns(llorch_ctx: ScenarioContext) -> None:
    from llorch_conformance.adapters.http_util import redact, redact_headers, redact_url

    secret = "s3cr3t-token-xyz-0123"
    samples = [
        f"Authorization: Bearer {secret}",
        f"X-API-Key: {secret}",
        f"api_key={secret}",
        f'{{"access_token": "{secret}"}}',
        f"https://user:{secret}@engine.example/v1",
        f"key sk-{secret}",
    ]
    leaks = [s for s in samples if secret in redact(s)]
    headers = redact_headers(
        {"Authorization": f"Bearer {secret}", "X-Api-Key": secret, "Accept": "x"}
    )
    url = redact_url(f"https://user:{secret}@engine.example/v1?api_key={secret}")
    llorch_ctx.notes["redacted"] = {
        "samples": [redact(s) for s in samples],
        "headers": headers,
        "url": url,
    }
    llorch_ctx.check(
        not leaks,
        "redaction missed a pattern",
        f"{len(leaks)} leaking sample(s)",
        ids=("HTU-1004", "ORCH-3613", "HTU-ERR-4001"),
    )
    llorch_ctx.check(
        secret not in json.dumps(headers) and headers.get("Accept") == "x",
        "header redaction missed a credential or touched a plain header",
        ids=("HTU-1004",),
    )
    llorch_ctx.check(secret not in url, "URL redaction missed a credential", ids=("HTU-1004",))


@then("every upstream status maps to the table's code, retriability and Retry-After")
def mapping_table(llorch_ctx: ScenarioContext) -> None:
    from llorch_conformance.adapters.api import mapping_for_status
    from llorch_conformance.adapters.http_util import error_from_response

    rows = []
    for status in (400, 401, 403, 404, 409, 422, 429, 500, 502, 503, 504):
        err = error_from_response(status, {"Retry-After": "2"}, b'{"error":{"message":"boom"}}')
        row = mapping_for_status(status)
        rows.append(
            {
                "status": status,
                "code": err.code.value,
                "retriable": err.retriable,
                "retry_after_ms": err.retry_after_ms,
            }
        )
        assert row is not None
        llorch_ctx.check(
            err.code == row.code and err.retriable == row.retriable,
            f"upstream {status} maps to {err.code.value}/{err.retriable}, the table says {row.code.value}/{row.retriable}",
            ids=("HTU-ERR-4002", "HTU-EXP-1106"),
        )
        want_ra = 2000 if row.uses_retry_after else None
        llorch_ctx.check(
            err.retry_after_ms == want_ra,
            f"upstream {status}: retry_after_ms {err.retry_after_ms!r}, expected {want_ra!r}",
            ids=("HTU-ERR-4004", "HTU-EXP-1106", "HTU-ERR-4002"),
        )
        data = err.to_event_data()
        llorch_ctx.check(
            {"code", "retriable", "message"} <= set(data) and len(data["message"]) <= 300,
            "the error envelope lacks code/retriable/message or the message is long",
            str(data),
            ids=("HTU-ERR-4003",),
        )
    llorch_ctx.notes["mapping"] = rows
