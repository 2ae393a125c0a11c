"""How a stream run is judged, shared by the steps of several feature areas.

Not steps: the checks the area modules share — the stream ended cleanly (grammar, one terminal
event), its values (counts, metrics, usage), the plan the task must produce (``steps._oracle``)
and what the engine was asked for (the journal, field by field), the engine's own version strings,
the sampling a request asked for and the log records a check reads. The requirement IDs a failure
names (``GRAMMAR_IDS``, ``ERROR_IDS``, ``RETRY_IDS``) live here once.
"""

from __future__ import annotations

import json
from typing import Any

from llorch_conformance.adapters.api import Capabilities

from ._context import STREAM_LIMIT_S, LogCapture, ScenarioContext, StreamRun

#: The adapter's grammar IDs, and the facade's (SSE order, nothing after the terminal frame) for
#: the same check on an SSE stream: a failure names those the scenario carries.
GRAMMAR_IDS = (
    "WA-INT-3001",
    "ADAPT-3001",
    "ADAPT-3000",
    "HTU-1003",
    "OC-ADAPT-OAI-6011",
    "SSE-1002",
    "ORCH-3407",
)


ERROR_IDS = (
    "ADAPT-3002",
    "WA-INT-3004",
    "WA-INT-3003",
    "WA-INT-3008",
    "HTU-ERR-4002",
    "HTU-ERR-4004",
    "HTU-EXP-1106",
    "ADAPT-3005",
    "HTU-PERF-1302",
)


def ended_cleanly(ctx: ScenarioContext, run: StreamRun) -> None:
    """No hang, nothing raised after submit (failures must arrive as the terminal event)."""
    if run.hung:
        ctx.fail(
            f"the stream did not end within {STREAM_LIMIT_S:g} s",
            f"events so far: {run.kinds[-10:]}",
            ids=("ADAPT-3005", "HTU-1001", "HTU-PERF-1302", *GRAMMAR_IDS),
        )
    if run.raised is not None:
        ctx.fail(
            "the adapter raised instead of ending the stream with a terminal event",
            repr(run.raised)[:300],
            ids=("ADAPT-3002", *GRAMMAR_IDS),
        )


#: Counts of an ending (``end`` summary, tokens delivered) and typed metrics: the TokenEvent
#: payloads (ADAPT-3001) and the README_LLM/metrics fields (ADAPT-3004).
_VALUE_IDS = ("ADAPT-3001", "WA-INT-3001", "ADAPT-3004", "OC-ADAPT-5020", "OC-ADAPT-OAI-6031")


def check_values(ctx: ScenarioContext, run: StreamRun) -> None:
    """Value checks of every stream: non-negative counts that agree with the delivered tokens on
    whatever ending (``end``, cancelled ``end``, ``error``), and metrics typed per the contract."""
    from ._values import count_problems, metrics_problems

    # What the adapter forwarded first: a count that cannot be true is most often the echo of a
    # task field the engine never received (a dropped max_tokens), and that is the root cause.
    if generation_of(ctx, run) is not None:
        check_forwarded(ctx, run)
    delivered = len(run.tokens)
    problems: list[str] = []
    for _, ev in run.events:
        if ev.kind == "metrics" and isinstance(ev.data, dict):
            problems.extend(metrics_problems(ev.data, delivered))
    term = run.terminal
    if term is not None and isinstance(term.data, dict):
        problems.extend(count_problems(term.kind, term.data, delivered))
        if term.kind == "end":
            problems.extend(_usage_problems(ctx, run, term.data))
    ctx.check(
        not problems,
        "the stream reports counts or metrics that cannot be true",
        "; ".join(problems[:6]),
        ids=_VALUE_IDS,
    )


def generation_of(ctx: ScenarioContext, run: StreamRun) -> Any:
    """The journal's plan of ``run``'s generation on a mock engine, or ``None`` (no engine
    journal here, or no generation reached the engine)."""
    if ctx.in_process or ctx.per_run or getattr(ctx.target, "orchestrator", False):
        return None
    if (ctx.live and not ctx.proxied) or ctx.engine is None:
        return None  # (never start or reset an engine from a check)
    entries = [e for e in ctx.generation_entries() if getattr(e, "plan", None) is not None]
    mine = [e for e in entries if e.t_received >= run.t_start]
    return mine[-1].plan if mine else None


