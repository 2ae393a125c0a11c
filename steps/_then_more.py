"""Then steps about what the engine saw (journal), secrets, logs, the surface and shared layers."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from pytest_bdd import parsers, then

from llorch_conformance.adapters.api import Capabilities, WorkerHealth, WorkerProps

from ._context import LogCapture, ScenarioContext

_RETRY_IDS = ("WA-INT-3003", "HTU-1002", "ADAPT-3005", "OC-ADAPT-OAI-6002", "HTU-EXP-1103")
_NO_RETRY_IDS = ("WA-INT-3004", "HTU-EXP-1102", "WA-INT-3008")


def _fp(secret: str) -> str:
    from llorch_conformance.mock_engines import redact_secret

    return str(redact_secret(secret))


# -- journal: requests and retries -----------------------------------------------------------
@then(parsers.re(r"the engine received (?P<n>\d+) generation requests?"))
def n_generation_requests(llorch_ctx: ScenarioContext, n: str) -> None:
    want = int(n)
    entries = llorch_ctx.generation_entries()
    ids: tuple[str, ...] = (
        _NO_RETRY_IDS if want == 1 else (*_RETRY_IDS, "HTU-PERF-1301", "HTU-SEC-1401")
    )
    if want == 0:
        ids = ("HTU-SEC-1401", "HTU-EXP-1105")
    llorch_ctx.check(
        len(entries) == want,
        f"the engine received {len(entries)} generation request(s), expected {want}",
        "; ".join(f"{e.method} {e.path} -> {e.status}" for e in entries[:8]),
        ids=ids,
    )


@then(parsers.parse("the engine received between {lo:d} and {hi:d} generation requests"))
def between_requests(llorch_ctx: ScenarioContext, lo: int, hi: int) -> None:
    entries = llorch_ctx.generation_entries()
    llorch_ctx.check(
        lo <= len(entries) <= hi,
        f"the engine received {len(entries)} generation requests, the policy allows {lo}..{hi}",
        ids=_RETRY_IDS,
    )


@then("the retries were spaced within the capped jitter bounds")
def retries_spaced(llorch_ctx: ScenarioContext) -> None:
    """Gap before retry n is at most min(cap, base·2^(n-1)) plus scheduling slack.

    Full jitter has no lower bound, so only the upper bound (with 0.75 s slack for a loaded
    machine and the failed attempt's own round trip) is checked; it still catches uncapped,
    fixed or linear backoff. The gaps are kept as evidence.
    """
    entries = llorch_ctx.generation_entries()
    times = [e.t_received for e in entries]
    gaps = [round((b - a) * 1000.0, 1) for a, b in itertools.pairwise(times)]
    bounds = [min(2000, 100 * 2 ** (n - 1)) for n in range(1, len(gaps) + 1)]
    llorch_ctx.notes["retry_gaps_ms"] = gaps
    llorch_ctx.notes["retry_bounds_ms"] = bounds
    llorch_ctx.check(
        len(entries) <= 4, f"{len(entries)} attempts exceed the 4 the policy allows", ids=_RETRY_IDS
    )
    for n, (gap, bound) in enumerate(zip(gaps, bounds, strict=False), start=1):
        llorch_ctx.check(
            gap <= bound + 750.0,
            f"retry {n} came {gap:.0f} ms after the previous attempt; the capped jitter allows {bound} ms",
            f"gaps {gaps} ms, bounds {bounds} ms",
            ids=_RETRY_IDS,
        )


@then(parsers.parse("the retry waited at least {ms:d} ms after the 429"))
def retry_after_honoured(llorch_ctx: ScenarioContext, ms: int) -> None:
    entries = llorch_ctx.generation_entries()
    if len(entries) < 2:
        llorch_ctx.fail("there was no retry to measure", ids=("WA-INT-3003", "HTU-ERR-4004"))
    first, second = entries[0], entries[1]
    start = first.t_last_byte or first.t_received
    gap = (second.t_received - start) * 1000.0
    llorch_ctx.notes["retry_after_gap_ms"] = round(gap, 1)
    llorch_ctx.check(
        gap >= ms,
        f"the retry came {gap:.0f} ms after the 429; Retry-After asked for {ms} ms or more",
        ids=("WA-INT-3003", "HTU-ERR-4004", "HTU-EXP-1106"),
    )


@then("the engine saw the client disconnect")
def saw_disconnect(llorch_ctx: ScenarioContext) -> None:
    def disconnected(j: Any) -> Any:
        return [e for e in j.entries if getattr(e, "generation", False) and e.disconnected]

    found = llorch_ctx.wait_journal(disconnected, 3.0, "a disconnect")
    if not found and llorch_ctx.proxied and llorch_ctx.runs:
        gens = [e for e in llorch_ctx.journal().entries if getattr(e, "generation", False)]
        run = llorch_ctx.runs[-1]
        acted = [t for t, ev in run.events if ev.kind == "token"]
        last = gens[-1].t_last_byte if gens and gens[-1].completed else None
        term = run.terminal
        natural_end = (
            term is not None and term.kind == "end" and term.data.get("stop_reason") != "cancelled"
        )
        if last is not None and (natural_end or (acted and last <= acted[-1])):
            # a live engine had sent its whole answer before the caller even got the token at
            # which it cancelled or stopped reading: there was nothing left to close
            llorch_ctx.unsupported(
                f"live engine at {llorch_ctx.target.engine_url}: it finished its answer "
                f"({len(getattr(gens[-1].plan, 'tokens', ()))} tokens) before the caller went "
                "away; nothing was left to cancel"
            )
    llorch_ctx.check(
        bool(found),
        "the engine never saw its connection closed: the upstream request kept running",
        f"journal counters: {llorch_ctx.journal().counters()}",
        ids=("WA-INT-3002", "ADAPT-3101", "OC-ADAPT-5001", "OC-ADAPT-5020"),
    )


@then(parsers.parse('the engine saw requests on "{path}" and one of "{alts}"'))
def saw_paths(llorch_ctx: ScenarioContext, path: str, alts: str) -> None:
    paths = {e.path for e in llorch_ctx.journal().entries}
    choices = [a for a in alts.split(",") if a]
    ok = path in paths and any(any(p == a or p.startswith(a + "/") for p in paths) for a in choices)
    llorch_ctx.check(
        ok,
        f"the adapter did not use {path} and one of {choices}",
        f"paths seen: {sorted(paths)}",
        ids=(
            "OC-ADAPT-5001",
            "ORCH-3054",
            "OC-ADAPT-5040",
            "ORCH-3056",
            "OC-ADAPT-5060",
            "ORCH-3057",
        ),
    )


@then(parsers.parse('the engine saw requests on "{path}"'))
def saw_path(llorch_ctx: ScenarioContext, path: str) -> None:
    paths = {e.path for e in llorch_ctx.journal().entries}
    llorch_ctx.check(
        path in paths,
        f"the adapter never requested {path}",
        f"paths seen: {sorted(paths)}",
        ids=("OC-ADAPT-5001a",),
    )


@then(parsers.parse('the engine saw no request on a "{prefix}" path'))
def no_prefix(llorch_ctx: ScenarioContext, prefix: str) -> None:
    bad = sorted({e.path for e in llorch_ctx.journal().entries if e.path.startswith(prefix)})
    llorch_ctx.check(
        not bad,
        f"the adapter used internal {prefix} routes",
        f"paths: {bad}",
        ids=("OC-ADAPT-5002",),
    )


def _generation_route_check(ctx: ScenarioContext, ok_path: Any, describe: str) -> None:
    entries = ctx.generation_entries()
    if not entries:
        ctx.fail(
            "the engine saw no generation request",
            ids=(
                "OC-ADAPT-5001",
                "OC-ADAPT-5020",
                "OC-ADAPT-5040",
                "OC-ADAPT-5060",
                "OC-ADAPT-OAI-6001",
            ),
        )
    e = entries[-1]
    try:
        body = json.loads(e.body) if e.body else {}
    except ValueError:
        body = {}
    stream_flag = body.get("stream") if isinstance(body, dict) else None
    streaming = stream_flag is True or "stream" in e.path
    ctx.check(
        ok_path(e.path) and streaming,
        f"the generation request did not go to {describe} with streaming on",
        f"{e.method} {e.path} stream={stream_flag!r}",
        ids=(
            "OC-ADAPT-5001",
            "ORCH-3054",
            "OC-ADAPT-5020",
            "ORCH-3055",
            "OC-ADAPT-5040",
            "ORCH-3056",
            "OC-ADAPT-5060",
            "ORCH-3057",
            "OC-ADAPT-OAI-6001",
        ),
    )


@then(parsers.parse('the generation request went to "{path}" with stream true'))
def gen_to_path(llorch_ctx: ScenarioContext, path: str) -> None:
    _generation_route_check(llorch_ctx, lambda p: p == path, path)


@then(parsers.parse('the generation request went to one of "{paths}" with stream true'))
def gen_to_paths(llorch_ctx: ScenarioContext, paths: str) -> None:
    choices = [p for p in paths.split(",") if p]
    _generation_route_check(llorch_ctx, lambda p: p in choices, f"one of {choices}")


@then(parsers.parse('the generation request went to a path containing "{frag}" with stream true'))
def gen_to_fragment(llorch_ctx: ScenarioContext, frag: str) -> None:
    _generation_route_check(llorch_ctx, lambda p: frag in p, f"a path containing {frag!r}")


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


# -- determinism settings ----------------------------------------------------------------------
def _walk(obj: Any, key: str) -> list[Any]:
    out: list[Any] = []
    if isinstance(obj, str) and obj.startswith("{"):
        # A JSON object carried as a string (Triton's ``sampling_parameters`` input).
        try:
            obj = json.loads(obj)
        except ValueError:
            return out
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                out.append(v)
            out.extend(_walk(v, key))
    elif isinstance(obj, list):
        for v in obj:
            out.extend(_walk(v, key))
    return out


def _sampling(entry: Any) -> dict[str, Any]:
    try:
        body = json.loads(entry.body)
    except ValueError:
        return {}
    return {
        k: _walk(body, k)
        for k in ("seed", "random_seed", "temperature", "top_p", "top_k", "do_sample")
    }


@then("the engine request carries the determinism settings")
def determinism_settings(llorch_ctx: ScenarioContext) -> None:
    """Judged on the engine's parsed view of the request (the journal's plan: the seed and the
    sampling knobs the engine actually used), not on a walk of the JSON body: a knob the engine
    ignores or a default the engine applies is then seen as the engine sees it."""
    from ._oracle import forwarded_problems

    entries = llorch_ctx.generation_entries()
    if not entries:
        llorch_ctx.fail("the engine saw no generation request", ids=("OC-TEST-7002",))
    s = _sampling(entries[-1])
    llorch_ctx.notes["sampling"] = s
    run = llorch_ctx.last
    plan = getattr(entries[-1], "plan", None)
    if plan is None:
        llorch_ctx.fail("the engine rendered no generation for this task", ids=("OC-TEST-7002",))
    if llorch_ctx.proxied and getattr(plan, "request", None) is None:
        # a live engine's request the dialect parser cannot read: judge the body as sent
        _determinism_from_body(llorch_ctx, s)
        return
    problems = [
        p
        for p in forwarded_problems(run.request, plan, llorch_ctx.dialect)
        if p.field in ("seed", "temperature (strict)", "top_p (strict)")
    ]
    llorch_ctx.notes["engine_sampling"] = {
        "seed": plan.seed,
        "temperature": plan.temperature,
        "top_p": plan.top_p,
        "top_k": plan.top_k,
    }
    llorch_ctx.check(
        not problems,
        "the engine was not asked for the task's seed and greedy (deterministic) sampling",
        "determinism 'strict' requested; "
        + "; ".join(p.describe() for p in problems)
        + f" (request body sampling fields: {s})",
        ids=("OC-TEST-7002",),
    )


def _determinism_from_body(ctx: ScenarioContext, s: dict[str, list[Any]]) -> None:
    """Fallback when no parsed view exists: the seed and a greedy knob must be in the body."""
    seed = ctx.last.request.seed
    greedy = (
        any(t == 0 for t in s.get("temperature", []))
        or any(d is False for d in s.get("do_sample", []))
        or any(k == 1 for k in s.get("top_k", []))
    )
    ctx.check(
        seed in s.get("seed", []) + s.get("random_seed", []) and greedy,
        "the engine was not asked for the task's seed and greedy (deterministic) sampling",
        f"request body sampling fields: {s}",
        ids=("OC-TEST-7002",),
    )


@then("both replicas received identical sampling parameters")
def replicas_sampling(llorch_ctx: ScenarioContext) -> None:
    if llorch_ctx.in_process or len(llorch_ctx.replica_journals) != 2:
        llorch_ctx.unsupported("no engine journals for the replicas")
    samples = []
    for j in llorch_ctx.replica_journals:
        gen = [e for e in j.entries if getattr(e, "generation", False)]
        samples.append(_sampling(gen[-1]) if gen else None)
    llorch_ctx.notes["replica_sampling"] = samples
    llorch_ctx.check(
        samples[0] is not None and samples[0] == samples[1],
        "the replicas got different sampling parameters",
        str(samples),
        ids=("OC-ADAPT-5010",),
    )


# -- secrets -------------------------------------------------------------------------------------
@then("no log record, error message or event contains the API key")
def no_key_leak(llorch_ctx: ScenarioContext) -> None:
    key = llorch_ctx.api_key
    if not key:
        llorch_ctx.fail("the scenario configured no API key", ids=("HTU-1004",))
    ids = (
        "WA-INT-3005",
        "HTU-1004",
        "HTU-SEC-1402",
        "HTU-EXP-1104",
        "ORCH-3613",
        "HTU-ERR-4001",
        "OC-ADAPT-OAI-6020",
    )
    for text in llorch_ctx.logs.texts():
        if key in text:
            llorch_ctx.fail(
                "the API key appears in a log record",
                f"record: {text[:200].replace(key, '<KEY>')}",
                ids=ids,
            )
    for run in llorch_ctx.runs:
        for _, ev in run.events:
            if key in json.dumps(ev.data, default=str):
                llorch_ctx.fail("the API key appears in an event", f"{ev.kind}", ids=ids)
        if run.raised is not None and key in repr(run.raised):
            llorch_ctx.fail("the API key appears in a raised error", ids=ids)
    no_secret_shapes(llorch_ctx)


#: The secrets requirements a secret-shaped value in a log record breaks.
_SECRET_LOG_IDS = (
    "HTU-SEC-1402",
    "WA-INT-3005",
    "HTU-1004",
    "HTU-EXP-1104",
    "ORCH-3613",
    "OC-ADAPT-OAI-6020",
)


@then("no adapter log record carries a secret-shaped value")
def no_secret_shapes(llorch_ctx: ScenarioContext) -> None:
    """Not only the configured key: whatever the project's redactor would mask (any bearer
    token, API-key header or pair, URL credentials, ``sk-``/``hf_`` keys — its own patterns)
    must never reach a log record raw, whoever's secret it is."""
    from ._values import secret_shaped

    found = secret_shaped(llorch_ctx.logs.texts())
    secrets = [s for s in (llorch_ctx.api_key, *llorch_ctx.env_secrets) if s]
    for text in llorch_ctx.logs.texts():
        for secret in secrets:
            if secret in text:
                found.append(f"a configured or environment secret ({_fp(secret)})")
    llorch_ctx.check(
        not found,
        "a log record carries a secret-shaped value unredacted",
        f"{len(found)} fragment(s), shown redacted: {found[:3]}",
        ids=_SECRET_LOG_IDS,
    )


