"""Steps of ``features/stream``: stop sequences, incremental delivery and the end event against the plan."""

from __future__ import annotations

from typing import Any

from pytest_bdd import given, then

from llorch_conformance.adapters.api import HarnessError

from ._checks import GRAMMAR_IDS, check_forwarded, ended_cleanly, planned
from ._context import ScenarioContext


@given("the task stops at a sequence its plan contains")
def task_stop_sequence(llorch_ctx: ScenarioContext) -> None:
    """Stop sequences through ``TaskRequest.extra["stop"]``: one that occurs in the middle of the
    task's own plan (it spans a token boundary, so an adapter that only compares whole tokens
    misses it) and one that never occurs. Chosen from the plan computed from the task, so it
    varies with the task seed like everything else."""
    plan = llorch_ctx.expected_plan(llorch_ctx.make_request())
    text = plan.text
    tokens = list(plan.tokens)
    starts = [sum(len(t) for t in tokens[:k]) for k in range(len(tokens))]
    order = sorted(range(1, max(1, len(tokens) - 1)), key=lambda k: abs(k - len(tokens) // 2))
    chosen: str | None = None
    for k in order:
        piece = tokens[k]
        if not piece.strip() or k + 1 >= len(tokens):
            continue
        candidate = piece + tokens[k + 1][:1]
        if candidate.strip() and text.find(candidate) == starts[k]:
            chosen = candidate
            break
    if chosen is None:
        raise HarnessError(f"the task's plan has no usable stop sequence: {tokens!r}")
    llorch_ctx.request_extra["stop"] = [chosen, "\u241e-never-in-a-plan"]
    llorch_ctx.notes["stop_sequences"] = llorch_ctx.request_extra["stop"]


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
            ids=GRAMMAR_IDS,
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
