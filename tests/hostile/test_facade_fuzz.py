"""Fuzz the orchestrator facade with schemathesis against its own OpenAPI description.

Every operation of ``GET /openapi.json`` gets positive cases (valid by the description) and
negative ones (each breaking it somewhere), sent over a real socket to a real facade. The checks:
no 5xx other than the documented 503, every status, content type, header and body as described,
and every negative case refused with a 4xx (``negative_data_rejection``: the code is at least as
strict as the description). Positive cases are not required to be accepted: a valid task may
still meet a full queue (429) or a duplicate id (400), as described.

Bounded for CI: ``LLORCH_FACADE_FUZZ_EXAMPLES`` examples per operation (default 20; the closing
note's run used more). Registration is fuzzed with the token, so its bodies reach the parser.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from llorch_conformance.adapters.orchestrator import AuthPolicy, FacadeConfig
from llorch_conformance.adapters.orchestrator._openapi import openapi_document

from ..host.fakes import FakeAdapter, ok
from ._facade_env import TOKEN, FacadeEnv
from ._figures import HostileFigures

EXAMPLES = int(os.environ.get("LLORCH_FACADE_FUZZ_EXAMPLES", "20"))
CONFIG = {
    "auth": AuthPolicy(token=TOKEN, optional=True),  # loopback without it; registration with it
    "admission_capacity": 8,
    "unopened_ttl_ms": 500,  # fuzzed tasks are never opened: let the queue turn over
}


@schemathesis.check
def no_server_error(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """Like schemathesis's ``not_a_server_error``, but the documented 503 (an unknown or unbound
    pool, a stopping facade) is an answer, not a crash."""
    if response.status_code >= 500 and response.status_code != 503:
        raise AssertionError(f"server error {response.status_code}: {response.text[:200]}")
    return None


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

_DOC = openapi_document(FacadeConfig(**CONFIG))  # type: ignore[arg-type]
schema = schemathesis.openapi.from_dict(_DOC)


@dataclass
class Tally:
    cases: int = 0
    http_500: int = 0
    worst_s: float = 0.0


@pytest.fixture(scope="module")
def fuzz_facade(hostile_figures: HostileFigures) -> Iterator[tuple[FacadeEnv, Tally]]:
    tally = Tally()
    with FacadeEnv(FakeAdapter(default=ok(3)), **CONFIG) as env:
        yield env, tally
        # the facade survived the whole run and still does its job
        assert env.get("/health").json() == {"ok": True}
        assert env.post("/v1/tasks", json=_task("after-fuzz")).status_code in (202, 429)
    hostile_figures.record("facade: schemathesis fuzz", tally.cases, tally.http_500, tally.worst_s)


def _task(task_id: str) -> dict[str, object]:
    from ._facade_env import task

    return task(task_id)


# Negative cases need something to negate: only the operations with a body have it (the others
# take free-form strings), so those get both modes and the rest positive cases only.
CASES = [
    (path, method.upper(), mode)
    for path, ops in _DOC["paths"].items()
    for method, op in ops.items()
    for mode in (
        [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
        if "requestBody" in op
        else [GenerationMode.POSITIVE]
    )
]


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    ("path", "method", "mode"), CASES, ids=[f"{m} {p} {g.value}" for p, m, g in CASES]
)
def test_facade_against_its_openapi(
    fuzz_facade: tuple[FacadeEnv, Tally], path: str, method: str, mode: GenerationMode
) -> None:
    """Each operation, positive or negative cases, through Hypothesis directly (schemathesis's
    pytest plugin stays off: it would cost every pytest process its import)."""
    env, tally = fuzz_facade
    operation = schema[path][method]
    headers = {"Authorization": "Bearer " + TOKEN} if path == "/v1/workers/register" else None

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: schemathesis.Case) -> None:
        t0 = time.perf_counter()
        response = case.call(base_url=env.server.base_url, headers=headers, timeout=10)
        tally.worst_s = max(tally.worst_s, time.perf_counter() - t0)
        tally.cases += 1
        tally.http_500 += response.status_code >= 500 and response.status_code != 503
        case.validate_response(response, checks=CHECKS)

    fuzz()


@pytest.mark.timeout(240)
def test_facade_workflows_against_its_openapi(fuzz_facade: tuple[FacadeEnv, Tally]) -> None:
    """Stateful: the description's links chain enqueue → stream / cancel → stream, so fuzzed
    tasks really run, get cancelled before or after opening, and are streamed twice (409).

    Each scenario gets a fresh facade: Hypothesis replays scenarios while shrinking, and a
    facade that remembers the last one (admitted ids, a full queue) would answer differently.
    """
    _, tally = fuzz_facade

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        env: FacadeEnv

        def setup(self) -> None:
            self.env = FacadeEnv(FakeAdapter(default=ok(3)), auth=CONFIG["auth"]).__enter__()

        def teardown(self) -> None:
            self.env.__exit__(None, None, None)

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, object]:
            auth = case.path == "/v1/workers/register"
            return {
                "base_url": self.env.server.base_url,
                "timeout": 10,
                "headers": {"Authorization": "Bearer " + TOKEN} if auth else None,
            }

        def call(self, case: schemathesis.Case, **kwargs: object) -> schemathesis.Response:
            t0 = time.perf_counter()
            response = case.call(**kwargs)
            tally.worst_s = max(tally.worst_s, time.perf_counter() - t0)
            tally.cases += 1
            tally.http_500 += response.status_code >= 500 and response.status_code != 503
            return response

        def validate_response(
            self, response: schemathesis.Response, case: schemathesis.Case, **_: object
        ) -> None:
            case.validate_response(response, checks=CHECKS)

    Workflow.run(
        settings=settings(
            max_examples=max(5, EXAMPLES // 2),
            stateful_step_count=6,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
