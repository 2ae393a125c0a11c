"""The Triton mock over a real socket: generate/generate_stream bytes, errors, faults, loading.

The model is shaped like the vLLM backend's (``text_input`` → ``text_output`` deltas, optional
``finish_reason``/token-count outputs). Golden bodies use the greedy plan of ``"Hi"``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llorch_conformance.adapters.api import ConfigError
from llorch_conformance.mock_engines import MockEngine, fault_catalogue, make_plan, run_mock_engine

from ._helpers import check_loading_then_serving

TIMEOUT = httpx.Timeout(10.0)
GEN = "/v2/models/llm/generate"
STREAM = "/v2/models/llm/generate_stream"

GOLDEN_STREAM = (
    b'data: {"id":"42","model_name":"llm","model_version":"1","text_output":" llama"}\n\n'
    b'data: {"id":"42","model_name":"llm","model_version":"1","text_output":" engine"}\n\n'
    b'data: {"id":"42","model_name":"llm","model_version":"1","text_output":"?"}\n\n'
)
GOLDEN_GENERATE = b'{"model_name":"llm","model_version":"1","text_output":"Hi llama engine?"}'


@pytest.fixture
def engine() -> Iterator[MockEngine]:
    with run_mock_engine("triton", seed=5) as eng:
        yield eng


@pytest.fixture
def dialect() -> str:
    """This file's dialect: the shared ``client`` fixture (conftest) talks to its ``engine``."""
    return "triton"


def events(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(b[6:]) for b in body.split(b"\n\n") if b.startswith(b"data: ")]


def stream_body(**extra: Any) -> dict[str, Any]:
    params = {"max_tokens": 6, "temperature": 0, **extra.pop("parameters", {})}
    return {
        "text_input": "Hi",
        "stream": True,
        "exclude_input_in_output": True,
        "return_finish_reason": True,
        "return_num_output_tokens": True,
        "parameters": params,
        **extra,
    }


# -- golden bytes --------------------------------------------------------------------------------