@then("no error-level log record carries request headers")
def no_headers_at_error(llorch_ctx: ScenarioContext) -> None:
    import logging

    for r in llorch_ctx.logs.records:
        if r.levelno < logging.ERROR:
            continue
        text = (r.getMessage() + json.dumps(LogCapture.fields(r), default=str)).lower()
        llorch_ctx.check(
            "authorization" not in text,
            "an error-level record carries the Authorization header",
            ids=("OC-ADAPT-OAI-6020",),
        )


@then("the engine received the API key as a Bearer token")
def bearer_sent(llorch_ctx: ScenarioContext) -> None:
    key = llorch_ctx.api_key or ""
    want = f"Bearer {_fp(key)}"
    got = [e.header("authorization") for e in llorch_ctx.generation_entries()]
    llorch_ctx.check(
        got and all(g == want for g in got),
        "the configured key was not sent as Authorization: Bearer",
        f"got {got}",
        ids=("HTU-1005",),
    )


@then("the engine received no Authorization header")
def no_auth(llorch_ctx: ScenarioContext) -> None:
    got = [
        e.header("authorization") for e in llorch_ctx.journal().entries if e.header("authorization")
    ]
    llorch_ctx.check(
        not got,
        "an Authorization header was sent although no key was configured",
        f"got {got}",
        ids=("HTU-1005", "HTU-EXP-1101"),
    )


