"""Steps for adapters behind the orchestrator facade (``adapters.orchestrator``: SSE-*, ORCH-3406..3409,
AUTH-*, OC-METRICS-*).

The target adapter is bound as ``default/r0`` in an adapter host, the facade app runs under
uvicorn on a socket bound (and listening) before the server thread starts — so nothing waits for
start-up — and the steps speak to it over real HTTP: ``POST /v1/tasks``, then the SSE stream of
``GET /v1/tasks/{id}/stream`` decoded with the shared byte-level decoder. A view gives that HTTP
round trip the WorkerAdapter shape, so the ordinary stream/cancel/plan steps judge the SSE.

The ``--orchestrator-url`` target (``conformance._targets``) uses the same view on a facade the
harness does not own: there is no inner adapter, so health/props/capabilities/engine_version go
to ``GET /v1/pools/{pool}/health`` and ``GET /v1/capabilities``; the steps then use the target's
view instead of serving a facade, the token is the one from the target's environment variable,
and whatever needs the in-process facade (its logs, its code) is ``unsupported``.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx
from pytest_bdd import given, parsers, then, when

from llorch_conformance.adapters.api import (
    HarnessError,
)
from llorch_conformance.adapters.http_util import verifying_context
from llorch_conformance.conformance import FacadeView

from ._context import LogCapture, ScenarioContext

POOL = FacadeView.DEFAULT_POOL
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


def serve_facade(
    ctx: ScenarioContext, *, token: str | None = None, optional: bool = False
) -> FacadeView:
    from llorch_conformance._serving import ServedApp
    from llorch_conformance.adapters.host import AdapterHost
    from llorch_conformance.adapters.http_util import RetryPolicy
    from llorch_conformance.adapters.orchestrator import AuthPolicy, FacadeConfig, create_app

    inner = ctx.adapter if ctx.adapter is not None else ctx.make_adapter()
    host = AdapterHost(retry_policy=RetryPolicy(seed=ctx.seed))
    host.bind(POOL, "r0", inner)
    app = create_app(host, FacadeConfig(auth=AuthPolicy(token=token, optional=optional)))
    # the socket listens before the thread starts: the first request queues, nothing waits
    served = ServedApp(app, name="llorch-facade").start(timeout_s=None)
    ctx.add_cleanup(served.stop)
    port = served.port
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
        if getattr(ctx.target, "orchestrator", False):
            view = remote_facade(ctx, needs_token=bool(opts.get("token")))
        else:
            view = serve_facade(ctx, **opts)
        view.http2 = bool(ctx.scratch.get("facade_http2"))
    assert isinstance(view, FacadeView)
    return view


def remote_facade(ctx: ScenarioContext, *, needs_token: bool) -> FacadeView:
    """The ``--orchestrator-url`` target's view (its factory builds it; no facade is served)."""
    view = ctx.get_adapter()
    if not isinstance(view, FacadeView):
        raise HarnessError(f"the orchestrator target built {type(view).__name__}, not a FacadeView")
    if needs_token and not view.token:
        ctx.unsupported(
            f"orchestrator at {view.base_url}: no API token in ${ctx.target.token_env}, so its "
            "token checks cannot be judged (run with the orchestrator's token in that variable)"
        )
    ctx.scratch["facade"] = view
    ctx.notes["facade"] = {
        "base_url": view.base_url,
        "auth": "token" if view.token else "none",
        "pool": view.pool,
        "black_box": True,
    }
    return view


#: Feature folders whose scenarios run against an ``--orchestrator-url`` target: the facade's
#: own (every scenario; steps report what they cannot control as unsupported) and the generic
#: ones that need only the WorkerAdapter shape (their ``@black-box`` scenarios).
ORCHESTRATOR_FEATURES = frozenset({"orchestrator"})
ORCHESTRATOR_BLACK_BOX_FEATURES = frozenset({"stream", "cancel"})


def orchestrator_gate(url: str, folder: str, tags: set[str], *, per_run: bool) -> str | None:
    """Why a scenario cannot apply to the orchestrator at ``url`` (``None``: it runs)."""
    where = f"orchestrator at {url}"
    if per_run:
        return (
            f"{where}: a run-wide check of this project's own code (features/{folder}), "
            "not of the orchestrator under test"
        )
    if folder in ORCHESTRATOR_FEATURES:
        return None
    if folder in ORCHESTRATOR_BLACK_BOX_FEATURES and "black-box" in tags:
        return None
    if folder == "host":
        return f"{where}: drives the in-process adapter host, which a black-box orchestrator hides"
    if "black-box" in tags:
        return (
            f"{where}: judges an adapter in-process (its surface, logs, determinism signals or a "
            "worker served from it), not the orchestrator's HTTP surface"
        )
    return (
        f"{where}: needs the mock engine behind the adapter (fault control, the engine journal "
        "or the generation plan)"
    )


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
        async with httpx.AsyncClient(
            verify=verifying_context(), trust_env=False, timeout=10.0
        ) as client:
            body = llorch_ctx.make_request().to_dict()
            body["ctx"] = -1
            r = await client.post(f"{view.base_url}/v1/tasks", json=body, headers=view.headers())
            return r.status_code, r.json()

    llorch_ctx.scratch["invalid"] = llorch_ctx.portal.call(post)
    llorch_ctx.notes["invalid"] = llorch_ctx.scratch["invalid"]


