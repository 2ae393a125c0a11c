"""The TGI mock over a real socket: golden bytes per route, stop reasons, envelopes, faults, loading.

Golden bodies use the greedy plan of the prompt ``"Hi"`` (``do_sample`` false: the seed plays no
part), so they are stable across engine seeds; ``created`` is fixed with the runner's
``created=``. Every request has a timeout and every wait on the journal is bounded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llorch_conformance.adapters.api import ConfigError
from llorch_conformance.mock_engines import MockEngine, make_plan, run_mock_engine

from ._helpers import check_loading_then_serving

TIMEOUT = httpx.Timeout(10.0)
CREATED = 1732000000
MODEL = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"

GOLDEN_STREAM = (
    b'data: {"index":1,"token":{"id":1021,"text":" llama","logprob":-0.9589844,"special":false},'
    b'"generated_text":null,"details":null}\n\n'
    b'data: {"index":2,"token":{"id":1006,"text":" engine","logprob":-1.4453125,"special":false},'
    b'"generated_text":null,"details":null}\n\n'
    b'data: {"index":3,"token":{"id":1043,"text":"?","logprob":-2.6523438,"special":false},'
    b'"generated_text":" llama engine?","details":{"finish_reason":"length","generated_tokens":3,'
    b'"seed":null,"input_length":1}}\n\n'
)
GOLDEN_GENERATE = (
    b'{"generated_text":" llama engine?","details":{"finish_reason":"length","generated_tokens":3,'
    b'"seed":null,"prefill":[],"tokens":[{"id":1021,"text":" llama","logprob":-0.9589844,'
    b'"special":false},{"id":1006,"text":" engine","logprob":-1.4453125,"special":false},'
    b'{"id":1043,"text":"?","logprob":-2.6523438,"special":false}]}}'
)
GOLDEN_CHAT_STREAM = (
    b'data: {"object":"chat.completion.chunk","id":"","created":1732000000,"model":"'
    + MODEL.encode()
    + b'","system_fingerprint":"3.3.6-dev0-native","choices":[{"index":0,"delta":{"role":"assistant",'
    b'"content":" llama"},"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
    b'data: {"object":"chat.completion.chunk","id":"","created":1732000000,"model":"'
    + MODEL.encode()
    + b'","system_fingerprint":"3.3.6-dev0-native","choices":[{"index":0,"delta":{"role":"assistant",'
    b'"content":" engine"},"logprobs":null,"finish_reason":"length"}],"usage":null}\n\n'
    b"data: [DONE]\n\n"
)
GOLDEN_CHAT = (
    b'{"object":"chat.completion","id":"","created":1732000000,"model":"'
    + MODEL.encode()
    + b'","system_fingerprint":"3.3.6-dev0-native","choices":[{"index":0,"message":{"role":'
    b'"assistant","content":" llama engine"},"logprobs":null,"finish_reason":"length"}],'
    b'"usage":{"prompt_tokens":14,"completion_tokens":2,"total_tokens":16}}'
)

GREEDY = {"max_new_tokens": 3, "details": True}


@pytest.fixture
def engine() -> Iterator[MockEngine]:
    with run_mock_engine("tgi", seed=5, created=CREATED) as eng:
        yield eng


@pytest.fixture
def dialect() -> str:
    """This file's dialect: the shared ``client`` fixture (conftest) talks to its ``engine``."""
    return "tgi"


def events(body: bytes) -> list[dict[str, Any]]:
    """JSON payloads of ``data:`` lines (either framing), split on raw newlines only."""
    out = []
    for block in body.split(b"\n\n"):
        if block.startswith(b"data:") and block[5:].strip() != b"[DONE]":
            out.append(json.loads(block[5:]))
    return out


# -- golden bytes per route --------------------------------------------------------------------


def test_generate_stream_golden_bytes_and_headers(client: httpx.Client) -> None:
    r = client.post("/generate_stream", json={"inputs": "Hi", "parameters": GREEDY})
    assert r.status_code == 200
    assert r.content == GOLDEN_STREAM
    h = r.headers
    assert h["content-type"] == "text/event-stream"
    assert h["cache-control"] == "no-cache"
    assert h["x-compute-type"] == "gpu+optimized"
    assert h["x-compute-characters"] == "2"
    assert h["x-accel-buffering"] == "no"
    assert "content-length" not in h