@then("the engine received none of the environment's credentials")
def no_env_credentials(llorch_ctx: ScenarioContext) -> None:
    fps = {_fp(s): s for s in llorch_ctx.env_secrets}
    for e in llorch_ctx.journal().entries:
        for name, value in e.headers:
            for fp, raw in fps.items():
                if fp in value or raw in value:
                    llorch_ctx.fail(
                        "a credential from the environment reached the engine",
                        f"header {name!r} on {e.method} {e.path}",
                        ids=("HTU-EXP-1101", "OC-ADAPT-OAI-6021"),
                    )


# -- logs ----------------------------------------------------------------------------------------
def _records_with(
    ctx: ScenarioContext, keys: tuple[str, ...], *, non_null: tuple[str, ...]
) -> list[dict[str, Any]]:
    out = []
    for r in ctx.logs.records:
        f = LogCapture.fields(r)
        if all(k in f for k in keys) and all(f.get(k) is not None for k in non_null):
            out.append(f)
    return out


@then(
    "a log record carries job_id, session_id, engine, engine_version, tokens_out and decode_time_ms"
)
def log_fields(llorch_ctx: ScenarioContext) -> None:
    keys = ("job_id", "session_id", "engine", "engine_version", "tokens_out", "decode_time_ms")
    found = _records_with(llorch_ctx, keys, non_null=keys)
    req = llorch_ctx.last.request
    matching = [
        f for f in found if f.get("job_id") == req.task_id and f.get("session_id") == req.session_id
    ]
    llorch_ctx.check(
        matching,
        "no completion log record carries job_id, session_id, engine, engine_version, tokens_out and decode_time_ms",
        f"{len(llorch_ctx.logs.records)} records captured; {len(found)} with all keys",
        ids=("WA-INT-3007", "ADAPT-3004", "OC-ADAPT-OAI-6031"),
    )
    check_log_values(llorch_ctx, matching, ids=("WA-INT-3007", "ADAPT-3004", "OC-ADAPT-OAI-6031"))


