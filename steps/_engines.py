"""Steps of ``features/engines``: per-engine facts — endpoints, engine parameters, request paths, metrics scrape, version, the mock."""

from __future__ import annotations

import json
import re
from typing import Any

from pytest_bdd import given, parsers, then, when

from llorch_conformance.adapters.api import HarnessError, WorkerProps

from ._checks import ended_cleanly, engine_versions, journal_plan, sampling, versions_seen
from ._context import LogCapture, ScenarioContext


@given(parsers.parse("the task asks for the {endpoint} endpoint"))
def task_endpoint(llorch_ctx: ScenarioContext, endpoint: str) -> None:
    """``TaskRequest.extra["endpoint"]``: ``chat`` (messages) or ``completions`` (prompt)."""
    llorch_ctx.request_extra["endpoint"] = endpoint


@given(parsers.parse("the task passes engine parameters '{params}'"))
def task_engine_params(llorch_ctx: ScenarioContext, params: str) -> None:
    """``TaskRequest.extra["engine_params"]``: engine fields the contract has no field for."""
    try:
        value = json.loads(params)
    except ValueError as exc:
        raise HarnessError(f"engine parameters in a feature are not JSON: {exc}") from None
    llorch_ctx.request_extra["engine_params"] = value


@when("the adapter's engine metrics are scraped")
def scrape_metrics(llorch_ctx: ScenarioContext) -> None:
    adapter = llorch_ctx.get_adapter()
    scrape = getattr(adapter, "engine_metrics", None) or getattr(adapter, "scrape_metrics", None)
    if scrape is None:
        llorch_ctx.fail(
            "the adapter offers no engine metrics scrape (engine_metrics()) and does not declare "
            "'metrics_scrape' unsupported",
            ids=("OC-ADAPT-5001a",),
        )
    else:
        llorch_ctx.notes["metrics_scrape"] = repr(llorch_ctx.call(scrape))[:500]


@then("the metrics event reports latency and token counts")
def metrics_latency(llorch_ctx: ScenarioContext) -> None:
    """A metrics event with latency (ms) and tokens_out, both numbers, tokens_out equal to the
    tokens delivered (the stream ended normally, so every token was counted)."""
    from ._values import is_count, is_nonneg_number, metrics_problems

    run = llorch_ctx.last
    ended_cleanly(llorch_ctx, run)
    ids = ("OC-ADAPT-OAI-6031", "OC-ADAPT-5020", "ADAPT-3004")
    metrics = [e for _, e in run.events if e.kind == "metrics"]
    fields: dict[str, Any] = {}
    for m in metrics:
        fields.update(m.data)
    latency = [k for k in ("latency_first_token_ms", "latency_decode_ms") if k in fields]
    llorch_ctx.check(
        metrics and latency and "tokens_out" in fields,
        "no metrics event with latency and token counts",
        f"metrics fields: {sorted(fields)}",
        ids=ids,
    )
    problems = metrics_problems(fields, len(run.tokens))
    problems += [
        f"metrics.{k} = {fields[k]!r} is not a number"
        for k in latency
        if not is_nonneg_number(fields[k])
    ]
    term = run.terminal
    if (
        term is not None
        and term.kind == "end"
        and is_count(fields.get("tokens_out"))
        and fields["tokens_out"] != len(run.tokens)
    ):
        problems.append(
            f"metrics.tokens_out = {fields['tokens_out']}, {len(run.tokens)} tokens delivered"
        )
    llorch_ctx.check(
        not problems,
        "the metrics event's latency or token count cannot be true",
        "; ".join(problems[:6]),
        ids=ids,
    )


@then("there is one token event per upstream content delta")
def token_per_delta(llorch_ctx: ScenarioContext) -> None:
    run = llorch_ctx.last
    plan = journal_plan(llorch_ctx, run)  # the deltas the engine really sent
    llorch_ctx.check(
        len(run.tokens) == len(plan.tokens),
        "token events do not follow the upstream deltas one to one",
        f"{len(run.tokens)} token events for {len(plan.tokens)} content deltas",
        ids=("OC-ADAPT-OAI-6011", "OC-ADAPT-OAI-6001"),
    )


@then(parsers.parse('the started event names sampler profile "{profile}"'))
def started_profile(llorch_ctx: ScenarioContext, profile: str) -> None:
    got = llorch_ctx.runs[0].started_field("sampler_profile_version")
    llorch_ctx.check(
        got == profile,
        "started does not carry the sampler profile version",
        f"got {got!r}",
        ids=("OC-ADAPT-5030",),
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


@then("both replicas received identical sampling parameters")
def replicas_sampling(llorch_ctx: ScenarioContext) -> None:
    if llorch_ctx.in_process or len(llorch_ctx.replica_journals) != 2:
        llorch_ctx.unsupported("no engine journals for the replicas")
    samples = []
    for j in llorch_ctx.replica_journals:
        gen = [e for e in j.entries if getattr(e, "generation", False)]
        samples.append(sampling(gen[-1]) if gen else None)
    llorch_ctx.notes["replica_sampling"] = samples
    llorch_ctx.check(
        samples[0] is not None and samples[0] == samples[1],
        "the replicas got different sampling parameters",
        str(samples),
        ids=("OC-ADAPT-5010",),
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


@then("props report at least one slot")
def props_slots(llorch_ctx: ScenarioContext) -> None:
    p = llorch_ctx.surface.get("props")
    llorch_ctx.check(
        isinstance(p, WorkerProps) and (p.slots_total or 0) >= 1,
        "props report no slots",
        repr(p),
        ids=("OC-ADAPT-5001", "ORCH-3054"),
    )


@then("engine_version names the engine's own version")
def version_from_engine(llorch_ctx: ScenarioContext) -> None:
    """Every engine_version the adapter gave (each call, before and after a submit, and each
    ``started``) is the version the engine reports (``steps._values.version_matches``)."""
    from ._values import version_matches

    llorch_ctx.need_engine("engine version")
    own = engine_versions(llorch_ctx) or []
    seen = versions_seen(llorch_ctx)
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


@then("the mock adapter is one of the built-in adapters")
def mock_builtin(llorch_ctx: ScenarioContext) -> None:
    from llorch_conformance import adapters

    llorch_ctx.check(
        "mock" in adapters.BUILTIN_ADAPTERS,
        "no built-in mock adapter is registered",
        ids=("ORCH-3058",),
    )