def test_legacy_axum_06_framing_on_request(client: httpx.Client) -> None:
    r = client.post(
        "/generate_stream",
        json={"inputs": "Hi", "parameters": GREEDY},
        headers={"X-Mock-Tgi-Framing": "axum06"},
    )
    assert r.content == GOLDEN_STREAM.replace(b"data: ", b"data:")


def test_generate_golden_bytes_and_timing_headers(client: httpx.Client) -> None:
    r = client.post("/generate", json={"inputs": "Hi", "parameters": GREEDY})
    assert (r.status_code, r.content) == (200, GOLDEN_GENERATE)
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-prompt-tokens"] == "1"
    assert r.headers["x-generated-tokens"] == "3"
    for name in ("x-compute-time", "x-total-time", "x-inference-time", "x-time-per-token"):
        assert name in r.headers


def test_generate_without_details_has_no_details_key(client: httpx.Client) -> None:
    r = client.post("/generate", json={"inputs": "Hi", "parameters": {"max_new_tokens": 3}})
    assert r.content == b'{"generated_text":" llama engine?"}'


def test_compat_route_wraps_in_a_list_and_returns_full_text(client: httpx.Client) -> None:
    r = client.post("/", json={"inputs": "Hi", "parameters": {"max_new_tokens": 3}})
    assert r.content == b'[{"generated_text":"Hi llama engine?"}]'
    r = client.post(
        "/",
        json={"inputs": "Hi", "parameters": {"max_new_tokens": 3, "return_full_text": False}},
    )
    assert r.content == b'[{"generated_text":" llama engine?"}]'


def test_compat_route_streams_when_asked(client: httpx.Client) -> None:
    body = {"inputs": "Hi", "parameters": {**GREEDY, "return_full_text": False}, "stream": True}
    r = client.post("/", json=body)
    assert r.headers["content-type"] == "text/event-stream"
    assert r.content == GOLDEN_STREAM


def test_chat_stream_golden_bytes(client: httpx.Client) -> None:
    body = {
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 2,
        "temperature": 0,
        "stream": True,
    }
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    assert r.content == GOLDEN_CHAT_STREAM


def test_chat_golden_bytes(client: httpx.Client) -> None:
    body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "temperature": 0}
    r = client.post("/v1/chat/completions", json=body)
    assert (r.status_code, r.content) == (200, GOLDEN_CHAT)