def check_log_values(
    ctx: ScenarioContext, records: list[dict[str, Any]], *, ids: tuple[str, ...]
) -> None:
    """Every matching record's values: the task's ids, the engine's name and version, the
    delivered token count, the engine's prompt token count (``steps._values``)."""
    from ._values import log_value_problems

    run = ctx.last
    term = run.terminal
    delivered = len(run.tokens) if term is not None and term.kind == "end" else None
    engines = {str(getattr(run.request.engine, "value", run.request.engine))}
    caps = ctx.surface.get("capabilities")
    if isinstance(caps, Capabilities) and caps.engine:
        engines.add(caps.engine)
    problems: list[str] = []
    prompt_tokens = _engine_prompt_tokens(ctx, run)
    for f in records:
        problems += log_value_problems(
            f,
            task_id=run.request.task_id,
            session_id=run.request.session_id,
            engines=engines,
            engine_versions=engine_versions(ctx),
            delivered=delivered,
            prompt_tokens=prompt_tokens,
        )
    ctx.notes["log_value_check"] = {
        "records": len(records),
        "engine_prompt_tokens": prompt_tokens,
        "delivered": delivered,
    }
    ctx.check(
        not problems,
        "a completion log record carries wrong values",
        "; ".join(dict.fromkeys(problems))[:600],
        ids=ids,
    )


