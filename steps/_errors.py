"""Steps of ``features/errors``: deadlines, stream timeouts, status mapping, Retry-After and retries, partial streams."""

from __future__ import annotations

import itertools

from pytest_bdd import given, parsers, then

from ._checks import RETRY_IDS, check_forwarded, planned
from ._common import ends_with_code
from ._context import ScenarioContext


@given(parsers.parse("the task deadline is {ms:d} ms"))
def task_deadline(llorch_ctx: ScenarioContext, ms: int) -> None:
    llorch_ctx.request_fields["deadline_ms"] = ms


@given(parsers.parse("the adapter's stream timeouts are {ms:d} ms"))
def stream_timeouts(llorch_ctx: ScenarioContext, ms: int) -> None:
    llorch_ctx.timeouts_s = ms / 1000.0


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
    got = llorch_ctx.last.terminal_field("retry_after_ms")
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


@then("no token contains a replacement character")
def no_replacement(llorch_ctx: ScenarioContext) -> None:
    bad = [t for t in llorch_ctx.last.tokens if "\ufffd" in t]
    llorch_ctx.check(
        not bad,
        "a token carries U+FFFD: a multi-byte character was split and decoded in pieces",
        f"tokens: {bad[:4]!r}",
        ids=("WA-INT-3008", "HTU-1003", "ADAPT-3002"),
    )


@then(parsers.parse("the engine received between {lo:d} and {hi:d} generation requests"))
def between_requests(llorch_ctx: ScenarioContext, lo: int, hi: int) -> None:
    entries = llorch_ctx.generation_entries()
    llorch_ctx.check(
        lo <= len(entries) <= hi,
        f"the engine received {len(entries)} generation requests, the policy allows {lo}..{hi}",
        ids=RETRY_IDS,
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
        len(entries) <= 4, f"{len(entries)} attempts exceed the 4 the policy allows", ids=RETRY_IDS
    )
    for n, (gap, bound) in enumerate(zip(gaps, bounds, strict=False), start=1):
        llorch_ctx.check(
            gap <= bound + 750.0,
            f"retry {n} came {gap:.0f} ms after the previous attempt; the capped jitter allows {bound} ms",
            f"gaps {gaps} ms, bounds {bounds} ms",
            ids=RETRY_IDS,
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