def test_chat_usage_chunk_then_done(client: httpx.Client) -> None:
    body = {
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 2,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    r = client.post("/v1/chat/completions", json=body)
    objs = events(r.content)
    assert objs[-1]["choices"] == []
    assert objs[-1]["usage"] == {"prompt_tokens": 14, "completion_tokens": 2, "total_tokens": 16}
    assert r.content.endswith(b"data: [DONE]\n\n")


# -- the plan is the oracle; TGI's stop reasons ------------------------------------------------


def _greedy_plan(prompt: str, max_tokens: int, stop: tuple[str, ...] = ()) -> Any:
    return make_plan(prompt, seed=0, max_tokens=max_tokens, stop=stop, temperature=0.0)


def _find_prompt(reason: str, stop: tuple[str, ...] = ()) -> str:
    for i in range(500):
        prompt = f"prompt {i}"
        if _greedy_plan(prompt, 200, stop).stop_reason == reason:
            return prompt
    raise AssertionError(f"no prompt with stop reason {reason}")


def test_eos_ends_with_a_special_token_outside_generated_text(client: httpx.Client) -> None:
    prompt = _find_prompt("eos")
    plan = _greedy_plan(prompt, 200)
    r = client.post(
        "/generate_stream",
        json={"inputs": prompt, "parameters": {"max_new_tokens": 200, "details": True}},
    )
    objs = events(r.content)
    assert [o["index"] for o in objs] == list(range(1, len(plan.tokens) + 2))
    last = objs[-1]
    assert last["token"] == {
        "id": 2,
        "text": "</s>",
        "logprob": last["token"]["logprob"],
        "special": True,
    }
    assert last["generated_text"] == plan.text
    assert last["details"]["finish_reason"] == "eos_token"
    assert last["details"]["generated_tokens"] == plan.completion_tokens + 1
    assert [o["token"]["text"] for o in objs if not o["token"]["special"]] == list(plan.tokens)


def test_stop_sequence_follows_the_shared_plan(client: httpx.Client) -> None:
    stop = (" the",)
    prompt = _find_prompt("stop", stop)
    plan = _greedy_plan(prompt, 200, stop)
    body = {
        "inputs": prompt,
        "parameters": {"max_new_tokens": 200, "details": True, "stop": list(stop)},
    }
    objs = events(client.post("/generate_stream", json=body).content)
    assert objs[-1]["details"]["finish_reason"] == "stop_sequence"
    assert "".join(o["token"]["text"] for o in objs) == plan.text == objs[-1]["generated_text"]


def test_sampling_echoes_the_seed_and_follows_it(client: httpx.Client) -> None:
    body = {
        "inputs": "Hi",
        "parameters": {"max_new_tokens": 5, "do_sample": True, "seed": 42, "details": True},
    }
    last = events(client.post("/generate_stream", json=body).content)[-1]
    assert last["details"]["seed"] == 42
    assert last["generated_text"] == make_plan("Hi", seed=42, max_tokens=5).text


# -- errors: validation events, plain-text rejections, bare statuses ---------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        pytest.param(
            {"temperature": 0}, "`temperature` must be strictly positive", id="temperature-0"
        ),
        pytest.param({"top_p": 1.0}, "`top_p` must be > 0.0 and < 1.0", id="top-p-1"),
        pytest.param(
            {"max_new_tokens": 0}, "`max_new_tokens` must be strictly positive", id="max-0"
        ),
        pytest.param(
            {"stop": ["a", "b", "c", "d", "e"]},
            "`stop` supports up to 4 stop sequences. Given: 5",
            id="stop-5",
        ),
        pytest.param(
            {"max_new_tokens": 5000},
            "`inputs` tokens + `max_new_tokens` must be <= 4096. Given: 1 `inputs` tokens and 5000 `max_new_tokens`",
            id="too-many-tokens",
        ),
        pytest.param(
            {"best_of": 2}, "`best_of` != 1 is not supported when streaming tokens", id="best-of"
        ),
    ],
)
def test_validation_is_an_event_on_stream_and_422_otherwise(
    client: httpx.Client, params: dict[str, Any], message: str
) -> None:
    body = {"inputs": "Hi", "parameters": params}
    r = client.post("/generate_stream", json=body)
    assert r.status_code == 200
    assert r.content == (
        b'data: {"error":"Input validation error: '
        + message.encode()
        + b'","error_type":"validation"}\n\n'
    )
    if "best_of" not in params:
        r = client.post("/generate", json=body)
        assert r.status_code == 422
        assert r.json() == {
            "error": f"Input validation error: {message}",
            "error_type": "validation",
        }


def test_empty_inputs(client: httpx.Client) -> None:
    r = client.post("/generate", json={"inputs": ""})
    assert r.status_code == 422
    assert r.json()["error"] == "Input validation error: `inputs` cannot be empty"


def test_chat_stream_validation_error_is_openai_event_then_done(client: httpx.Client) -> None:
    body = {"messages": [{"role": "user", "content": "Hi"}], "top_p": 1.0, "stream": True}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    assert r.content == (
        b'data: {"error":{"message":"Input validation error: `top_p` must be > 0.0 and < 1.0",'
        b'"http_status_code":422}}\n\ndata: [DONE]\n\n'
    )