def _engine_prompt_tokens(ctx: ScenarioContext, run: Any) -> int | None:
    """The engine's own prompt token count for ``run`` (mock engines only)."""
    if not _has_mock_engine(ctx):
        return None
    gens = [e for e in ctx.generation_entries() if getattr(e, "plan", None) is not None]
    mine = [e for e in gens if e.t_received >= run.t_start]
    return int(mine[-1].plan.prompt_tokens) if mine else None


def _has_mock_engine(ctx: ScenarioContext) -> bool:
    return not (
        ctx.per_run or ctx.in_process or ctx.live or getattr(ctx.target, "orchestrator", False)
    )


def engine_versions(ctx: ScenarioContext) -> list[str] | None:
    """What the engine itself reports as its version (``None`` without a mock engine).

    For the OpenAI API the engine's "version" is the upstream model (OC-ADAPT-OAI-6010),
    optionally with the API's version (``model@date``).
    """
    if not (_has_mock_engine(ctx) or ctx.proxied):
        return None
    engine = ctx.need_engine("engine version")
    own = str(getattr(engine, "engine_version", "") or "")
    if ctx.proxied and not own:
        # the fault proxy asks the live engine (llama.cpp /props, vLLM /version, Triton /v2)
        ctx.unsupported(f"live engine at {ctx.target.engine_url}: it does not report a version")
    if ctx.dialect == "openai":
        model = str(getattr(engine, "model", "") or ctx.build_config().get("model", ""))
        return [model, f"{model}@{own}"]
    return [own] if own else None


