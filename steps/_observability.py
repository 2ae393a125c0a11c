"""Steps of ``features/observability``: the adapter's log records and their fields."""

from __future__ import annotations

from typing import Any

from pytest_bdd import then

from ._checks import check_log_values, records_with
from ._context import LogCapture, ScenarioContext


@then(
    "a log record carries job_id, session_id, engine, engine_version, tokens_out and decode_time_ms"
)
def log_fields(llorch_ctx: ScenarioContext) -> None:
    keys = ("job_id", "session_id", "engine", "engine_version", "tokens_out", "decode_time_ms")
    found = records_with(llorch_ctx, keys, non_null=keys)
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


@then("a log record carries tokens_in, pool_id and replica_id")
def log_fields_more(llorch_ctx: ScenarioContext) -> None:
    found = records_with(
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
