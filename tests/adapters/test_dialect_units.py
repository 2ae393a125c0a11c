"""Unit checks of dialect details that the mock engines do not exercise (respx for plain GETs)."""

from __future__ import annotations

import httpx
import pytest
import respx

from llorch_conformance.adapters._base import StreamState, json_frame
from llorch_conformance.adapters.api import WorkerError
from llorch_conformance.adapters.llamacpp import LlamaCppAdapter, engine_error
from llorch_conformance.adapters.tgi import TgiAdapter, tgi_error
from llorch_conformance.adapters.triton import TritonAdapter

pytestmark = pytest.mark.anyio

BASE = "http://engine.test"


@pytest.mark.parametrize(
    ("err", "code", "retriable"),
    [
        (
            {"code": 503, "message": "Loading model", "type": "unavailable_error"},
            "POOL_UNAVAILABLE",
            True,
        ),
        ({"code": 400, "message": "bad", "type": "invalid_request_error"}, "INVALID_PARAMS", False),
        ({"code": 500, "message": "boom", "type": "server_error"}, "WORKER_RESET", True),
        (
            {"message": "Rate limit", "type": "requests", "code": "rate_limit_exceeded"},
            "POOL_UNAVAILABLE",
            True,
        ),
        ("An Error Occurred", "WORKER_RESET", True),
    ],
)
def test_engine_error_objects_map_through_the_table(
    err: object, code: str, retriable: bool
) -> None:
    mapped = engine_error(err)
    assert (mapped.code.value, mapped.retriable) == (code, retriable)


@pytest.mark.parametrize(
    ("etype", "code", "retriable"),
    [
        ("overloaded", "POOL_UNAVAILABLE", True),
        ("validation", "INVALID_PARAMS", False),
        ("generation", "WORKER_RESET", True),
        ("incomplete_generation", "WORKER_RESET", True),
    ],
)
def test_tgi_error_types(etype: str, code: str, retriable: bool) -> None:
    mapped = tgi_error({"error": "x", "error_type": etype})
    assert (mapped.code.value, mapped.retriable) == (code, retriable)


def test_malformed_json_is_a_protocol_violation_and_lone_surrogates_are_tolerated() -> None:
    with pytest.raises(WorkerError) as info:
        json_frame('{"content": "unterminated')
    assert (info.value.code.value, info.value.retriable) == ("INTERNAL", False)
    assert json_frame('{"t": "\\ud800"}') == {"t": "\ud800"}


def test_upstream_index_must_rise_by_one() -> None:
    st = StreamState()
    st.check_index(1)
    st.check_index(2)
    with pytest.raises(WorkerError, match="repeated"):
        st.check_index(2)
    with pytest.raises(WorkerError, match="out of order"):
        st.check_index(1)


def test_tgi_special_tokens_are_not_text() -> None:
    adapter = TgiAdapter(BASE)
    st = StreamState()
    frame = '{"index":1,"token":{"id":2,"text":"</s>","logprob":0.0,"special":true},"generated_text":"hi","details":{"finish_reason":"eos_token","generated_tokens":3,"seed":null,"input_length":2}}'
    assert adapter._parse_frame(frame, st) is None
    assert st.done and st.stop_reason == "eos" and st.engine_stop_reason == "eos_token"
    assert (st.prompt_tokens, st.completion_tokens) == (2, 3)


@respx.mock
async def test_redirects_are_not_followed() -> None:
    respx.get(f"{BASE}/health").mock(return_value=httpx.Response(302, headers={"location": "/x"}))
    respx.get(f"{BASE}/props").mock(return_value=httpx.Response(301, headers={"location": "/y"}))
    async with LlamaCppAdapter(BASE) as adapter:
        health = await adapter.health()
        with pytest.raises(WorkerError) as info:
            await adapter.engine_version()
    assert health.live and not health.ready
    assert info.value.code.value == "INTERNAL"


@respx.mock
async def test_llamacpp_props_fall_back_to_total_slots_without_slots_endpoint() -> None:
    respx.get(f"{BASE}/slots").mock(return_value=httpx.Response(501, json={"error": {"code": 501}}))
    respx.get(f"{BASE}/props").mock(
        return_value=httpx.Response(200, json={"total_slots": 3, "build_info": "b1-abc"})
    )
    async with LlamaCppAdapter(BASE) as adapter:
        props = await adapter.props()
    assert (props.slots_total, props.slots_free) == (3, None)


@respx.mock
async def test_triton_capabilities_from_model_config() -> None:
    respx.get(f"{BASE}/v2").mock(
        return_value=httpx.Response(200, json={"name": "triton", "version": "2.73.0"})
    )
    respx.get(f"{BASE}/v2/models/llm").mock(return_value=httpx.Response(200, json={"name": "llm"}))
    respx.get(f"{BASE}/v2/models/llm/config").mock(
        return_value=httpx.Response(
            200,
            json={
                "instance_group": [{"count": 2}],
                "parameters": {"max_model_len": {"string_value": "8192"}},
            },
        )
    )
    async with TritonAdapter(BASE, model="llm") as adapter:
        caps = await adapter.capabilities()
    assert (caps.engine_version, caps.ctx_max, caps.slots) == ("2.73.0", 8192, 2)


@pytest.mark.anyio
async def test_llamacpp_engine_metrics_are_scraped_and_relabelled() -> None:
    from llorch_conformance.mock_engines import run_mock_engine

    async with run_mock_engine("llamacpp") as eng:
        async with LlamaCppAdapter(eng.base_url, pool_id="p7", replica_id="r3") as ad:
            samples = await ad.engine_metrics()
        assert eng.journal.find(path="/metrics")
    names = {s["name"] for s in samples}
    assert any(n.startswith("llamacpp:") for n in names), names
    for s in samples:
        assert s["labels"]["engine"] == "llamacpp"
        assert s["labels"]["pool_id"] == "p7" and s["labels"]["replica_id"] == "r3"
        assert s["labels"]["engine_version"]
        assert isinstance(s["value"], int | float)