@then("a log record carries tokens_in, pool_id and replica_id")
def log_fields_more(llorch_ctx: ScenarioContext) -> None:
    found = _records_with(
        llorch_ctx,
        ("tokens_in", "pool_id", "replica_id", "job_id"),
        non_null=("pool_id", "replica_id", "job_id"),
    )
    if found:
        req = llorch_ctx.last.request
        mine = [f for f in found if f.get("job_id") == req.task_id]
        llorch_ctx.check(
            any(f.get("tokens_in") is not None for f in mine),
            "no log record of this task carries tokens_in as a number",
            f"tokens_in values: {[f.get('tokens_in') for f in mine] or 'no record of this task'}",
            ids=("ADAPT-3004",),
        )
        check_log_values(llorch_ctx, mine, ids=("ADAPT-3004",))
    if not found:
        want = ("tokens_in", "pool_id", "replica_id", "job_id")
        best: dict[str, Any] = {}
        for r in llorch_ctx.logs.records:
            f = LogCapture.fields(r)
            if sum(k in f for k in want) > sum(k in best for k in want):
                best = f
        have = {k: best.get(k) for k in want if k in best}
        missing = [k for k in want if best.get(k) is None and k != "tokens_in"]
        missing += ["tokens_in"] if "tokens_in" not in best else []
        llorch_ctx.fail(
            "no log record carries tokens_in, pool_id and replica_id",
            f"the closest of {len(llorch_ctx.logs.records)} records has {have or 'none of them'}; "
            f"missing or null: {missing} (pool_id/replica_id come from the factory config)",
            ids=("ADAPT-3004",),
        )


# "retry", "retried", "retries", "retrying", "backoff"/"back-off": the English forms a log may use.
_RETRY_WORDS = re.compile(r"retr(y|ied|ies|ying)|back-?off")


@then("a log record mentions the retry")
def log_retry(llorch_ctx: ScenarioContext) -> None:
    for r in llorch_ctx.logs.records:
        f = LogCapture.fields(r)
        text = r.getMessage().lower()
        if (
            _RETRY_WORDS.search(text)
            or any(_RETRY_WORDS.search(str(k)) or k == "attempt" for k in f if f.get(k) is not None)
            or str(f.get("action", "")).lower() == "retry"
        ):
            return
    llorch_ctx.fail(
        "no log record mentions the retry or backoff",
        f"{len(llorch_ctx.logs.records)} records captured",
        ids=("OC-ADAPT-OAI-6030",),
    )


# -- surface -------------------------------------------------------------------------------------
@then("it implements the WorkerAdapter protocol")
def is_protocol(llorch_ctx: ScenarioContext) -> None:
    s = llorch_ctx.surface
    llorch_ctx.check(
        s.get("is_protocol"),
        "the adapter does not implement the WorkerAdapter protocol",
        repr(type(s.get("adapter"))),
        ids=("ADAPT-3000", "ORCH-3620", "OC-ADAPT-OAI-6000"),
    )


