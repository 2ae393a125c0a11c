"""Steps of ``features/harness``: the harness's own seed corpus (size and stability)."""

from __future__ import annotations

from pytest_bdd import parsers, then

from ._context import ScenarioContext


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
