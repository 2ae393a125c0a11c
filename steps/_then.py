"""Then steps about the stream the caller saw: grammar, the plan oracle, terminal events."""

from __future__ import annotations

from typing import Any

from pytest_bdd import parsers, then

from llorch_conformance.adapters.api import check_stream

from ._context import STREAM_LIMIT_S, ScenarioContext, StreamRun

#: The adapter's grammar IDs, and the facade's (SSE order, nothing after the terminal frame) for
#: the same check on an SSE stream: a failure names those the scenario carries.
_GRAMMAR_IDS = (
    "WA-INT-3001",
    "ADAPT-3001",
    "ADAPT-3000",
    "HTU-1003",
    "OC-ADAPT-OAI-6011",
    "SSE-1002",
    "ORCH-3407",
)
_ERROR_IDS = (
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
            ids=("ADAPT-3005", "HTU-1001", "HTU-PERF-1302", *_GRAMMAR_IDS),
        )
    if run.raised is not None:
        ctx.fail(
            "the adapter raised instead of ending the stream with a terminal event",
            repr(run.raised)[:300],
            ids=("ADAPT-3002", *_GRAMMAR_IDS),
        )


@then("the stream follows the contract grammar")
def grammar(llorch_ctx: ScenarioContext) -> None:
    run = llorch_ctx.last
    ended_cleanly(llorch_ctx, run)
    problems = check_stream(e for _, e in run.events)
    llorch_ctx.check(
        not problems,
        "the stream breaks the started → token* → [metrics] → end|error grammar",
        "; ".join(problems[:8]),
        ids=_GRAMMAR_IDS,
    )
    check_values(llorch_ctx, run)


#: Counts of an ending (``end`` summary, tokens delivered) and typed metrics: the TokenEvent
#: payloads (ADAPT-3001) and the README_LLM/metrics fields (ADAPT-3004).
_VALUE_IDS = ("ADAPT-3001", "WA-INT-3001", "ADAPT-3004", "OC-ADAPT-5020", "OC-ADAPT-OAI-6031")


def check_values(ctx: ScenarioContext, run: StreamRun) -> None:
    """Value checks of every stream: non-negative counts that agree with the delivered tokens on
    whatever ending (``end``, cancelled ``end``, ``error``), and metrics typed per the contract."""
    from ._values import count_problems, metrics_problems

    # What the adapter forwarded first: a count that cannot be true is most often the echo of a
    # task field the engine never received (a dropped max_tokens), and that is the root cause.
    if _generation_of(ctx, run) is not None:
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


def _generation_of(ctx: ScenarioContext, run: StreamRun) -> Any:
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


def _fault_context(ctx: ScenarioContext) -> str:
    """`` after fault X (first-byte/inter-chunk timeout 0.3 s, deadline_ms 400)``: what the
    scenario did to the engine and the budgets the adapter was given, for failure titles."""
    parts = []
    if ctx.timeouts_s is not None:
        parts.append(f"first-byte/inter-chunk timeout {ctx.timeouts_s:g} s")
    deadline = ctx.request_fields.get("deadline_ms")
    if deadline is not None:
        parts.append(f"deadline_ms {deadline}")
    if ctx.max_attempts is not None:
        parts.append(f"{ctx.max_attempts} attempt(s)")
    faults = ", ".join(str(f) for f in ctx.faults) if ctx.faults else ""
    text = f" after the injected fault {faults}" if faults else ""
    if parts:
        text += f" ({', '.join(parts)})"
    return text


def _env_proxy_note(ctx: ScenarioContext, term: Any) -> str:
    """Name the usual cause when an adapter cannot connect in an environment-proxy scenario."""
    if not ctx.notes.get("env_vars_set") or term is None or term.kind != "error":
        return ""
    try:
        reached = len(ctx.generation_entries())
    except Exception:
        return ""
    if reached:
        return ""
    return (
        " — no request reached the engine while this scenario had HTTP_PROXY/HTTPS_PROXY/"
        "ALL_PROXY=http://127.0.0.1:9 set in the environment: the adapter's HTTP client read the "
        "environment's proxy settings (httpx: trust_env=False)"
    )