@then("health is live and ready")
def health_ready(llorch_ctx: ScenarioContext) -> None:
    h = llorch_ctx.surface.get("health")
    llorch_ctx.check(
        isinstance(h, WorkerHealth) and h.live is True and h.ready is True,
        "health is not {live: true, ready: true} for a ready engine",
        repr(h),
        ids=(
            "ADAPT-3000",
            "OC-ADAPT-5001",
            "ORCH-3054",
            "OC-ADAPT-5020",
            "OC-ADAPT-5040",
            "OC-ADAPT-5060",
            "OC-ADAPT-OAI-6000",
        ),
    )


@then("health is not ready")
def health_not_ready(llorch_ctx: ScenarioContext) -> None:
    h = llorch_ctx.surface.get("health")
    llorch_ctx.check(
        isinstance(h, WorkerHealth) and h.ready is False,
        "health says ready while the engine loads",
        repr(h),
        ids=("ADAPT-3000",),
    )


@then("props report slot counts as integers or nothing")
def props_types(llorch_ctx: ScenarioContext) -> None:
    p = llorch_ctx.surface.get("props")
    ok = isinstance(p, WorkerProps) and all(
        v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)
        for v in (p.slots_total, p.slots_free)
    )
    if ok and isinstance(p, WorkerProps) and p.slots_total is not None and p.slots_free is not None:
        ok = p.slots_free <= p.slots_total
    llorch_ctx.check(
        ok,
        "props are not WorkerProps with non-negative slot counts (free <= total)",
        repr(p),
        ids=("ADAPT-3000",),
    )


@then("props report at least one slot")
def props_slots(llorch_ctx: ScenarioContext) -> None:
    p = llorch_ctx.surface.get("props")
    llorch_ctx.check(
        isinstance(p, WorkerProps) and (p.slots_total or 0) >= 1,
        "props report no slots",
        repr(p),
        ids=("OC-ADAPT-5001", "ORCH-3054"),
    )


@then("engine_version is a non-empty stable string")
def version_stable(llorch_ctx: ScenarioContext) -> None:
    """Non-empty, the same on every call (before and after a submit, and in ``started``), and
    equal to the engine's own version where the engine is known."""
    seen = _versions_seen(llorch_ctx)
    v = seen[0][1] if seen else None
    llorch_ctx.check(
        isinstance(v, str) and v.strip() and all(x == v for _, x in seen),
        "engine_version is empty or unstable",
        "; ".join(f"{where}: {x!r}" for where, x in seen),
        ids=("ADAPT-3000", "OC-ADAPT-OAI-6000"),
    )
    own = engine_versions(llorch_ctx)
    if own is not None:
        from ._values import version_matches

        llorch_ctx.check(
            version_matches(v, own),
            "engine_version is not the version the engine reports",
            f"adapter says {v!r}, the engine reports {' or '.join(own)!r}",
            ids=("ADAPT-3000", "OC-ADAPT-OAI-6000"),
        )


def _versions_seen(ctx: ScenarioContext) -> list[tuple[str, Any]]:
    """Every engine_version the adapter gave: each surface call, in order, then ``started``."""
    out: list[tuple[str, Any]] = [
        (f"engine_version() call {n + 1}", v)
        for n, v in enumerate(ctx.surface.get("engine_versions", []))
    ]
    for n, run in enumerate(ctx.runs):
        for _, ev in run.events:
            if ev.kind == "started" and "engine_version" in ev.data:
                out.append((f"started of stream {n + 1}", ev.data.get("engine_version")))
    return out


@then("capabilities name the engine and its version")
def caps_named(llorch_ctx: ScenarioContext) -> None:
    c = llorch_ctx.surface.get("capabilities")
    ok = (
        isinstance(c, Capabilities)
        and bool(c.engine)
        and c.engine_version == llorch_ctx.surface.get("engine_version")
    )
    llorch_ctx.check(
        ok,
        "capabilities do not name the engine and the same engine_version",
        repr(c),
        ids=("ADAPT-3000", "OC-ADAPT-5050"),
    )