def test_generate_stream_golden_bytes(client: httpx.Client) -> None:
    body = {
        "id": "42",
        "text_input": "Hi",
        "parameters": {"stream": True, "max_tokens": 3, "temperature": 0},
    }
    r = client.post(STREAM, json=body, headers={"Accept": "text/event-stream"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert "content-length" not in r.headers
    assert r.content == GOLDEN_STREAM


def test_generate_golden_bytes_prepends_the_prompt(client: httpx.Client) -> None:
    r = client.post(
        GEN, json={"text_input": "Hi", "parameters": {"max_tokens": 3, "temperature": 0}}
    )
    assert (r.status_code, r.content) == (200, GOLDEN_GENERATE)
    assert r.headers["content-type"] == "application/json"
    body = {
        "text_input": "Hi",
        "exclude_input_in_output": True,
        "parameters": {"max_tokens": 3, "temperature": 0},
    }
    assert client.post(GEN, json=body).json()["text_output"] == " llama engine?"


def test_generate_stream_without_stream_input_is_one_event(client: httpx.Client) -> None:
    body = {"text_input": "Hi", "parameters": {"max_tokens": 3, "temperature": 0}}
    r = client.post(STREAM, json=body)
    assert r.content == b"data: " + GOLDEN_GENERATE + b"\n\n"


def test_versioned_route_and_sorted_optional_outputs(client: httpx.Client) -> None:
    body = stream_body(return_num_input_tokens=True, parameters={"max_tokens": 2})
    r = client.post("/v2/models/llm/versions/1/generate_stream", json=body)
    first = r.content.split(b"\n\n")[0]
    assert first.startswith(
        b'data: {"finish_reason":"None","model_name":"llm","model_version":"1",'
    )
    keys = list(json.loads(first[6:]))
    assert keys == sorted(keys)


# -- stop reasons: the plan is the oracle --------------------------------------------------------


def _prompt_with(reason: str, stop: tuple[str, ...] = ()) -> str:
    for i in range(500):
        p = f"prompt {i}"
        if make_plan(p, seed=0, max_tokens=200, stop=stop, temperature=0.0).stop_reason == reason:
            return p
    raise AssertionError(reason)


@pytest.mark.parametrize(
    ("reason", "stop", "finish"),
    [
        pytest.param("length", (), "length", id="length"),
        pytest.param("eos", (), "stop", id="eos"),
        pytest.param("stop", (" the",), "stop", id="stop-string"),
    ],
)
def test_stream_texts_and_finish_reason(
    client: httpx.Client, reason: str, stop: tuple[str, ...], finish: str
) -> None:
    prompt = _prompt_with(reason, stop) if reason != "length" else "Hi"
    max_tokens = 200 if reason != "length" else 5
    plan = make_plan(prompt, seed=0, max_tokens=max_tokens, stop=stop, temperature=0.0)
    params: dict[str, Any] = {"max_tokens": max_tokens}
    if stop:
        params["stop"] = stop[0]  # request parameters are scalars; a string is one stop
    objs = events(
        client.post(STREAM, json=stream_body(text_input=prompt, parameters=params)).content
    )
    assert "".join(o["text_output"] for o in objs) == plan.text
    assert [o["finish_reason"] for o in objs[:-1]] == ["None"] * (len(objs) - 1)
    assert objs[-1]["finish_reason"] == finish
    extra = 1 if reason == "eos" else 0
    assert sum(o["num_output_tokens"] for o in objs) == plan.completion_tokens + extra
    if reason != "length":
        assert objs[-1]["text_output"] == ""


def test_sampling_parameters_input_carries_a_stop_list(client: httpx.Client) -> None:
    prompt = _prompt_with("stop", (" the",))
    sp = json.dumps({"max_tokens": 200, "temperature": 0, "stop": [" the"]})
    body = stream_body(text_input=prompt, sampling_parameters=sp)
    objs = events(client.post(STREAM, json=body).content)
    want = make_plan(prompt, seed=0, max_tokens=200, stop=(" the",), temperature=0.0)
    assert "".join(o["text_output"] for o in objs) == want.text


def test_default_max_tokens_is_vllms_16(client: httpx.Client) -> None:
    body = {"text_input": "Hi", "exclude_input_in_output": True, "return_num_output_tokens": True}
    out = client.post(GEN, json={**body, "parameters": {"seed": 1, "ignore_eos": True}}).json()
    assert out["num_output_tokens"] == 16


# -- errors ---------------------------------------------------------------------------------------

#: Bodies Triton cannot read as JSON tensors fail with 500 (measured on 2.51.0), the rest 400.
_SERVER_ERRORS = (
    "failed to parse the request JSON buffer",
    "Unable to parse JSON bytes array",
    "Unable to parse 'data'",
    "Expected JSON object for keyword",
    "attempt to get members",
)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            b"{bad",
            "failed to parse the request JSON buffer: Missing a name for object member. at 1",
            id="syntax",
        ),
        pytest.param(
            b"",
            "failed to parse the request JSON buffer: The document is empty. at 0",
            id="empty",
        ),
        pytest.param(
            b'{"stream":true}',
            "expected number of inputs between 1 and 11 but got 1 inputs for model 'llm'",
            id="missing-text-input",
        ),
        pytest.param(
            b'{"text_input":5}',
            "Unable to parse JSON bytes array: attempt to access JSON non-string as string",
            id="text-not-string",
        ),
        pytest.param(
            b'{"text_input":"x","stream":"yes"}',
            "Unable to parse 'data': attempt to access JSON non-boolean as boolean",
            id="bool-not-bool",
        ),
        pytest.param(
            b'{"text_input":"x","text_input":"y"}',
            "input 'text_input' already exists in request",
            id="duplicate",
        ),
        pytest.param(
            b'{"text_input":"x","parameters":{"stop":["a"]}}',
            "Converting keyword: 'parameters': parameter 'stop' has invalid type. It should be either 'int', 'bool', or 'string'.",
            id="array-parameter",
        ),
        pytest.param(
            b'{"text_input":"x","parameters":5}',
            "Expected JSON object for keyword: 'parameters': attempt to access JSON non-object",
            id="parameters-not-object",
        ),
        pytest.param(b"[1]", "attempt to get members for non-object", id="not-object"),
        pytest.param(
            b'{"text_input":["a","b"]}',
            "The schema can not convert input 'text_input' to tensor with proper shape",
            id="shape",
        ),
        pytest.param(b'{"id":7,"text_input":"x"}', "Unable to parse 'id'", id="id-not-string"),
    ],
)
@pytest.mark.parametrize("path", [GEN, STREAM])
def test_errors_before_inference_are_plain_json_400(
    client: httpx.Client, path: str, content: bytes, message: str
) -> None:
    """400 for what Triton rejects as INVALID_ARG; 500 for JSON it cannot read (measured, 2.51.0)."""
    r = client.post(path, content=content)
    want = 500 if message.startswith(_SERVER_ERRORS) else 400
    assert r.status_code == want
    assert r.headers["content-type"] == "application/json"
    assert message in r.json()["error"]