@pytest.mark.parametrize(
    ("content", "headers", "status", "prefix"),
    [
        pytest.param(
            b"{bad",
            {"content-type": "application/json"},
            400,
            "Failed to parse the request body as JSON: ",
            id="syntax",
        ),
        pytest.param(
            b"{}",
            {"content-type": "application/json"},
            422,
            "Failed to deserialize the JSON body into the target type: missing field `inputs`",
            id="missing-inputs",
        ),
        pytest.param(
            b'{"inputs":1}',
            {"content-type": "application/json"},
            422,
            "Failed to deserialize the JSON body into the target type: inputs: invalid type: integer `1`, expected a string",
            id="wrong-type",
        ),
        pytest.param(
            b'{"inputs":"x","parameters":{"max_new_tokens":"5"}}',
            {"content-type": "application/json"},
            422,
            'Failed to deserialize the JSON body into the target type: parameters.max_new_tokens: invalid type: string "5", expected u32',
            id="param-type",
        ),
        pytest.param(
            b'{"inputs":"x","parameters":{"details":null}}',
            {"content-type": "application/json"},
            422,
            "Failed to deserialize the JSON body into the target type: parameters.details: invalid type: null, expected a boolean",
            id="null-bool",
        ),
        pytest.param(
            b"[]",
            {"content-type": "application/json"},
            422,
            "Failed to deserialize the JSON body into the target type: invalid type: sequence",
            id="array",
        ),
        pytest.param(
            b'{"inputs":"x"}',
            {"content-type": "text/plain"},
            415,
            "Expected request with `Content-Type: application/json`",
            id="content-type",
        ),
        pytest.param(
            b'{"inputs":"' + b"x" * 2_000_100 + b'"}',
            {"content-type": "application/json"},
            413,
            "Failed to buffer the request body: length limit exceeded",
            id="huge-body",
        ),
    ],
)
@pytest.mark.parametrize("path", ["/generate", "/generate_stream", "/"])
def test_bad_input_gets_axum_plain_text_rejection(
    client: httpx.Client,
    path: str,
    content: bytes,
    headers: dict[str, str],
    status: int,
    prefix: str,
) -> None:
    r = client.post(path, content=content, headers=headers)
    assert r.status_code == status
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.text.startswith(prefix), r.text


def test_unknown_route_and_wrong_method_are_bare(client: httpx.Client) -> None:
    r = client.get("/nope")
    assert (r.status_code, r.content) == (404, b"")
    r = client.get("/generate")
    assert (r.status_code, r.content) == (405, b"")


def test_api_key_guards_inference_routes_only() -> None:
    with (
        run_mock_engine("tgi", api_key="sekret-key") as eng,
        httpx.Client(base_url=eng.base_url, timeout=TIMEOUT) as c,
    ):
        assert c.post("/generate", json={"inputs": "Hi"}).status_code == 401
        assert c.post("/generate", json={"inputs": "Hi"}).content == b""
        ok = c.post(
            "/generate",
            json={"inputs": "Hi", "parameters": {"max_new_tokens": 2}},
            headers={"Authorization": "bearer SEKRET-KEY"},
        )
        assert ok.status_code == 200
        assert c.get("/health").status_code == 200
        assert c.get("/info").status_code == 200
        seen = [e.header("authorization") for e in eng.journal.entries]
        assert all("sekret" not in (s or "").lower() for s in seen)


# -- info routes -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/health", "/ping"])
def test_health_is_200_empty(client: httpx.Client, path: str) -> None:
    r = client.get(path)
    assert (r.status_code, r.content) == (200, b"")


def test_info_fields_in_router_order(client: httpx.Client, engine: MockEngine) -> None:
    info = client.get("/info").json()
    assert list(info) == [
        "model_id", "model_sha", "model_pipeline_tag", "max_concurrent_requests", "max_best_of",
        "max_stop_sequences", "max_input_tokens", "max_total_tokens", "validation_workers",
        "max_client_batch_size", "router", "version", "sha", "docker_label",
    ]  # fmt: skip
    assert info["model_id"] == engine.model == MODEL
    assert info["version"] == engine.engine_version == "3.3.6-dev0"
    assert info["router"] == "text-generation-router"
    assert info["max_total_tokens"] == 4096


def test_models_and_tokenize(client: httpx.Client) -> None:
    assert client.get("/v1/models").json() == {
        "object": "list",
        "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": MODEL}],
    }
    toks = client.post("/tokenize", json={"inputs": "Hi café"}).json()
    assert [t["text"] for t in toks] == ["Hi", " café"]
    # byte offsets, as TGI slices the input bytes
    assert (toks[1]["start"], toks[1]["stop"]) == (2, 2 + len(" café".encode()))


def test_metrics_count_requests(client: httpx.Client) -> None:
    client.post("/generate", json={"inputs": "Hi", "parameters": {"max_new_tokens": 2}})
    r = client.get("/metrics")
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert "tgi_request_count 1\n" in r.text
    assert "tgi_request_success 1\n" in r.text
    assert "# TYPE tgi_queue_size gauge" in r.text