@then("the stream ends with end")
def ends_with_end(llorch_ctx: ScenarioContext) -> None:
    run = llorch_ctx.last
    ended_cleanly(llorch_ctx, run)
    term = run.terminal
    note = _env_proxy_note(llorch_ctx, term)
    # Read from the environment: the failure is about configuration, so it names those IDs.
    env_ids = ("HTU-EXP-1101", "HTU-SEC-1401", "OC-ADAPT-OAI-6021") if note else ()
    llorch_ctx.check(
        term is not None and term.kind == "end",
        "the stream did not end with an end event",
        f"terminal: {None if term is None else term.to_dict()}{note}",
        ids=(*env_ids, *_GRAMMAR_IDS, "WA-INT-3003", "HTU-1005", "OC-ADAPT-OAI-6002"),
    )
    check_values(llorch_ctx, run)


@then("the stream ends with an error event")
def ends_with_error(llorch_ctx: ScenarioContext) -> None:
    run = llorch_ctx.last
    ended_cleanly(llorch_ctx, run)
    term = run.terminal
    llorch_ctx.check(
        term is not None and term.kind == "error",
        "the stream did not end with an error event",
        f"terminal: {None if term is None else term.to_dict()}",
        ids=_ERROR_IDS,
    )


@then(parsers.parse('the stream ends with error code "{code}" and retriable {flag}'))
def ends_with_code(llorch_ctx: ScenarioContext, code: str, flag: str) -> None:
    run = llorch_ctx.last
    ended_cleanly(llorch_ctx, run)
    term = run.terminal
    want_retriable = flag.strip().lower() == "true"
    if term is None or term.kind != "error":
        llorch_ctx.fail(
            f"expected a terminal error {code} (retriable={want_retriable})"
            f"{_fault_context(llorch_ctx)}",
            f"terminal: {None if term is None else term.to_dict()}",
            ids=_ERROR_IDS,
        )
    got_code, got_retriable = term.data.get("code"), term.data.get("retriable")
    llorch_ctx.check(
        got_code == code,
        f"the error code is {got_code!r}, the mapping table says {code!r}",
        f"error event: {term.data}",
        ids=(
            "ADAPT-3002",
            "HTU-ERR-4002",
            "WA-INT-3004",
            "WA-INT-3008",
            "HTU-EXP-1106",
            *_ERROR_IDS,
        ),
    )
    llorch_ctx.check(
        got_retriable is want_retriable,
        f"the error says retriable={got_retriable!r}, the mapping table says {want_retriable}",
        f"error event: {term.data}",
        ids=(
            "WA-INT-3003",
            "WA-INT-3004",
            "HTU-ERR-4004",
            "HTU-EXP-1106",
            "ADAPT-3002",
            *_ERROR_IDS,
        ),
    )
    check_values(llorch_ctx, run)


@then(parsers.parse('the stream ends with the mapping table\'s error for "{condition}"'))
def ends_with_mapped(llorch_ctx: ScenarioContext, condition: str) -> None:
    """The expected code and retriability come from ``ERROR_MAPPING`` (never typed twice)."""
    from llorch_conformance.adapters.api import UpstreamCondition, mapping_for_condition

    try:
        row = mapping_for_condition(UpstreamCondition(condition))
    except ValueError:
        from llorch_conformance.adapters.api import HarnessError

        raise HarnessError(f"unknown upstream condition {condition!r} in a feature") from None
    llorch_ctx.notes["mapping_row"] = {
        "condition": condition,
        "code": row.code.value,
        "retriable": row.retriable,
    }
    ends_with_code(llorch_ctx, row.code.value, "true" if row.retriable else "false")


@then(parsers.parse("the error carries retry_after_ms of {ms:d}"))
def retry_after(llorch_ctx: ScenarioContext, ms: int) -> None:
    term = llorch_ctx.last.terminal
    got = None if term is None else term.data.get("retry_after_ms")
    llorch_ctx.check(
        got == ms,
        f"retry_after_ms is {got!r}, the engine's Retry-After says {ms}",
        f"terminal: {None if term is None else term.data}",
        ids=("WA-INT-3003", "HTU-ERR-4004", "HTU-EXP-1106"),
    )