def test_unknown_model_version_path_and_method(client: httpx.Client) -> None:
    r = client.post("/v2/models/nope/generate", json={"text_input": "x"})
    assert (r.status_code, r.json()) == (
        404,
        {"error": "Request for unknown model: 'nope' is not found"},
    )
    r = client.get("/v2/models/llm/versions/2")
    assert r.json() == {"error": "Request for unknown model: 'llm' version 2 is not found"}
    r = client.get("/v2/nothing")
    assert (r.status_code, r.json()) == (404, {"error": "Not Found"})
    assert r.headers["content-type"] == "text/plain"  # the frontend's own reply, JSON body
    r = client.get(GEN)
    assert (r.status_code, r.json()) == (405, {"error": "Method Not Allowed"})
    assert r.headers["content-type"] == "application/json"
    r = client.post("/v2/health/ready")
    assert (r.status_code, r.headers["content-type"]) == (405, "text/plain")


def test_first_response_error_sets_status_but_body_stays_sse(client: httpx.Client) -> None:
    body = {"text_input": "Hi", "stream": True, "exclude_input_in_output": False}
    r = client.post(STREAM, json=body)
    assert r.status_code == 400
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert r.content == (
        b'data: {"error":"Error generating stream: When streaming, '
        b'`exclude_input_in_output` = False is not allowed."}\n\n'
    )


def test_generate_with_a_streaming_model_answers_200_with_an_error(client: httpx.Client) -> None:
    r = client.post(GEN, json={"text_input": "Hi", "stream": True, "exclude_input_in_output": True})
    assert r.status_code == 200
    assert "exactly 1 response" in r.json()["error"]


def test_bad_sampling_parameter_fails_inside_the_model(client: httpx.Client) -> None:
    r = client.post(GEN, json={"text_input": "Hi", "parameters": {"max_tokens": "many"}})
    assert r.status_code == 400
    assert r.json()["error"].startswith("Error generating stream:")


# -- health, metadata, repository ------------------------------------------------------------------


def test_health_is_empty_text_plain(client: httpx.Client) -> None:
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/llm/ready"):
        r = client.get(path)
        assert (r.status_code, r.content, r.headers["content-type"]) == (200, b"", "text/plain")
    r = client.get("/v2/models/other/ready")
    assert (r.status_code, r.json()) == (400, {"error": "Model version not ready"})
    assert r.headers["content-type"] == "text/plain"


def test_server_and_model_metadata(client: httpx.Client, engine: MockEngine) -> None:
    meta = client.get("/v2").json()
    assert meta["name"] == "triton"
    assert meta["version"] == engine.engine_version
    assert "binary_tensor_data" in meta["extensions"]
    model = client.get("/v2/models/llm").json()
    assert list(model) == ["name", "versions", "platform", "inputs", "outputs"]
    assert {"name": "text_input", "datatype": "BYTES", "shape": [1]} in model["inputs"]
    config = client.get("/v2/models/llm/config").json()
    assert config["model_transaction_policy"] == {"decoupled": True}
    assert config["instance_group"][0]["count"] == 1


def test_unload_makes_server_not_ready_then_load(client: httpx.Client) -> None:
    assert client.post("/v2/repository/models/llm/unload").status_code == 200
    assert client.get("/v2/health/ready").status_code == 400
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/models/llm/ready").status_code == 400
    r = client.post(GEN, json={"text_input": "x"})
    assert r.json() == {"error": "Request for unknown model: 'llm' has no available versions"}
    assert client.post("/v2/repository/index").json()[0]["state"] == "UNAVAILABLE"
    assert client.post("/v2/repository/models/llm/load").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200


def test_no_metrics_on_the_http_port(client: httpx.Client) -> None:
    # Triton serves Prometheus metrics on its own port (8002), not on the HTTP endpoint.
    assert client.get("/metrics").status_code == 404


# -- faults -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "message"),
    [
        pytest.param(
            "http.400", 400, "Request for unknown model: 'llm' has no available versions", id="400"
        ),
        pytest.param("http.404", 404, "Not Found", id="404"),
        pytest.param("http.500", 500, "Error generating stream: mock internal error", id="500"),
        pytest.param("http.503", 503, "Exceeds maximum queue size", id="503"),
        pytest.param("engine.overload", 503, "Exceeds maximum queue size", id="overload"),
        pytest.param("http.429_retry_after;seconds=2", 429, "Too Many Requests", id="429"),
    ],
)
def test_status_faults_use_the_error_object(
    client: httpx.Client, fault: str, status: int, message: str
) -> None:
    r = client.post(STREAM, json=stream_body(), headers={"X-Mock-Fault": fault})
    assert (r.status_code, r.json()) == (status, {"error": message})
    assert r.headers["content-type"] == "application/json"
    if status == 429:
        assert r.headers["retry-after"] == "2"


