"""A fault is one object: adding one is one new :class:`Fault` plus its test (issue 17.2).

The example fault below is the one quoted in the closing note: a gateway's HTML 502 page in place
of the engine's answer. It is defined here only, registered for the test the way one line in
``mock_engines._faults._CATALOGUE`` registers a catalogue fault, and the mock engine, the fault
proxy and ``MockAdapter`` all honour it without any other file knowing its ID.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from llorch_conformance.adapters.api import TaskRequest, error_for_status
from llorch_conformance.adapters.mock import MockAdapter
from llorch_conformance.mock_engines import (
    FAULT_IDS,
    Fault,
    FaultRule,
    FaultSpec,
    Outcome,
    Reply,
    Responder,
    Stage,
    _faults,
    fault_outcome,
    run_fault_proxy,
    run_mock_engine,
)

from ._helpers import TIMEOUT, gen_request

PAGE = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


class GatewayPage(Fault):
    """A reverse proxy's HTML 502 page instead of the engine's answer."""

    stage = Stage.ANSWER
    summary = "error WORKER_RESET (retriable)"

    async def answer(self, rule: FaultRule, to: Responder) -> bool:
        await to.reply(Reply(502, PAGE, [(b"content-type", b"text/html")]), rule)
        return True

    def outcome(self, rule: FaultRule) -> Outcome:
        return Outcome(self.summary, error_for_status(502, "upstream 502: gateway page"))


EXAMPLE = GatewayPage(FaultSpec("gateway.html_502", "a gateway's HTML 502 page, not the engine's"))


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(_faults._BY_ID, EXAMPLE.id, EXAMPLE)
    yield


def _post(eng: Any, dialect: str, headers: dict[str, str] | None = None) -> httpx.Response:
    path, body = gen_request(dialect, eng.model, stream=True, prompt="Hi", max_tokens=4)
    return httpx.post(eng.base_url + path, json=body, headers=headers or {}, timeout=TIMEOUT)


@pytest.mark.usefixtures("registered")
def test_the_engine_serves_a_new_fault_object_engine_wide_and_per_request() -> None:
    with run_mock_engine("llamacpp", faults=[EXAMPLE.id]) as eng:
        r = _post(eng, "llamacpp")
        assert (r.status_code, r.content) == (502, PAGE)
        assert r.headers["content-type"] == "text/html"
        assert httpx.get(eng.base_url + "/health", timeout=TIMEOUT).status_code == 200
        assert eng.journal.find(path="/completion")[0].fault == EXAMPLE.id
    with run_mock_engine("vllm") as eng:
        assert _post(eng, "vllm").status_code == 200
        r = _post(eng, "vllm", {"X-Mock-Fault": f"{EXAMPLE.id}"})
        assert (r.status_code, r.content) == (502, PAGE)


@pytest.mark.usefixtures("registered")
def test_the_fault_proxy_serves_a_new_fault_object() -> None:
    with run_mock_engine("tgi") as eng, run_fault_proxy("tgi", eng.base_url) as px:
        px.set_faults([EXAMPLE.id])
        path, body = gen_request("tgi", eng.model, stream=True, prompt="Hi", max_tokens=4)
        r = httpx.post(px.base_url + path, json=body, timeout=TIMEOUT)
        assert (r.status_code, r.content) == (502, PAGE)
        assert eng.journal.find(path=path) == []  # answered by the fault, not forwarded


@pytest.mark.usefixtures("registered")
def test_mock_adapter_plays_the_new_fault_objects_outcome() -> None:
    expected = error_for_status(502, "x")
    assert fault_outcome(FaultRule.parse(EXAMPLE.id)).error is not None

    async def run() -> list[Any]:
        adapter = MockAdapter(faults=[EXAMPLE.id])
        req = TaskRequest(
            task_id="t-1",
            session_id="s-1",
            workload="completion",
            model_ref="hf:mock/tiny",
            engine="mock",
            ctx=64,
            priority="interactive",
            max_tokens=4,
            deadline_ms=5000,
            prompt="Hi",
        )
        return [e async for e in adapter.submit(req)]

    events = anyio.run(run)
    assert [e.kind for e in events] == ["error"]
    assert events[0].data["code"] == expected.code.value
    assert events[0].data["retriable"] is expected.retriable


#: Modules that read fault objects and must never branch on a fault's ID.
_READERS = (
    "llorch_conformance.mock_engines._app",
    "llorch_conformance.mock_engines._context",
    "llorch_conformance.mock_engines._proxy",
    "llorch_conformance.adapters.mock",
    "llorch_conformance.steps._context",
)


@pytest.mark.parametrize("module", _READERS)
def test_no_fault_id_is_matched_outside_the_fault_module(module: str) -> None:
    import importlib

    tree = ast.parse(inspect.getsource(importlib.import_module(module)))
    ids = set(FAULT_IDS)
    found = [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in ids
    ]
    assert found == []