async def _drain(view: FacadeView, task_id: str) -> None:
    """Cancel an admitted task and read its stream to the end, so it frees its admission slot
    (an orchestrator the harness does not own lives on after the scenario)."""
    with anyio.move_on_after(10.0):
        async with httpx.AsyncClient(
            verify=verifying_context(), trust_env=False, timeout=10.0
        ) as client:
            await client.post(f"{view.base_url}/v1/tasks/{task_id}/cancel", headers=view.headers())
            async with client.stream(
                "GET", f"{view.base_url}/v1/tasks/{task_id}/stream", headers=view.headers()
            ) as resp:
                async for _ in resp.aiter_raw():
                    pass


@when("tasks are submitted without a token, with a wrong token and with the token")
def facade_auth_attempts(llorch_ctx: ScenarioContext) -> None:
    view = facade(llorch_ctx)

    async def attempt(header: str | None) -> tuple[int, Any]:
        async with httpx.AsyncClient(
            verify=verifying_context(), trust_env=False, timeout=10.0
        ) as client:
            headers = {"Authorization": header} if header else {}
            r = await client.post(
                f"{view.base_url}/v1/tasks",
                json=llorch_ctx.make_request().to_dict(),
                headers=headers,
            )
            try:
                return r.status_code, r.json()
            except ValueError:
                return r.status_code, {"body": r.text[:200]}

    token = view.token or TOKEN
    got = {
        "none": llorch_ctx.portal.call(attempt, None),
        "wrong": llorch_ctx.portal.call(attempt, "Bearer wrong-token-0123456789abcdef"),
        "right": llorch_ctx.portal.call(attempt, f"Bearer {token}"),
    }
    for status, body in got.values():
        task_id = body.get("task_id") if status == 202 and isinstance(body, dict) else None
        if isinstance(task_id, str) and task_id:
            llorch_ctx.portal.call(_drain, view, task_id)
    llorch_ctx.scratch["auth_attempts"] = got
    llorch_ctx.notes["auth_attempts"] = {k: v[0] for k, v in got.items()}


@when("the facade's metrics are scraped")
def facade_metrics(llorch_ctx: ScenarioContext) -> None:
    view = facade(llorch_ctx)

    async def scrape() -> str:
        async with httpx.AsyncClient(
            verify=verifying_context(), trust_env=False, timeout=10.0
        ) as client:
            r = await client.get(f"{view.base_url}/metrics", headers=view.headers())
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
    from llorch_conformance.adapters.http_util import fp6

    view = facade(llorch_ctx)
    if view.remote:
        llorch_ctx.unsupported(
            f"orchestrator at {view.base_url}: its logs are not visible to a black-box harness"
        )

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
    # The in-process facade is plain HTTP/1.1, so the offer must fall back; an orchestrator the
    # harness does not own may well be HTTPS with HTTP/2, which is the preferred outcome.
    allowed = ("HTTP/1.1", "HTTP/2") if view.remote else ("HTTP/1.1",)
    llorch_ctx.notes["facade_http_versions"] = view.http_versions
    llorch_ctx.check(
        view.http_versions and view.http_versions[-1] in allowed,
        "unexpected HTTP version",
        str(view.http_versions),
        ids=("SSE-1005",),
    )


# -- auth rules of the facade, checked through its API (per-run) -------------------------------
@then("a non-loopback bind without a token is refused and allowed with one")
def bind_policy(llorch_ctx: ScenarioContext) -> None:
    from llorch_conformance.adapters.orchestrator import check_bind

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
    from llorch_conformance.adapters.orchestrator import AuthPolicy

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

    from llorch_conformance.adapters.orchestrator import AuthPolicy

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


# -- worker registration (features/orchestrator/registration.feature, AUTH-1003) ----------
@when("a worker registers without a token, with a wrong token and with the token")
def register_three_ways(llorch_ctx: ScenarioContext) -> None:
    view = facade(llorch_ctx)
    body = {"engine": "mock", "pool_id": "registered", "replica_id": "r-reg"}
    answers = []
    headers_list: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer not-the-token-0123456789"},
        {"Authorization": f"Bearer {view.token}"} if view.token else {},
    ]
    with httpx.Client(
        base_url=view.base_url, verify=verifying_context(), trust_env=False, timeout=10.0
    ) as client:
        for headers in headers_list:
            r = client.post("/v1/workers/register", json=body, headers=headers)
            try:
                payload = r.json()
            except ValueError:
                payload = {"raw": r.text[:200]}
            answers.append({"status": r.status_code, "body": payload})
    llorch_ctx.notes["registration"] = answers
    llorch_ctx.scratch["registration"] = answers


@then("only the registration with the token was accepted")
def only_token_accepted(llorch_ctx: ScenarioContext) -> None:
    missing, wrong, right = llorch_ctx.scratch["registration"]
    llorch_ctx.check(
        missing["status"] == 401 and wrong["status"] == 401,
        "a worker registered without the right token",
        f"no token: {missing}, wrong token: {wrong}",
        ids=("AUTH-1003",),
    )
    llorch_ctx.check(
        right["status"] == 200 and right["body"].get("ok") is True,
        "registration with the right token was refused",
        str(right),
        ids=("AUTH-1003",),
    )


@then("the accepted registration names its caller by token fingerprint only")
def registration_identity(llorch_ctx: ScenarioContext) -> None:
    view = facade(llorch_ctx)
    _, _, right = llorch_ctx.scratch["registration"]
    ident = str(right["body"].get("identity", ""))
    llorch_ctx.check(
        ident.startswith("token:") and len(ident) == len("token:") + 6,
        "the registration identity is not token:<fp6>",
        ident,
        ids=("AUTH-1008",),
    )
    llorch_ctx.check(
        not view.token or view.token not in str(right),
        "the token itself came back in the registration answer",
        "",
        ids=("AUTH-1008",),
    )
