"""Steps of ``features/determinism``: seeds, strict determinism, sampler profiles, replicas and repeated runs."""

from __future__ import annotations

from functools import partial
from typing import Any

from pytest_bdd import given, parsers, then, when

from ._checks import ended_cleanly, sampling
from ._context import ScenarioContext, StreamRun, collect_stream


@given("the task carries a seed of its own")
def own_seed(llorch_ctx: ScenarioContext) -> None:
    """The default, spelled out: a seed derived from the run seed and the scenario, never the
    engine's default seed (``steps._oracle.derive_task_seed``)."""
    llorch_ctx.request_fields["seed"] = llorch_ctx.task_seed


@given("the task asks for strict determinism")
def strict_determinism(llorch_ctx: ScenarioContext) -> None:
    llorch_ctx.request_fields["determinism"] = "strict"


@given(parsers.parse('the task names sampler profile "{profile}"'))
def sampler_profile(llorch_ctx: ScenarioContext, profile: str) -> None:
    llorch_ctx.request_fields["sampler_profile_version"] = profile


@when("the adapter streams the task again without faults")
def stream_again(llorch_ctx: ScenarioContext) -> None:
    if llorch_ctx.faults:
        if llorch_ctx.in_process:
            setter = getattr(llorch_ctx.get_adapter(), "set_faults", None)
            if setter is not None:
                setter([])
        elif llorch_ctx.engine is not None:
            llorch_ctx.engine.set_faults([])
    llorch_ctx.stream()


@when("the task is streamed on two replicas of the engine")
def two_replicas(llorch_ctx: ScenarioContext) -> None:
    """Two engines of the same dialect and seed, one adapter each, the same task on both."""
    if llorch_ctx.in_process:
        adapters = [
            llorch_ctx.make_adapter("mock://replica-a"),
            llorch_ctx.make_adapter("mock://replica-b"),
        ]
        journals: list[Any] = []
    else:
        engine_a = llorch_ctx.need_engine()
        engine_b = llorch_ctx.engines.get(llorch_ctx.dialect, "replica-b")
        engine_b.reset()
        adapters = [
            llorch_ctx.make_adapter(engine_a.base_url),
            llorch_ctx.make_adapter(engine_b.base_url),
        ]
        journals = [engine_a.journal, engine_b.journal]
    request = llorch_ctx.make_request()
    for adapter in adapters:
        run: StreamRun = llorch_ctx.portal.call(partial(collect_stream, adapter, request))
        llorch_ctx.replica_runs.append(run)
    llorch_ctx.replica_journals = journals


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
    from ._checks import engine_versions
    from ._values import version_matches

    own = engine_versions(llorch_ctx)
    if own is not None:
        llorch_ctx.check(
            version_matches(found.get("engine_version"), own),
            "the reported engine_version is not the engine's own version",
            f"{found.get('engine_version')!r} vs the engine's {' or '.join(own)!r}",
            ids=("ADAPT-3003",),
        )


@then("the engine request carries the determinism settings")
def determinism_settings(llorch_ctx: ScenarioContext) -> None:
    """Judged on the engine's parsed view of the request (the journal's plan: the seed and the
    sampling knobs the engine actually used), not on a walk of the JSON body: a knob the engine
    ignores or a default the engine applies is then seen as the engine sees it."""
    from ._oracle import forwarded_problems

    entries = llorch_ctx.generation_entries()
    if not entries:
        llorch_ctx.fail("the engine saw no generation request", ids=("OC-TEST-7002",))
    s = sampling(entries[-1])
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