def _usage_problems(ctx: ScenarioContext, run: StreamRun, data: dict[str, Any]) -> list[str]:
    """``end.usage`` against the task and the stream: an engine cannot generate more tokens than
    the task allowed, nor fewer than were delivered. (Not against the plan's own count: engines
    differ in whether the EOS token counts as generated — TGI and Triton count it.)"""
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return []
    out: list[str] = []
    done = usage.get("completion_tokens")
    if isinstance(done, int) and not isinstance(done, bool):
        if done > run.request.max_tokens:
            out.append(
                f"end.usage.completion_tokens = {done} exceeds the task's max_tokens "
                f"{run.request.max_tokens}"
            )
        if done < len(run.tokens):
            out.append(f"end.usage.completion_tokens = {done} < {len(run.tokens)} tokens delivered")
    return out


def planned(ctx: ScenarioContext, run: StreamRun) -> Any:
    """The plan this run's task must produce: computed from the task alone (``steps._oracle``),
    never from the request the adapter sent. A target without an engine journal (live engines,
    black-box orchestrators) is reported unsupported by the journal check first."""
    if not ctx.in_process:
        observed = journal_plan(ctx, run)
        if ctx.proxied:
            # A live engine behind the fault proxy: no plan can be computed for it, so the
            # oracle is the engine's own output as the proxy saw it (check_forwarded still
            # holds the adapter's request to the task).
            return observed
    return ctx.expected_plan(run.request)


def journal_plan(ctx: ScenarioContext, run: StreamRun) -> Any:
    """The engine's parsed view of the adapter's generation request for ``run`` (journal)."""
    entries = [e for e in ctx.generation_entries() if getattr(e, "plan", None) is not None]
    mine = [e for e in entries if e.t_received >= run.t_start] or entries
    if not mine:
        ctx.fail(
            "the engine rendered no generation for this task",
            "the journal has no generation request with a plan",
            ids=("ADAPT-3000", *GRAMMAR_IDS),
        )
    return mine[-1].plan


def check_forwarded(ctx: ScenarioContext, run: StreamRun) -> None:
    """What the adapter forwarded (the engine's parsed request) must be what the task asked for:
    prompt or messages, max_tokens, seed, stop sequences, engine parameters, greedy under
    ``determinism: strict``."""
    if ctx.in_process:
        return
    from ._oracle import forwarded_problems

    parsed = journal_plan(ctx, run)
    if ctx.proxied and getattr(parsed, "request", None) is None:
        # a live engine accepted a request the dialect's parser cannot read: nothing to compare
        why = getattr(parsed, "parse_error", None)
        ctx.notes["forwarded"] = f"not checked: the {ctx.dialect} parser could not read it ({why})"
        return
    problems = forwarded_problems(run.request, parsed, ctx.dialect)
    ctx.notes["forwarded"] = [p.describe() for p in problems] or "as asked"
    if problems:
        ctx.fail(
            "the engine did not receive what the task asked for",
            "; ".join(p.describe() for p in problems),
            ids=problems[0].ids,
        )


RETRY_IDS = ("WA-INT-3003", "HTU-1002", "ADAPT-3005", "OC-ADAPT-OAI-6002", "HTU-EXP-1103")


NO_RETRY_IDS = ("WA-INT-3004", "HTU-EXP-1102", "WA-INT-3008")


def secret_fp(secret: str) -> str:
    from llorch_conformance.mock_engines import redact_secret

    return str(redact_secret(secret))


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


def sampling(entry: Any) -> dict[str, Any]:
    try:
        body = json.loads(entry.body)
    except ValueError:
        return {}
    return {
        k: _walk(body, k)
        for k in ("seed", "random_seed", "temperature", "top_p", "top_k", "do_sample")
    }


def records_with(
    ctx: ScenarioContext, keys: tuple[str, ...], *, non_null: tuple[str, ...]
) -> list[dict[str, Any]]:
    out = []
    for r in ctx.logs.records:
        f = LogCapture.fields(r)
        if all(k in f for k in keys) and all(f.get(k) is not None for k in non_null):
            out.append(f)
    return out


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


def versions_seen(ctx: ScenarioContext) -> list[tuple[str, Any]]:
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