# -- faults, rendered the TGI way ----------------------------------------------------------------


def _post_stream(client: httpx.Client, fault: str, **params: Any) -> httpx.Response:
    body = {"inputs": "Hi", "parameters": {"max_new_tokens": 6, "details": True, **params}}
    return client.post("/generate_stream", json=body, headers={"X-Mock-Fault": fault})


@pytest.mark.parametrize(
    ("fault", "status", "body"),
    [
        pytest.param(
            "http.400",
            400,
            b"Failed to parse the request body as JSON: expected value at line 1 column 1",
            id="400",
        ),
        pytest.param("http.401", 401, b"", id="401"),
        pytest.param("http.404", 404, b"", id="404"),
        pytest.param(
            "http.422",
            422,
            b'{"error":"Input validation error: `inputs` cannot be empty","error_type":"validation"}',
            id="422",
        ),
        pytest.param(
            "http.500",
            500,
            b'{"error":"Incomplete generation","error_type":"incomplete_generation"}',
            id="500",
        ),
        pytest.param(
            "http.503", 503, b'{"error":"unhealthy","error_type":"healthcheck"}', id="503"
        ),
        pytest.param(
            "http.429_retry_after;seconds=3",
            429,
            b'{"error":"Model is overloaded","error_type":"overloaded"}',
            id="429",
        ),
    ],
)
def test_http_faults_use_tgi_envelopes(
    client: httpx.Client, fault: str, status: int, body: bytes
) -> None:
    r = _post_stream(client, fault)
    assert (r.status_code, r.content) == (status, body)
    if status == 429:
        assert r.headers["retry-after"] == "3"


def test_overload_is_an_event_on_the_stream_and_429_on_generate(client: httpx.Client) -> None:
    r = _post_stream(client, "engine.overload")
    assert r.status_code == 200
    assert r.content == b'data: {"error":"Model is overloaded","error_type":"overloaded"}\n\n'
    r = client.post("/generate", json={"inputs": "Hi"}, headers={"X-Mock-Fault": "engine.overload"})
    assert r.status_code == 429
    assert r.json() == {"error": "Model is overloaded", "error_type": "overloaded"}
    chat = {"messages": [{"role": "user", "content": "Hi"}], "stream": True}
    r = client.post("/v1/chat/completions", json=chat, headers={"X-Mock-Fault": "engine.overload"})
    assert r.content == (
        b'data: {"error":{"message":"Model is overloaded","http_status_code":422}}\n\n'
        b"data: [DONE]\n\n"
    )


def test_real_overload_when_slots_and_queue_are_full() -> None:
    prof = {"base": "fast", "slots": 1, "queue_size": 0, "itl_ms": 200.0}
    with (
        run_mock_engine("tgi", profile="fast") as eng,
        httpx.Client(base_url=eng.base_url, timeout=TIMEOUT) as c,
    ):
        c.post("/__mock__/config", json={"profile": prof}).raise_for_status()
        body = {"inputs": "Hi", "parameters": {"max_new_tokens": 5}}
        with (
            httpx.Client(base_url=eng.base_url, timeout=TIMEOUT) as c2,
            c2.stream("POST", "/generate_stream", json=body) as first,
        ):
            assert first.status_code == 200
            second = c.post("/generate_stream", json=body)
            assert second.status_code == 200
            assert events(second.content) == [
                {"error": "Model is overloaded", "error_type": "overloaded"}
            ]


def test_stream_error_event_after_first_token(client: httpx.Client) -> None:
    objs = events(_post_stream(client, "stream.error_event;message=CUDA OOM").content)
    assert len(objs) == 2
    assert objs[0]["index"] == 1
    assert objs[1] == {
        "error": "Request failed during generation: CUDA OOM",
        "error_type": "generation",
    }


def test_keepalive_flood_uses_axum_comments(client: httpx.Client) -> None:
    r = _post_stream(client, "stream.keepalive_flood;count=50")
    assert r.content.count(b":\n\n") == 50
    assert (
        r.content.replace(b":\n\n", b"") == _post_stream(client, "frame.split_every_byte").content
    )


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        pytest.param("frame.duplicate_index", lambda idx: idx[1] == idx[2], id="duplicate"),
        pytest.param("frame.out_of_order_index", lambda idx: idx[1] > idx[2], id="out-of-order"),
    ],
)
def test_index_faults(client: httpx.Client, fault: str, check: Any) -> None:
    idx = [o["index"] for o in events(_post_stream(client, fault).content)]
    assert check(idx), idx


