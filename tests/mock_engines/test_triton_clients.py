"""The official ``tritonclient.http.InferenceServerClient`` against the Triton mock, unchanged.

The client has no generate helper (reference §6): health, metadata, config and the repository
API go through it; generate/generate_stream through plain httpx + an SSE reader (httpx-sse).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import tritonclient.http as triton_http
from httpx_sse import connect_sse
from tritonclient.utils import InferenceServerException

from llorch_conformance.mock_engines import MockEngine, make_plan, run_mock_engine


@pytest.fixture
def engine() -> Iterator[MockEngine]:
    with run_mock_engine("triton", seed=2) as eng:
        yield eng


@pytest.fixture
def client(engine: MockEngine) -> Iterator[Any]:
    c = triton_http.InferenceServerClient(
        url=f"127.0.0.1:{engine.port}", connection_timeout=10.0, network_timeout=10.0
    )
    try:
        yield c
    finally:
        c.close()


def test_health_and_readiness(client: Any) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("llm")
    assert client.is_model_ready("llm", "1")
    assert not client.is_model_ready("missing")


def test_server_and_model_metadata(client: Any, engine: MockEngine) -> None:
    meta = client.get_server_metadata()
    assert meta["name"] == "triton"
    assert meta["version"] == engine.engine_version
    model = client.get_model_metadata("llm")
    assert model["name"] == "llm"
    assert model["versions"] == ["1"]
    assert model["inputs"][0]["name"] == "text_input"
    config = client.get_model_config("llm")
    assert config["backend"] == "vllm"


def test_unknown_model_raises_with_tritons_message(client: Any) -> None:
    with pytest.raises(
        InferenceServerException, match="Request for unknown model: 'nope' is not found"
    ):
        client.get_model_metadata("nope")


def test_unload_and_load_through_the_repository_api(client: Any) -> None:
    client.unload_model("llm")
    assert client.is_server_live()
    assert not client.is_server_ready()
    assert not client.is_model_ready("llm")
    index = client.get_model_repository_index()
    assert index[0]["name"] == "llm"
    client.load_model("llm")
    assert client.is_server_ready()


def test_generate_stream_with_an_sse_reader(engine: MockEngine) -> None:
    body = {
        "id": "r1",
        "text_input": "Hello",
        "stream": True,
        "exclude_input_in_output": True,
        "return_finish_reason": True,
        "parameters": {"max_tokens": 5, "seed": 4},
    }
    with (
        httpx.Client(base_url=engine.base_url, timeout=10) as c,
        connect_sse(c, "POST", "/v2/models/llm/generate_stream", json=body) as source,
    ):
        events = [sse.json() for sse in source.iter_sse()]
    assert all(e["id"] == "r1" for e in events)
    assert (
        "".join(e["text_output"] for e in events) == make_plan("Hello", seed=4, max_tokens=5).text
    )
    assert events[-1]["finish_reason"] == "length"
