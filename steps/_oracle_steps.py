"""Steps of ``features/oracle``: one task on every selected adapter, compared with the plan.

(The oracle itself — the expected tokens computed from the task — is the helper ``steps._oracle``.)
"""

from __future__ import annotations

from functools import partial
from typing import Any

from pytest_bdd import then, when

from llorch_conformance.adapters.api import HarnessError, check_stream

from ._context import ScenarioContext, StreamRun, collect_stream


@when("every selected adapter streams the task against its own mock engine")
def every_adapter(llorch_ctx: ScenarioContext) -> None:
    """The cross-dialect oracle: the same task through every selected target."""
    from llorch_conformance.conformance.plugin import active_state

    state = active_state(llorch_ctx._getfixturevalue("request").config)
    if state is None:
        raise HarnessError("the llorch plugin is not active")
    results: dict[str, StreamRun] = {}
    parsed: dict[str, Any] = {}
    skipped: list[str] = []
    for target in state.targets:
        if target.live:
            skipped.append(f"{target.name} (live engine)")
            continue
        engine: Any = None
        if target.dialect == "mock":
            url = "mock://local"
        else:
            engine = llorch_ctx.engines.get(target.dialect)
            engine.reset()
            url = engine.base_url
        adapter = _SubContext(llorch_ctx, target).make(url, engine)
        request = llorch_ctx.make_request(engine=target.dialect, determinism="strict")
        try:
            results[target.name] = llorch_ctx.portal.call(partial(collect_stream, adapter, request))
        finally:
            aclose = getattr(adapter, "aclose", None)
            if aclose is not None:
                llorch_ctx.call(aclose)
        if engine is not None:
            # what this adapter forwarded, as its engine parsed it (the Then step compares it
            # with the task); read now: a later target of the same dialect resets the journal
            t0 = results[target.name].t_start
            gens = [
                e
                for e in engine.journal.entries
                if getattr(e, "generation", False)
                and getattr(e, "plan", None) is not None
                and e.t_received >= t0
            ]
            if gens:
                parsed[target.name] = gens[-1].plan
    llorch_ctx.scratch["oracle_dialects"] = {t.name: t.dialect for t in state.targets}
    llorch_ctx.notes["oracle_skipped"] = skipped
    llorch_ctx.notes["oracle"] = {name: run.transcript()[-3:] for name, run in results.items()}
    llorch_ctx.scratch["oracle_runs"] = results
    llorch_ctx.scratch["oracle_parsed"] = parsed


class _SubContext:
    """Builds an adapter for another target with the scenario's harness config."""

    def __init__(self, ctx: ScenarioContext, target: Any) -> None:
        self.ctx = ctx
        self.target = target

    def make(self, url: str, engine: Any) -> Any:
        saved = self.ctx.target, self.ctx.engine
        self.ctx.target, self.ctx.engine = self.target, engine
        try:
            config = self.ctx.build_config()
        finally:
            self.ctx.target, self.ctx.engine = saved
        return self.target.factory(url, **config)


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