@then("the error message is short and redacted")
def error_message_short(llorch_ctx: ScenarioContext) -> None:
    term = llorch_ctx.last.terminal
    if term is None or term.kind != "error":
        llorch_ctx.fail("no terminal error event to inspect", ids=("HTU-ERR-4003",))
    msg = term.data.get("message")
    llorch_ctx.check(
        isinstance(msg, str) and 0 < len(msg) <= 300,
        "the error message is missing or longer than 300 characters",
        f"message: {str(msg)[:400]!r}",
        ids=("HTU-ERR-4003", "HTU-ERR-4001"),
    )
    secrets = [s for s in (llorch_ctx.api_key, *llorch_ctx.env_secrets) if s]
    for s in secrets:
        llorch_ctx.check(
            s not in str(msg),
            "the error message contains a secret",
            ids=("HTU-ERR-4001", "HTU-ERR-4003"),
        )


# -- the plan oracle ---------------------------------------------------------------------------
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
            ids=("ADAPT-3000", *_GRAMMAR_IDS),
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


@then("the tokens reproduce the generation plan")
def tokens_match_plan(llorch_ctx: ScenarioContext) -> None:
    run = llorch_ctx.last
    ended_cleanly(llorch_ctx, run)
    check_forwarded(llorch_ctx, run)
    plan = planned(llorch_ctx, run)
    want = list(plan.tokens)
    got = run.tokens
    llorch_ctx.notes["plan"] = {
        "tokens": want[:64],
        "stop_reason": plan.stop_reason,
        "seed": getattr(plan, "seed", None),
        "max_tokens": getattr(plan, "max_tokens", None),
        "stop": list(getattr(plan, "stop", None) or ()),
    }
    if got == want:
        return
    joined_ok = "".join(got) == "".join(want)
    first = next(
        (i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
        min(len(got), len(want)),
    )
    llorch_ctx.fail(
        "the tokens differ from the plan of the task"
        + (" (same text, different token boundaries)" if joined_ok else ""),
        f"{len(got)} tokens vs {len(want)} planned; first difference at #{first}: "
        f"got {got[first : first + 3]!r}, planned {want[first : first + 3]!r}",
        ids=(
            "WA-INT-3001",
            "HTU-1003",
            "ADAPT-3001",
            "OC-ADAPT-OAI-6011",
            "OC-ADAPT-OAI-6001",
            "HTU-PERF-1302",
            "ADAPT-3101",
            "OC-ADAPT-5001",
            "OC-ADAPT-5020",
            "ADAPT-3000",
        ),
    )


@then("the tokens so far are a prefix of the generation plan")
def tokens_prefix(llorch_ctx: ScenarioContext) -> None:
    run = llorch_ctx.last
    check_forwarded(llorch_ctx, run)
    plan = planned(llorch_ctx, run)
    got = run.tokens
    llorch_ctx.check(
        got == list(plan.tokens[: len(got)]),
        "the tokens before the failure are not the plan's first tokens",
        f"got {got[:8]!r}, planned {list(plan.tokens[:8])!r}",
        ids=("WA-INT-3008", "WA-INT-3001"),
    )


@then("the end event reports the plan's token count and stop reason")
def end_matches_plan(llorch_ctx: ScenarioContext) -> None:
    run = llorch_ctx.last
    ended_cleanly(llorch_ctx, run)
    check_forwarded(llorch_ctx, run)
    plan = planned(llorch_ctx, run)
    term = run.terminal
    if term is None or term.kind != "end":
        llorch_ctx.fail(
            "no end event",
            f"terminal: {None if term is None else term.to_dict()}",
            ids=_GRAMMAR_IDS,
        )
    ids = ("ADAPT-3001", "WA-INT-3001", "ADAPT-3000")
    llorch_ctx.check(
        term.data.get("tokens_out") == len(run.tokens) == len(plan.tokens),
        "end.tokens_out does not count the tokens",
        f"tokens_out={term.data.get('tokens_out')!r}, token events={len(run.tokens)}, planned={len(plan.tokens)}",
        ids=ids,
    )
    reason = term.data.get("stop_reason")
    llorch_ctx.check(
        # a live engine's wire may not tell eos from a matched stop string (stop_reasons)
        reason == plan.stop_reason or reason in getattr(plan, "stop_reasons", ()),
        "end.stop_reason differs from the plan's stop reason",
        f"stop_reason={reason!r}, planned {plan.stop_reason!r}",
        ids=ids,
    )


@then("no token contains a replacement character")
def no_replacement(llorch_ctx: ScenarioContext) -> None:
    bad = [t for t in llorch_ctx.last.tokens if "\ufffd" in t]
    llorch_ctx.check(
        not bad,
        "a token carries U+FFFD: a multi-byte character was split and decoded in pieces",
        f"tokens: {bad[:4]!r}",
        ids=("WA-INT-3008", "HTU-1003", "ADAPT-3002"),
    )


@then("every metrics event carries only numbers")
def metrics_numbers(llorch_ctx: ScenarioContext) -> None:
    """Numbers where the contract says numbers (``steps._values``): a string, an object or
    ``null`` in a metrics event fails, and so does a negative or non-finite value."""
    from ._values import metrics_problems

    run = llorch_ctx.last
    problems: list[str] = []
    for _, ev in run.events:
        if ev.kind == "metrics":
            problems.extend(metrics_problems(ev.data, len(run.tokens)))
    llorch_ctx.check(
        not problems,
        "a metrics event carries values the contract does not allow",
        "; ".join(problems[:6]),
        ids=("ADAPT-3001", "ADAPT-3004", "OC-ADAPT-5020"),
    )


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


def _last_generation_done(journal: Any) -> bool:
    gens = [e for e in journal.entries if getattr(e, "generation", False)]
    return bool(gens) and gens[-1].t_last_byte is not None


@then("the first token reached the caller before the engine sent its last byte")
def incremental(llorch_ctx: ScenarioContext) -> None:
    run = llorch_ctx.last
    t_first = run.first_token_time()
    # The engine journals its last byte when its send completes, which can be a moment after the
    # client already read it: wait (bounded) for the record rather than race it.
    llorch_ctx.wait_journal(_last_generation_done, 5.0, "the engine's last byte")
    entries = llorch_ctx.generation_entries()
    t_last = entries[-1].t_last_byte if entries else None
    llorch_ctx.notes["incremental"] = {"t_first_token": t_first, "t_engine_last_byte": t_last}
    if t_first is None or t_last is None:
        llorch_ctx.fail(
            "no token or no engine timing to compare", ids=("HTU-PERF-1302", "ADAPT-3101")
        )
    llorch_ctx.check(
        t_first < t_last,
        "the first token was delivered only after the engine finished: the body was buffered",
        f"first token at {t_first:.3f}, engine's last byte at {t_last:.3f} (monotonic s)",
        ids=("HTU-PERF-1302", "ADAPT-3101"),
    )


@then("the stream ended well before the stall was over")
def ended_before_stall(llorch_ctx: ScenarioContext) -> None:
    run = llorch_ctx.last
    ended_cleanly(llorch_ctx, run)
    took = run.t_end - run.t_start
    llorch_ctx.notes["stream_seconds"] = round(took, 3)
    # The stalls in these scenarios last 3 s; an adapter bounded by its timeouts, deadline or
    # cancel ends the stream long before (a bound on behaviour, not a performance assertion).
    llorch_ctx.check(
        took < 2.5,
        "the stream lasted as long as the engine's silence: nothing bounded it",
        f"the stream took {took:.2f} s against a 3 s stall",
        ids=("ADAPT-3005", "HTU-1001", "WA-INT-3002", "ADAPT-3002"),
    )


@then("no token arrived after cancel returned")
def no_token_after_cancel(llorch_ctx: ScenarioContext) -> None:
    run = llorch_ctx.last
    _live_ended_before_cancel(llorch_ctx, run)
    if _generation_of(llorch_ctx, run) is not None:
        check_forwarded(llorch_ctx, run)  # a task cut short upstream never reaches the cancel
    if run.cancel_returned_at is None:
        llorch_ctx.fail(
            "cancel was never reached or never returned",
            f"events: {run.kinds[:12]}",
            ids=("WA-INT-3002", "OC-ADAPT-5001", "OC-ADAPT-5020"),
        )
    llorch_ctx.check(
        run.cancel_error is None,
        "cancel raised",
        repr(run.cancel_error),
        ids=("WA-INT-3002", "ADAPT-3000", "OC-ADAPT-5001", "OC-ADAPT-5020"),
    )
    ended_cleanly(llorch_ctx, run)
    llorch_ctx.check(
        run.tokens_after_cancel == 0,
        "tokens arrived after cancel returned",
        f"{run.tokens_after_cancel} token(s) after cancel",
        ids=("WA-INT-3002", "OC-ADAPT-5001", "OC-ADAPT-5020"),
    )
    term = run.terminal
    llorch_ctx.check(
        term is not None,
        "the cancelled stream never ended",
        f"events: {run.kinds[-6:]}",
        ids=("WA-INT-3002",),
    )


#: The cancel bound (WA-INT-3002's "cancel-ack window", ORCH-3601's "propagate cancellation
#: promptly"). The contracts give no number; the reference orchestrator honours a cancel at its
#: next pull of the stream (its token pacing is 10-30 ms), so a conformant adapter ends the stream
#: within one read of cancel() returning. 500 ms is that plus scheduling slack on a loaded CI
#: machine, and far below the 3 s stall of the cancel scenarios: only a real cancel meets it.
CANCEL_END_BOUND_S = 0.5
#: cancel() itself returns within this (it may wait, bounded, for the upstream close).
CANCEL_CALL_BOUND_S = 1.0


def _live_ended_before_cancel(ctx: ScenarioContext, run: StreamRun) -> None:
    """A live engine (fault proxy) may end its answer before the scenario's cancel point (an
    early end of sequence): then no cancel happened and the scenario cannot judge it."""
    term = run.terminal
    if (
        run.cancel_returned_at is None
        and ctx.proxied
        and term is not None
        and term.kind == "end"
        and term.data.get("stop_reason") != "cancelled"
    ):
        ctx.unsupported(
            f"live engine at {ctx.target.engine_url}: it ended its answer after "
            f"{len(run.tokens)} token(s), before the scenario's cancel point"
        )


@then("the cancelled stream ended promptly with end and stop_reason cancelled")
def cancel_ended_promptly(llorch_ctx: ScenarioContext) -> None:
    run = llorch_ctx.last
    _live_ended_before_cancel(llorch_ctx, run)
    ids = ("WA-INT-3002", "ADAPT-3000", "OC-ADAPT-5001", "OC-ADAPT-5020")
    ended_cleanly(llorch_ctx, run)
    if _generation_of(llorch_ctx, run) is not None:
        check_forwarded(llorch_ctx, run)
    if run.cancel_returned_at is None or run.cancel_called_at is None:
        llorch_ctx.fail("cancel was never reached or never returned", ids=ids)
    term = run.terminal
    t_end = run.terminal_time()
    call_s = run.cancel_returned_at - run.cancel_called_at
    end_s = None if t_end is None else t_end - run.cancel_returned_at
    llorch_ctx.notes["cancel"] = {
        "cancel_call_ms": round(call_s * 1000.0, 1),
        "terminal_after_cancel_ms": None if end_s is None else round(end_s * 1000.0, 1),
        "bound_ms": {
            "cancel_call": CANCEL_CALL_BOUND_S * 1000,
            "terminal": CANCEL_END_BOUND_S * 1000,
        },
    }
    llorch_ctx.check(
        term is not None and term.kind == "end" and term.data.get("stop_reason") == "cancelled",
        "a cancelled stream must end with end {stop_reason: cancelled}",
        f"terminal: {None if term is None else term.to_dict()}",
        ids=ids,
    )
    llorch_ctx.check(
        call_s <= CANCEL_CALL_BOUND_S,
        f"cancel() took {call_s * 1000:.0f} ms to return (bound {CANCEL_CALL_BOUND_S * 1000:.0f} ms)",
        ids=ids,
    )
    llorch_ctx.check(
        end_s is not None and end_s <= CANCEL_END_BOUND_S,
        f"the stream ended {'never' if end_s is None else f'{end_s * 1000:.0f} ms'} after cancel() "
        f"returned (bound {CANCEL_END_BOUND_S * 1000:.0f} ms)",
        f"events: {run.kinds[-6:]}",
        ids=ids,
    )
    check_values(llorch_ctx, run)


@then("the cancel returned without error")
def cancel_ok(llorch_ctx: ScenarioContext) -> None:
    res = llorch_ctx.notes.get("cancel_unknown")
    llorch_ctx.check(
        res == "ok", "cancelling an unknown task failed", str(res), ids=("ADAPT-3000",)
    )


@then("both replicas produced identical token streams")
def replicas_identical(llorch_ctx: ScenarioContext) -> None:
    runs = llorch_ctx.replica_runs
    if len(runs) != 2:
        llorch_ctx.fail("two replica runs were expected", ids=("WA-INT-3006", "OC-TEST-7001"))
    a, b = runs
    for r in runs:
        ended_cleanly(llorch_ctx, r)
    ta = [e.data.get("t") for _, e in a.events if e.kind == "token"]
    tb = [e.data.get("t") for _, e in b.events if e.kind == "token"]
    if llorch_ctx.proxied:
        # A live engine chooses its own chunking (real vLLM coalesces tokens when its API
        # process falls behind): the adapter cannot split a chunk back, so the text is compared.
        ja, jb = "".join(map(str, ta)), "".join(map(str, tb))
        llorch_ctx.check(
            len(ja) > 0 and ja == jb,
            "the replicas' texts differ (live engine: joined token text compared)",
            f"replica A {ja[:60]!r}, replica B {jb[:60]!r}",
            ids=("WA-INT-3006", "OC-TEST-7001", "OC-ADAPT-5010"),
        )
        return
    llorch_ctx.check(
        len(ta) > 0 and ta == tb,
        "the replicas' token streams differ",
        f"replica A {len(ta)} tokens, replica B {len(tb)} tokens; A[:4]={ta[:4]!r} B[:4]={tb[:4]!r}",
        ids=("WA-INT-3006", "OC-TEST-7001", "OC-ADAPT-5010"),
    )
    ia = [e.data.get("i") for _, e in a.events if e.kind == "token"]
    ib = [e.data.get("i") for _, e in b.events if e.kind == "token"]
    llorch_ctx.check(
        ia == ib, "the replicas' token indices differ", ids=("WA-INT-3006", "OC-TEST-7001")
    )


@then("both runs produced identical token streams")
def runs_identical(llorch_ctx: ScenarioContext) -> None:
    runs = llorch_ctx.runs[-2:]
    if len(runs) != 2:
        llorch_ctx.fail("two runs were expected", ids=("WA-INT-3006",))
    for r in runs:
        ended_cleanly(llorch_ctx, r)
    ta, tb = runs[0].tokens, runs[1].tokens
    if llorch_ctx.proxied:  # a live engine's own chunking varies: compare the text (see above)
        ja, jb = "".join(map(str, ta)), "".join(map(str, tb))
        llorch_ctx.check(
            len(ja) > 0 and ja == jb,
            "the same seeded task gave different texts (live engine: joined token text compared)",
            f"run 1 {ja[:60]!r}, run 2 {jb[:60]!r}",
            ids=("WA-INT-3006",),
        )
        return
    llorch_ctx.check(
        len(ta) > 0 and ta == tb,
        "the same seeded task gave different token streams",
        f"run 1 {len(ta)} tokens, run 2 {len(tb)} tokens",
        ids=("WA-INT-3006",),
    )


@then("the determinism signals are reported")
def determinism_signals(llorch_ctx: ScenarioContext) -> None:
    run = llorch_ctx.last
    ended_cleanly(llorch_ctx, run)
    req = run.request
    found: dict[str, Any] = {}
    for _, e in run.events:
        if e.kind in ("started", "end"):
            for k in ("engine_version", "seed", "sampler_profile_version"):
                if e.data.get(k) is not None:
                    found.setdefault(k, e.data[k])
    from ._context import LogCapture

    for r in llorch_ctx.logs.records:
        f = LogCapture.fields(r)
        for k in ("engine_version", "seed", "sampler_profile_version"):
            if f.get(k) is not None:
                found.setdefault(k, f[k])
    llorch_ctx.notes["determinism_signals"] = found
    missing = [k for k in ("engine_version", "seed", "sampler_profile_version") if k not in found]
    llorch_ctx.check(
        not missing,
        "determinism signals are missing from started/end and logs",
        f"missing: {missing}",
        ids=("ADAPT-3003",),
    )
    llorch_ctx.check(
        found.get("seed") == req.seed,
        "the reported seed is not the task's seed",
        f"{found.get('seed')!r} vs {req.seed!r}",
        ids=("ADAPT-3003",),
    )
    llorch_ctx.check(
        found.get("sampler_profile_version") == req.sampler_profile_version,
        "the reported sampler profile is not the task's",
        f"{found.get('sampler_profile_version')!r} vs {req.sampler_profile_version!r}",
        ids=("ADAPT-3003",),
    )
    from ._then_more import engine_versions
    from ._values import version_matches

    own = engine_versions(llorch_ctx)
    if own is not None:
        llorch_ctx.check(
            version_matches(found.get("engine_version"), own),
            "the reported engine_version is not the engine's own version",
            f"{found.get('engine_version')!r} vs the engine's {' or '.join(own)!r}",
            ids=("ADAPT-3003",),
        )


@then(parsers.parse('the started event names sampler profile "{profile}"'))
def started_profile(llorch_ctx: ScenarioContext, profile: str) -> None:
    started = next((e for _, e in llorch_ctx.runs[0].events if e.kind == "started"), None)
    got = None if started is None else started.data.get("sampler_profile_version")
    llorch_ctx.check(
        got == profile,
        "started does not carry the sampler profile version",
        f"got {got!r}",
        ids=("OC-ADAPT-5030",),
    )


@then("all adapters yield the same normalised events")
def oracle_same(llorch_ctx: ScenarioContext) -> None:
    """Every adapter against the plan computed from the task (never adapter against adapter, so
    a single selected target is still judged), then all of them against each other."""
    runs: dict[str, StreamRun] = llorch_ctx.scratch.get("oracle_runs", {})
    if len(runs) < 1:
        llorch_ctx.unsupported("no target with a mock engine was selected")
    normal = {name: _normalise(run) for name, run in runs.items()}
    dialects: dict[str, str] = llorch_ctx.scratch.get("oracle_dialects", {})
    llorch_ctx.notes["oracle_normalised"] = {
        n: {k: v for k, v in d.items() if k != "tokens"} for n, d in normal.items()
    }
    from ._oracle import forwarded_problems

    parsed: dict[str, Any] = llorch_ctx.scratch.get("oracle_parsed", {})
    for name, plan in parsed.items():
        problems = forwarded_problems(runs[name].request, plan, dialects.get(name) or "")
        if problems:
            llorch_ctx.fail(
                f"{name}: the engine did not receive what the task asked for",
                "; ".join(p.describe() for p in problems),
                ids=problems[0].ids,
            )
    diffs = []
    for name, norm in normal.items():
        run = runs[name]
        want = _planned_events(llorch_ctx.expected_plan(run.request, dialects.get(name)))
        keys = [k for k in want if norm.get(k) != want[k]]
        if keys:
            diffs.append(
                f"{name} differs from the task's plan in {keys}"
                + "".join(
                    f"; {k}: got {norm.get(k)!r:.80}, planned {want[k]!r:.80}" for k in keys[:2]
                )
            )
    llorch_ctx.check(
        not diffs,
        "adapters do not yield the task's plan as normalised events",
        "; ".join(diffs),
        ids=("WA-INT-3001", "ADAPT-3001"),
    )


def _planned_events(plan: Any) -> dict[str, Any]:
    """The normalised events a conformant adapter yields for ``plan``."""
    tokens = list(plan.tokens)
    return {
        "problems": [],
        "tokens": tokens,
        "indices": list(range(len(tokens))),
        "text": "".join(tokens),
        "terminal": "end",
        "tokens_out": len(tokens),
        "stop_reason": plan.stop_reason,
    }


def _normalise(run: StreamRun) -> dict[str, Any]:
    """The dialect-independent view: text, indices, token count, stop reason, terminal kind."""
    tokens = [e.data for _, e in run.events if e.kind == "token"]
    term = run.terminal
    return {
        "problems": check_stream(e for _, e in run.events),
        "tokens": [t.get("t") for t in tokens],
        "indices": [t.get("i") for t in tokens],
        "text": "".join(str(t.get("t")) for t in tokens),
        "terminal": None if term is None else term.kind,
        "tokens_out": None if term is None else term.data.get("tokens_out"),
        "stop_reason": None if term is None else term.data.get("stop_reason"),
    }