def test_error_event_after_the_first_response_keeps_200(client: httpx.Client) -> None:
    r = client.post(
        STREAM, json=stream_body(), headers={"X-Mock-Fault": "stream.error_event;message=boom"}
    )
    assert r.status_code == 200
    objs = events(r.content)
    assert len(objs) == 2
    assert objs[1] == {"error": "Error generating stream: boom"}


def test_missing_terminal_drops_the_final_response(client: httpx.Client) -> None:
    objs = events(
        client.post(
            STREAM, json=stream_body(), headers={"X-Mock-Fault": "frame.missing_terminal"}
        ).content
    )
    assert objs and all(o["finish_reason"] == "None" for o in objs)


def test_oversized_frame(client: httpx.Client) -> None:
    r = client.post(
        STREAM, json=stream_body(), headers={"X-Mock-Fault": "frame.oversized;size=65536"}
    )
    frames = r.content.split(b"\n\n")
    assert max(len(f) + 2 for f in frames) == 65536


@pytest.mark.parametrize(
    "fault", ["frame.duplicate_index", "frame.out_of_order_index", "stream.keepalive_flood"]
)
def test_faults_triton_cannot_render_are_refused(
    engine: MockEngine, client: httpx.Client, fault: str
) -> None:
    spec = next(s for s in fault_catalogue() if s.id == fault)
    assert "triton" not in spec.applies_to
    with pytest.raises(ConfigError):
        engine.set_faults([fault])
    r = client.post(STREAM, json=stream_body(), headers={"X-Mock-Fault": fault})
    assert r.status_code == 400
    assert "does not apply" in r.json()["error"]


def test_loading_keeps_the_port_closed_then_serves(engine: MockEngine) -> None:
    check_loading_then_serving(engine, "/v2/health/ready")


GOLDEN_SERVER_METADATA = (
    b'{"name":"triton","version":"2.51.0","extensions":["classification","sequence",'
    b'"model_repository","model_repository(unload_dependents)","schedule_policy",'
    b'"model_configuration","system_shared_memory","cuda_shared_memory","binary_tensor_data",'
    b'"parameters","statistics","trace","logging"]}'
)
GOLDEN_MODEL_METADATA_HEAD = (
    b'{"name":"llm","versions":["1"],"platform":"vllm","inputs":[{"name":"text_input",'
    b'"datatype":"BYTES","shape":[1]},{"name":"image","datatype":"BYTES","shape":[-1]},'
    b'{"name":"stream","datatype":"BOOL","shape":[1]},'
)
GOLDEN_MODEL_METADATA_TAIL = (
    b'"outputs":[{"name":"text_output","datatype":"BYTES","shape":[-1]},{"name":"finish_reason",'
    b'"datatype":"BYTES","shape":[-1]},{"name":"cumulative_logprob","datatype":"FP32","shape":[-1]},'
    b'{"name":"logprobs","datatype":"BYTES","shape":[-1]},{"name":"num_input_tokens",'
    b'"datatype":"UINT32","shape":[1]},{"name":"num_output_tokens","datatype":"UINT32",'
    b'"shape":[-1]}]}'
)


def test_metadata_golden_bytes(client: httpx.Client) -> None:
    r = client.get("/v2")
    assert (r.content, r.headers["content-type"]) == (GOLDEN_SERVER_METADATA, "application/json")
    body = client.get("/v2/models/llm/versions/1").content
    assert body.startswith(GOLDEN_MODEL_METADATA_HEAD)
    assert body.endswith(GOLDEN_MODEL_METADATA_TAIL)


def test_kserve_infer_refuses_the_decoupled_model(client: httpx.Client) -> None:
    body = {"inputs": [{"name": "text_input", "shape": [1], "datatype": "BYTES", "data": ["Hi"]}]}
    r = client.post("/v2/models/llm/infer", json=body)
    assert (r.status_code, r.headers["content-type"]) == (501, "text/plain")
    assert r.json() == {
        "error": "HTTP end point doesn't support models with decoupled transaction policy"
    }
    assert client.post("/v2/models/nope/infer", json=body).status_code == 404


def test_statistics_extension_counts_generations(client: httpx.Client, engine: MockEngine) -> None:
    client.post(GEN, json={"text_input": "Hi", "parameters": {"max_tokens": 2}}).raise_for_status()
    for path in ("/v2/models/stats", "/v2/models/llm/stats", "/v2/models/llm/versions/1/stats"):
        stats = client.get(path).json()["model_stats"][0]
        assert (stats["name"], stats["version"]) == (engine.model, "1")
        assert stats["inference_count"] == 1
        assert stats["inference_stats"]["success"]["count"] == 1
    assert client.get("/v2/models/nope/stats").status_code == 404