def test_missing_terminal_drops_the_generated_text_event(client: httpx.Client) -> None:
    objs = events(_post_stream(client, "frame.missing_terminal").content)
    assert objs and all(o["generated_text"] is None for o in objs)
    assert len(objs) == 5


def test_malformed_json_and_oversized(client: httpx.Client) -> None:
    body = _post_stream(client, "frame.malformed_json").content
    with pytest.raises(ValueError):
        events(body)
    big = _post_stream(client, "frame.oversized;size=100000").content
    frames = big.split(b"\n\n")
    assert max(len(f) + 2 for f in frames) == 100000
    assert json.loads(max(frames, key=len)[6:])["token"]["text"].startswith("xxx")


def test_wrong_content_type_keeps_the_body(client: httpx.Client) -> None:
    r = _post_stream(client, "http.wrong_content_type")
    assert r.headers["content-type"] == "text/plain"
    assert len(events(r.content)) == 6


def test_midstream_disconnect_truncates(engine: MockEngine, client: httpx.Client) -> None:
    got = b""
    body = {"inputs": "Hi", "parameters": {"max_new_tokens": 6}}
    headers = {"X-Mock-Fault": "midstream.disconnect;after_events=2"}
    with pytest.raises(httpx.RemoteProtocolError):  # noqa: SIM117
        with client.stream("POST", "/generate_stream", json=body, headers=headers) as r:
            for chunk in r.iter_raw():
                got += chunk
    assert got.count(b"data: ") == 2
    assert b'generated_text":"' not in got
    entry = engine.journal.wait_for_sync(
        lambda j: j.last() if j.last() and j.last().aborted else None, 5
    )
    assert entry.aborted


# -- loading: the port stays closed -------------------------------------------------------------


def test_loading_keeps_the_port_closed_then_serves(engine: MockEngine) -> None:
    check_loading_then_serving(engine, "/health")


def test_loading_cannot_be_selected_per_request(client: httpx.Client) -> None:
    r = client.post("/generate", json={"inputs": "Hi"}, headers={"X-Mock-Fault": "engine.loading"})
    assert r.status_code == 400


def test_every_fault_applies_to_tgi(engine: MockEngine) -> None:
    from llorch_conformance.mock_engines import fault_catalogue

    for spec in fault_catalogue():
        assert "tgi" in spec.applies_to, spec.id
    with pytest.raises(ConfigError):
        engine.set_faults(["no.such.fault"])


# -- /v1/completions -----------------------------------------------------------------------------


def test_completions_non_stream(client: httpx.Client) -> None:
    body = {"prompt": "Hi", "max_tokens": 3, "temperature": 0}
    r = client.post("/v1/completions", json=body)
    assert r.content == (
        b'{"object":"text_completion","id":"","created":1732000000,"model":"'
        + MODEL.encode()
        + b'","system_fingerprint":"3.3.6-dev0-native","choices":[{"index":0,"text":" llama engine?",'
        b'"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":1,'
        b'"completion_tokens":3,"total_tokens":4}}'
    )


def test_completions_stream_chunks_final_usage_and_done(client: httpx.Client) -> None:
    body = {"prompt": "Hi", "max_tokens": 3, "temperature": 0, "stream": True}
    r = client.post("/v1/completions", json=body)
    objs = events(r.content)
    assert [o["choices"][0]["text"] for o in objs] == [" llama", " engine", "?"]
    assert [o["choices"][0]["finish_reason"] for o in objs] == ["", "", "length"]
    assert list(objs[0]) == ["object", "id", "created", "choices", "model", "system_fingerprint"]
    assert objs[-1]["usage"] == {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}
    assert r.content.endswith(b"data: [DONE]\n\n")


def test_completions_batch_of_prompts_and_limits(client: httpx.Client) -> None:
    body = {"prompt": ["Hi", "Hi"], "max_tokens": 2, "temperature": 0, "stream": True}
    objs = events(client.post("/v1/completions", json=body).content)
    assert sorted(o["choices"][0]["index"] for o in objs) == [0, 0, 1, 1]
    r = client.post("/v1/completions", json={"prompt": ["a"] * 5})
    assert r.status_code == 422
    assert r.json()["error_type"] == "batch size exceeded"
    r = client.post("/v1/completions", json={"prompt": "a", "suffix": "b"})
    assert r.json()["error_type"] == "suffix not supported"


