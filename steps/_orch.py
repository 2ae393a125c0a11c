"""Steps for adapters behind the orchestrator facade (``adapters.orchestrator``: SSE-*, ORCH-3406..3409,
AUTH-*, OC-METRICS-*).

The target adapter is bound as ``default/r0`` in an adapter host, the facade app runs under
uvicorn on a socket bound (and listening) before the server thread starts — so nothing waits for
start-up — and the steps speak to it over real HTTP: ``POST /v1/tasks``, then the SSE stream of
``GET /v1/tasks/{id}/stream`` decoded with the shared byte-level decoder. A view gives that HTTP
round trip the WorkerAdapter shape, so the ordinary stream/cancel/plan steps judge the SSE.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
from pytest_bdd import given, parsers, then, when

from adapters.api import TaskRequest, TokenEvent

from ._context import LogCapture, ScenarioContext

POOL = "default"
TOKEN = "llorch-facade-token-0123456789"

#: Metrics contract (reference §4.3, ci/metrics.lint.json): name -> required labels.
METRIC_LABELS: dict[str, set[str]] = {
    "tasks_enqueued_total": {"engine", "engine_version", "pool_id", "replica_id", "priority"},
    "tasks_started_total": {"engine", "engine_version", "pool_id", "replica_id", "priority"},
    "tasks_canceled_total": {"engine", "engine_version", "pool_id", "replica_id", "reason"},
    "tasks_rejected_total": {"engine", "reason"},
    "queue_depth": {"engine", "engine_version", "pool_id", "priority"},
    "latency_first_token_ms": {"engine", "engine_version", "pool_id", "priority"},
    "latency_decode_ms": {"engine", "engine_version", "pool_id", "priority"},
    "tokens_out_total": {"engine", "engine_version", "pool_id", "replica_id"},
    "admission_backpressure_events_total": {"engine", "policy"},
}
#: Label cardinality budgets (reference §4.3).
BUDGETS = {
    "engine": 4,
    "engine_version": 64,
    "pool_id": 256,
    "replica_id": 1024,
    "priority": 8,
    "reason": 16,
    "policy": 4,
}


class FacadeView:
    """``submit``/``cancel`` over the facade's HTTP API, in the WorkerAdapter shape."""

    def __init__(
        self, base_url: str, inner: Any, *, token: str | None, http2: bool = False
    ) -> None:
        self.base_url = base_url
        self.inner = inner
        self.token = token
        self.http2 = http2
        self.statuses: list[tuple[str, int]] = []
        self.http_versions: list[str] = []

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def health(self) -> Any:
        return await self.inner.health()

    async def props(self) -> Any:
        return await self.inner.props()

    async def capabilities(self) -> Any:
        return await self.inner.capabilities()

    async def engine_version(self) -> str:
        return str(await self.inner.engine_version())

    async def submit_gen(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        from adapters.http_util import SSEDecoder

        async with httpx.AsyncClient(http2=self.http2, trust_env=False, timeout=20.0) as client:
            r = await client.post(
                f"{self.base_url}/v1/tasks", json=request.to_dict(), headers=self._headers()
            )
            self.statuses.append(("enqueue", r.status_code))
            if r.status_code != 202:
                body = (
                    r.json()
                    if r.headers.get("content-type", "").startswith("application/json")
                    else {}
                )
                yield TokenEvent(
                    "error",
                    {"code": body.get("code", "INTERNAL"), "retriable": bool(body.get("retriable", False)),
                     "message": str(body.get("message", "")), "http_status": r.status_code},
                )  # fmt: skip
                return
            async with client.stream(
                "GET", f"{self.base_url}/v1/tasks/{request.task_id}/stream", headers=self._headers()
            ) as resp:
                self.statuses.append(("stream", resp.status_code))
                self.http_versions.append(resp.http_version)
                decoder = SSEDecoder()
                async for chunk in resp.aiter_raw():
                    for ev in decoder.feed(chunk):
                        yield TokenEvent(ev.event, json.loads(ev.data) if ev.data else {})

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        return self.submit_gen(request)

    async def cancel(self, task_id: str) -> None:
        async with httpx.AsyncClient(trust_env=False, timeout=10.0) as client:
            r = await client.post(
                f"{self.base_url}/v1/tasks/{task_id}/cancel", headers=self._headers()
            )
            self.statuses.append(("cancel", r.status_code))

    async def aclose(self) -> None:
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()


def serve_facade(
    ctx: ScenarioContext, *, token: str | None = None, optional: bool = False
) -> FacadeView:
    import uvicorn

    from adapters.host import AdapterHost
    from adapters.http_util import RetryPolicy
    from adapters.orchestrator import FacadeConfig, create_app
    from adapters.orchestrator._auth import AuthPolicy

    inner = ctx.adapter if ctx.adapter is not None else ctx.make_adapter()
    host = AdapterHost(retry_policy=RetryPolicy(seed=ctx.seed))
    host.bind(POOL, "r0", inner)
    app = create_app(host, FacadeConfig(auth=AuthPolicy(token=token, optional=optional)))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    ctx.add_cleanup(stop)
    view = FacadeView(f"http://127.0.0.1:{port}", inner, token=token)
    ctx.scratch["facade"] = view
    ctx.scratch["host"] = host
    ctx.adapter = view
    ctx.notes["facade"] = {"base_url": view.base_url, "auth": "token" if token else "loopback"}
    return view


@given("the adapter is served through the orchestrator facade")
def through_facade(llorch_ctx: ScenarioContext) -> None:
    llorch_ctx.scratch["facade_pending"] = {}


@given("the orchestrator facade requires a bearer token")
def facade_token(llorch_ctx: ScenarioContext) -> None:
    llorch_ctx.scratch["facade_pending"] = {"token": TOKEN}


@given("the facade client offers HTTP/2")
def facade_h2(llorch_ctx: ScenarioContext) -> None:
    llorch_ctx.scratch["facade_http2"] = True


def facade(ctx: ScenarioContext) -> FacadeView:
    view = ctx.scratch.get("facade")
    if view is None:
        opts = ctx.scratch.get("facade_pending", {})
        view = serve_facade(ctx, **opts)
        view.http2 = bool(ctx.scratch.get("facade_http2"))
    assert isinstance(view, FacadeView)
    return view


@when("the facade streams the task")
def facade_stream(llorch_ctx: ScenarioContext) -> None:
    llorch_ctx.stream(facade(llorch_ctx))


@when(parsers.parse("the facade cancels the task after {n:d} tokens"))
def facade_cancel(llorch_ctx: ScenarioContext, n: int) -> None:
    llorch_ctx.stream(facade(llorch_ctx), cancel_after=n)


@when(parsers.parse("the facade client disconnects after {n:d} tokens"))
def facade_disconnect(llorch_ctx: ScenarioContext, n: int) -> None:
    llorch_ctx.stream(facade(llorch_ctx), close_after=n)


@when("an invalid task is submitted to the facade")
def facade_invalid(llorch_ctx: ScenarioContext) -> None:
    view = facade(llorch_ctx)

    async def post() -> tuple[int, Any]:
        async with httpx.AsyncClient(trust_env=False, timeout=10.0) as client:
            body = llorch_ctx.make_request().to_dict()
            body["ctx"] = -1
            r = await client.post(f"{view.base_url}/v1/tasks", json=body, headers=view._headers())
            return r.status_code, r.json()

    llorch_ctx.scratch["invalid"] = llorch_ctx.portal.call(post)
    llorch_ctx.notes["invalid"] = llorch_ctx.scratch["invalid"]


@when("tasks are submitted without a token, with a wrong token and with the token")
def facade_auth_attempts(llorch_ctx: ScenarioContext) -> None:
    view = facade(llorch_ctx)

    async def attempt(header: str | None) -> tuple[int, Any]:
        async with httpx.AsyncClient(trust_env=False, timeout=10.0) as client:
            headers = {"Authorization": header} if header else {}
            r = await client.post(
                f"{view.base_url}/v1/tasks",
                json=llorch_ctx.make_request().to_dict(),
                headers=headers,
            )
            return r.status_code, r.json()

    got = {
        "none": llorch_ctx.portal.call(attempt, None),
        "wrong": llorch_ctx.portal.call(attempt, "Bearer wrong-token-0123456789abcdef"),
        "right": llorch_ctx.portal.call(attempt, f"Bearer {TOKEN}"),
    }
    llorch_ctx.scratch["auth_attempts"] = got
    llorch_ctx.notes["auth_attempts"] = {k: v[0] for k, v in got.items()}


@when("the facade's metrics are scraped")
def facade_metrics(llorch_ctx: ScenarioContext) -> None:
    view = facade(llorch_ctx)

    async def scrape() -> str:
        async with httpx.AsyncClient(trust_env=False, timeout=10.0) as client:
            r = await client.get(f"{view.base_url}/metrics")
            return r.text

    llorch_ctx.scratch["metrics_text"] = llorch_ctx.portal.call(scrape)


@then(parsers.parse("the facade answered the stream with HTTP {status:d}"))
def stream_status(llorch_ctx: ScenarioContext, status: int) -> None:
    view = facade(llorch_ctx)
    got = [s for what, s in view.statuses if what == "stream"]
    llorch_ctx.check(
        got and got[-1] == status,
        f"the stream was answered {got[-1] if got else None}, expected {status}",
        str(view.statuses),
        ids=("ORCH-3408",),
    )


@then("the started event carries queue_position and predicted_start_ms")
def started_fields(llorch_ctx: ScenarioContext) -> None:
    started = next((e for _, e in llorch_ctx.last.events if e.kind == "started"), None)
    data = {} if started is None else started.data
    ok = all(isinstance(data.get(k), int) for k in ("queue_position", "predicted_start_ms"))
    llorch_ctx.check(
        ok, "started lacks queue_position/predicted_start_ms", str(data), ids=("SSE-1002",)
    )


@then(parsers.parse("the invalid task was refused with HTTP {status:d} and code {code}"))
def invalid_refused(llorch_ctx: ScenarioContext, status: int, code: str) -> None:
    got_status, body = llorch_ctx.scratch["invalid"]
    llorch_ctx.check(
        got_status == status and body.get("code") == code,
        "a pre-stream error did not use the HTTP status",
        f"{got_status} {body}",
        ids=("ORCH-3408",),
    )


@then("the facade refused the missing and the wrong token and accepted the right one")
def auth_results(llorch_ctx: ScenarioContext) -> None:
    got = llorch_ctx.scratch["auth_attempts"]
    ids = ("AUTH-1001", "AUTH-1005")
    llorch_ctx.check(
        got["none"][0] == 401 and got["none"][1].get("message") == "MISSING_TOKEN",
        "a missing token was not refused with MISSING_TOKEN",
        str(got["none"]),
        ids=ids,
    )
    llorch_ctx.check(
        got["wrong"][0] == 401 and got["wrong"][1].get("message") == "BAD_TOKEN",
        "a wrong token was not refused with BAD_TOKEN",
        str(got["wrong"]),
        ids=ids,
    )
    llorch_ctx.check(
        got["right"][0] == 202, "the configured token was not accepted", str(got["right"]), ids=ids
    )


@then("the facade logged identities as token fingerprints, never the token")
def auth_identity_logs(llorch_ctx: ScenarioContext) -> None:
    from adapters.http_util import fp6

    idents = []
    for r in llorch_ctx.logs.records:
        f = {**LogCapture.fields(r), **(r.__dict__.get("narration") or {})}
        if f.get("identity"):
            idents.append(str(f["identity"]))
    texts = llorch_ctx.logs.texts()
    leaked = [t[:80] for t in texts if TOKEN in t]
    llorch_ctx.check(
        not leaked, "the bearer token appears in the logs", str(len(leaked)), ids=("AUTH-1008",)
    )
    want = f"token:{fp6(TOKEN)}"
    llorch_ctx.check(
        want in idents,
        "no log identity token:<fp6> for the accepted token",
        f"identities {sorted(set(idents))[:6]}",
        ids=("AUTH-1008",),
    )


@then("every contract metric the facade exposes carries the linter's labels within budget")
def metrics_contract(llorch_ctx: ScenarioContext) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    text = llorch_ctx.scratch["metrics_text"]
    seen: dict[str, set[str]] = {}
    values: dict[str, set[str]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            base = fam.name
            for name in (base, base + "_total"):
                if name in METRIC_LABELS:
                    seen.setdefault(name, set()).update(k for k in s.labels if k != "le")
            for k, v in s.labels.items():
                values.setdefault(k, set()).add(v)
    llorch_ctx.notes["metrics_seen"] = {k: sorted(v) for k, v in seen.items()}
    llorch_ctx.check(
        seen,
        "the facade exposes none of the contract metrics",
        text[:300],
        ids=("OC-METRICS-7101",),
    )
    for name, labels in seen.items():
        want = METRIC_LABELS[name]
        llorch_ctx.check(
            labels == want,
            f"{name} labels {sorted(labels)} differ from the contract {sorted(want)}",
            ids=("OC-METRICS-7101",),
        )
    for label, budget in BUDGETS.items():
        n = len(values.get(label, set()))
        llorch_ctx.check(
            n <= budget, f"label {label} has {n} values, budget {budget}", ids=("OC-METRICS-7102",)
        )


@then("every SSE metrics frame carries on_time_probability, queue_depth and kv_warmth")
def sse_metrics_fields(llorch_ctx: ScenarioContext) -> None:
    frames = [e.data for _, e in llorch_ctx.last.events if e.kind == "metrics"]
    llorch_ctx.check(frames, "the stream carried no metrics frame", ids=("OC-METRICS-7110",))
    missing = [sorted({"on_time_probability", "queue_depth", "kv_warmth"} - set(f)) for f in frames]
    llorch_ctx.check(
        not any(missing),
        "SSE metrics frames lack planning fields",
        str(missing[:2]),
        ids=("OC-METRICS-7110",),
    )


@then("the facade client negotiated HTTP/1.1 and the stream behaved the same")
def h11_fallback(llorch_ctx: ScenarioContext) -> None:
    view = facade(llorch_ctx)
    llorch_ctx.check(
        view.http_versions and view.http_versions[-1] == "HTTP/1.1",
        "unexpected HTTP version",
        str(view.http_versions),
        ids=("SSE-1005",),
    )


# -- auth rules of the facade, checked through its API (per-run) -------------------------------
@then("a non-loopback bind without a token is refused and allowed with one")
def bind_policy(llorch_ctx: ScenarioContext) -> None:
    from adapters.orchestrator import check_bind

    try:
        check_bind("0.0.0.0", None)
    except Exception as exc:  # the refusal is the point
        llorch_ctx.notes["bind_refusal"] = str(exc)
    else:
        llorch_ctx.fail("binding 0.0.0.0 without a token was allowed", ids=("AUTH-1002",))
    check_bind("0.0.0.0", TOKEN)
    check_bind("127.0.0.1", None)


@then("loopback may skip the token only when auth is optional")
def optional_policy(llorch_ctx: ScenarioContext) -> None:
    from adapters.orchestrator._auth import AuthPolicy

    opt = AuthPolicy(token=TOKEN, optional=True)
    strict = AuthPolicy(token=TOKEN, optional=False)
    llorch_ctx.check(
        opt.decide(None, "127.0.0.1").ok,
        "optional auth refused a loopback caller",
        ids=("AUTH-1004",),
    )
    llorch_ctx.check(
        not opt.decide(None, "10.1.2.3").ok,
        "optional auth let a remote caller in without a token",
        ids=("AUTH-1004",),
    )
    llorch_ctx.check(
        not strict.decide(None, "127.0.0.1").ok,
        "strict auth let a loopback caller in without a token",
        ids=("AUTH-1004",),
    )


@then("the token comparison goes through a constant-time primitive")
def constant_time(llorch_ctx: ScenarioContext) -> None:
    import hmac

    from adapters.orchestrator._auth import AuthPolicy

    mp: Any = llorch_ctx._getfixturevalue("monkeypatch")
    calls: list[int] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append(1)
        return real(a, b)

    mp.setattr(hmac, "compare_digest", spy)
    decision = AuthPolicy(token=TOKEN).decide(f"Bearer {TOKEN[:-1]}x", "10.0.0.1")
    llorch_ctx.check(
        calls and not decision.ok,
        "the token is not compared with hmac.compare_digest",
        ids=("AUTH-1007",),
    )