@then("engine_version names the engine's own version")
def version_from_engine(llorch_ctx: ScenarioContext) -> None:
    """Every engine_version the adapter gave (each call, before and after a submit, and each
    ``started``) is the version the engine reports (``steps._values.version_matches``)."""
    from ._values import version_matches

    llorch_ctx.need_engine("engine version")
    own = engine_versions(llorch_ctx) or []
    seen = _versions_seen(llorch_ctx)
    bad = [f"{where}: {x!r}" for where, x in seen if not version_matches(x, own)]
    llorch_ctx.notes["versions"] = {"engine": own, "adapter": [x for _, x in seen]}
    llorch_ctx.check(
        bool(own) and bool(seen) and not bad,
        "engine_version is not the version the engine reports",
        f"engine reports {' or '.join(own)!r}; adapter gave {'; '.join(bad) or 'nothing'}",
        ids=(
            "OC-ADAPT-5011",
            "OC-ADAPT-5030",
            "ORCH-3055",
            "OC-ADAPT-5050",
            "OC-ADAPT-5070",
            "ORCH-3057",
        ),
    )


@then("engine_version names the upstream model")
def version_is_model(llorch_ctx: ScenarioContext) -> None:
    model = llorch_ctx.build_config().get("model", "")
    v = str(llorch_ctx.surface.get("engine_version") or "")
    llorch_ctx.check(
        bool(model) and str(model) in v,
        "engine_version is not the upstream model string",
        f"{v!r} vs model {model!r}",
        ids=("OC-ADAPT-OAI-6010",),
    )


@then("the adapter exposes nothing beyond the WorkerAdapter contract")
def nothing_exposed(llorch_ctx: ScenarioContext) -> None:
    """No engine URL or internal route leaks through capabilities or events."""
    base = llorch_ctx.base_url().rstrip("/")
    blobs = [repr(llorch_ctx.surface.get("capabilities"))]
    for run in llorch_ctx.runs:
        blobs.extend(json.dumps(e.data, default=str) for _, e in run.events)
    leaks = [b[:120] for b in blobs if base in b or "/v1/" in b]
    llorch_ctx.check(
        not leaks,
        "engine endpoints leak through the adapter's contract surface",
        f"{leaks[:3]}",
        ids=("OC-ADAPT-5002", "OC-ADAPT-5021", "OC-ADAPT-OAI-6003", "ORCH-3055"),
    )


# -- the shared HTTP layer -------------------------------------------------------------------------
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


# -- the harness's seed corpus -----------------------------------------------------------------
@then(parsers.parse("the seed corpus has at least {n:d} distinct seeds"))
def corpus_size(llorch_ctx: ScenarioContext, n: int) -> None:
    from llorch_conformance.conformance import SEED_CORPUS

    llorch_ctx.notes["corpus"] = {
        "size": len(SEED_CORPUS),
        "first": SEED_CORPUS[:3],
        "last": SEED_CORPUS[-3:],
    }
    llorch_ctx.check(
        len(set(SEED_CORPUS)) >= n,
        f"the corpus has {len(set(SEED_CORPUS))} distinct seeds",
        ids=("OC-TEST-7003",),
    )


@then("every corpus seed gives the same generation plan twice")
def corpus_stable(llorch_ctx: ScenarioContext) -> None:
    from llorch_conformance.conformance import SEED_CORPUS
    from llorch_conformance.mock_engines import make_plan

    unstable = []
    distinct = set()
    for seed in SEED_CORPUS:
        a = make_plan("determinism corpus prompt", seed=seed, max_tokens=16)
        b = make_plan("determinism corpus prompt", seed=seed, max_tokens=16)
        if a.tokens != b.tokens:
            unstable.append(seed)
        distinct.add(a.tokens)
    llorch_ctx.notes["corpus_distinct_plans"] = len(distinct)
    llorch_ctx.check(
        not unstable, "corpus seeds give unstable plans", str(unstable[:8]), ids=("OC-TEST-7003",)
    )
    llorch_ctx.check(
        len(distinct) > 1,
        "every corpus seed gives the same plan: the seeds are not used",
        ids=("OC-TEST-7003",),
    )


@then("the mock adapter is one of the built-in adapters")
def mock_builtin(llorch_ctx: ScenarioContext) -> None:
    from llorch_conformance import adapters

    llorch_ctx.check(
        "mock" in adapters.BUILTIN_ADAPTERS,
        "no built-in mock adapter is registered",
        ids=("ORCH-3058",),
    )