def test_openai_sdk_against_the_tgi_v1_routes(engine: MockEngine) -> None:
    openai = pytest.importorskip("openai")
    sdk = openai.OpenAI(base_url=f"{engine.base_url}/v1", api_key="x", max_retries=0, timeout=10)
    out = sdk.completions.create(model="tgi", prompt="Hi", max_tokens=3, temperature=0)
    assert out.choices[0].text == " llama engine?"
    stream = sdk.chat.completions.create(
        model="tgi",
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=2,
        temperature=0,
        stream=True,
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == " llama engine"


# -- top_n_tokens / logprobs ---------------------------------------------------------------------


def test_top_tokens_on_stream_and_generate(client: httpx.Client) -> None:
    params = {"max_new_tokens": 3, "top_n_tokens": 3, "details": True}
    objs = events(
        client.post("/generate_stream", json={"inputs": "Hi", "parameters": params}).content
    )
    for o in objs:
        assert list(o) == ["index", "token", "top_tokens", "generated_text", "details"]
        top = o["top_tokens"]
        assert len(top) == 3 and top[0] == o["token"]
        assert [t["logprob"] for t in top] == sorted((t["logprob"] for t in top), reverse=True)
    details = client.post("/generate", json={"inputs": "Hi", "parameters": params}).json()[
        "details"
    ]
    assert [c[0] for c in details["top_tokens"]] == details["tokens"]
    r = client.post("/generate", json={"inputs": "Hi", "parameters": {"top_n_tokens": 6}})
    assert (
        r.json()["error"]
        == "Input validation error: `top_n_tokens` must be >= 0 and <= 5. Given: 6"
    )


def test_chat_logprobs(client: httpx.Client) -> None:
    body = {
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 2,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": 2,
    }
    lp = client.post("/v1/chat/completions", json=body).json()["choices"][0]["logprobs"]
    assert [c["token"] for c in lp["content"]] == [" llama", " engine"]
    assert all(len(c["top_logprobs"]) == 2 for c in lp["content"])
    objs = events(client.post("/v1/chat/completions", json={**body, "stream": True}).content)
    assert [o["choices"][0]["logprobs"]["content"][0]["token"] for o in objs] == [
        " llama",
        " engine",
    ]


def test_engine_wide_axum_06_framing_with_a_dialect_object() -> None:
    from llorch_conformance.mock_engines import EngineContext, MockEngineApp
    from llorch_conformance.mock_engines._dialects.tgi import TgiDialect
    from llorch_conformance.mock_engines._runner import MockEngine as Engine

    app = MockEngineApp(EngineContext(TgiDialect(legacy_framing=True)))
    with Engine(app) as eng, httpx.Client(base_url=eng.base_url, timeout=TIMEOUT) as c:
        r = c.post("/generate_stream", json={"inputs": "Hi", "parameters": GREEDY})
        assert r.content == GOLDEN_STREAM.replace(b"data: ", b"data:")
        # the per-request header still wins
        r = c.post(
            "/generate_stream",
            json={"inputs": "Hi", "parameters": GREEDY},
            headers={"X-Mock-Tgi-Framing": "axum07"},
        )
        assert r.content == GOLDEN_STREAM


def test_info_golden_bytes(client: httpx.Client) -> None:
    assert client.get("/info").content == (
        b'{"model_id":"TinyLlama/TinyLlama-1.1B-Chat-v1.0","model_sha":'
        b'"c3c8bbb91c32c852c7c17cb5fb60925a26533cba","model_pipeline_tag":"text-generation",'
        b'"max_concurrent_requests":1088,"max_best_of":1,"max_stop_sequences":4,'
        b'"max_input_tokens":4095,"max_total_tokens":4096,"validation_workers":2,'
        b'"max_client_batch_size":4,"router":"text-generation-router","version":"3.3.6-dev0",'
        b'"sha":"db931fcf42da018a3657580c64bf2720f167f9ab","docker_label":null}'
    )
