"""Steps every feature area speaks: the task, the engine's fault, the stream and how it ended.

A step lives in the module of the feature area it belongs to (``steps/_<area>.py`` mirrors
``features/<area>/``); the few that most areas use — the completion task, ``the engine injects``,
``the adapter streams the task``, the grammar, the terminal event, the plan and the request count
— live here.
"""

from __future__ import annotations

from typing import Any

from pytest_bdd import given, parsers, then, when

from llorch_conformance.adapters.api import check_stream

from ._checks import (
    ERROR_IDS,
    GRAMMAR_IDS,
    NO_RETRY_IDS,
    RETRY_IDS,
    check_forwarded,
    check_values,
    ended_cleanly,
    planned,
)
from ._context import ScenarioContext


@given(parsers.parse('a completion of {n:d} tokens for prompt "{prompt}"'))
def completion_task(llorch_ctx: ScenarioContext, n: int, prompt: str) -> None:
    llorch_ctx.request_fields.update({"max_tokens": n, "prompt": prompt})


@given(parsers.parse("the task seed is {seed:d}"))
def task_seed(llorch_ctx: ScenarioContext, seed: int) -> None:
    llorch_ctx.request_fields["seed"] = seed


@given(parsers.parse('the engine injects "{fault}"'))
def engine_fault(llorch_ctx: ScenarioContext, fault: str) -> None:
    llorch_ctx.set_faults([fault])


@given(parsers.parse("the adapter makes at most {n:d} attempt"))
@given(parsers.parse("the adapter makes at most {n:d} attempts"))
def max_attempts(llorch_ctx: ScenarioContext, n: int) -> None:
    llorch_ctx.max_attempts = n


@when("the adapter streams the task")
def stream_task(llorch_ctx: ScenarioContext) -> None:
    llorch_ctx.stream()


@then("the stream follows the contract grammar")
def grammar(llorch_ctx: ScenarioContext) -> None:
    run = llorch_ctx.last
    ended_cleanly(llorch_ctx, run)
    problems = check_stream(e for _, e in run.events)
    llorch_ctx.check(
        not problems,
        "the stream breaks the started → token* → [metrics] → end|error grammar",
        "; ".join(problems[:8]),
        ids=GRAMMAR_IDS,
    )
    check_values(llorch_ctx, run)


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
        ids=(*env_ids, *GRAMMAR_IDS, "WA-INT-3003", "HTU-1005", "OC-ADAPT-OAI-6002"),
    )
    check_values(llorch_ctx, run)


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
            ids=ERROR_IDS,
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
            *ERROR_IDS,
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
            *ERROR_IDS,
        ),
    )
    check_values(llorch_ctx, run)


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


@then(parsers.re(r"the engine received (?P<n>\d+) generation requests?"))
def n_generation_requests(llorch_ctx: ScenarioContext, n: str) -> None:
    want = int(n)
    entries = llorch_ctx.generation_entries()
    ids: tuple[str, ...] = (
        NO_RETRY_IDS if want == 1 else (*RETRY_IDS, "HTU-PERF-1301", "HTU-SEC-1401")
    )
    if want == 0:
        ids = ("HTU-SEC-1401", "HTU-EXP-1105")
    llorch_ctx.check(
        len(entries) == want,
        f"the engine received {len(entries)} generation request(s), expected {want}",
        "; ".join(f"{e.method} {e.path} -> {e.status}" for e in entries[:8]),
        ids=ids,
    )
