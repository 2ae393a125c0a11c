"""Every route of the llama.cpp, vLLM and OpenAI mocks; auth; bad input gets the engine's envelope."""

from __future__ import annotations

import json

import httpx
import pytest

from llorch_conformance.mock_engines import MockEngine, make_plan, run_mock_engine

from ._helpers import CREATED, TIMEOUT, gen_request, sse_json, stream_texts


@pytest.mark.parametrize("dialect", ["llamacpp"])
def test_llamacpp_info_routes(client: httpx.Client, dialect: str, engine: MockEngine) -> None:
    for path in ("/health", "/v1/health"):
        r = client.get(path)
        assert (r.status_code, r.json()) == (200, {"status": "ok"})
        assert r.headers["content-type"] == "application/json; charset=utf-8"
    props = client.get("/props").json()
    assert props["build_info"] == engine.engine_version
    assert props["total_slots"] == engine.ctx.slots.slots
    assert props["model_alias"] == engine.model
    slots = client.get("/slots").json()
    assert len(slots) == engine.ctx.slots.slots and not any(s["is_processing"] for s in slots)
    models = client.get("/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["owned_by"] == "llamacpp"
    assert models["models"][0]["name"] == engine.model
    assert client.get("/models").json() == models
    r = client.post("/completion", json={"prompt": "Hi", "n_predict": 3})
    m = client.get("/metrics")
    assert m.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "llamacpp:tokens_predicted_total 3" in m.text
    assert "# TYPE llamacpp:requests_processing gauge" in m.text
    nf = client.get("/nope")
    assert nf.status_code == 404
    assert (
        nf.content == b'{"error":{"message":"File Not Found","type":"not_found_error","code":404}}'
    )


@pytest.mark.parametrize("dialect", ["vllm"])
def test_vllm_info_routes(client: httpx.Client, dialect: str, engine: MockEngine) -> None:
    r = client.get("/health")
    assert (r.status_code, r.content) == (200, b"")
    assert client.get("/version").json() == {"version": engine.engine_version}
    models = client.get("/v1/models").json()
    card = models["data"][0]
    assert (card["id"], card["owned_by"], card["root"], card["parent"]) == (
        engine.model,
        "vllm",
        engine.model,
        None,
    )
    assert card["permission"][0]["object"] == "model_permission"
    client.post("/v1/completions", json={"model": engine.model, "prompt": "Hi", "max_tokens": 2})
    m = client.get("/metrics").text
    lab = f'engine="0",model_name="{engine.model}"'
    assert f"vllm:generation_tokens_total{{{lab}}} 2.0" in m
    assert "vllm:num_requests_running" in m
    assert f'vllm:time_to_first_token_seconds_bucket{{{lab},le="+Inf"}} 1.0' in m
    assert client.get("/nope").json() == {"detail": "Not Found"}
    wrong = client.get("/v1/completions")
    assert wrong.json() == {"detail": "Method Not Allowed"}
    assert wrong.headers["allow"] == "POST"
    assert client.get("/load").json() == {"server_load": 0}
    tok = client.post("/tokenize", json={"model": engine.model, "prompt": "Hello world"}).json()
    assert (tok["count"], tok["max_model_len"], tok["token_strs"]) == (2, 4096, None)
    text = client.post("/detokenize", json={"model": engine.model, "tokens": tok["tokens"]})
    assert text.json() == {"prompt": "Hello world"}


@pytest.mark.parametrize("dialect", ["openai"])
def test_openai_info_routes(client: httpx.Client, dialect: str) -> None:
    models = client.get("/v1/models")
    assert models.headers["x-request-id"].startswith("req_")
    ids = [m["id"] for m in models.json()["data"]]
    assert "gpt-4o-mini" in ids
    assert client.get("/v1/models/gpt-4o-mini").json()["id"] == "gpt-4o-mini"
    missing = client.get("/v1/models/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    nf = client.post("/v1/nope")
    assert nf.status_code == 404
    assert nf.json()["error"] == {
        "message": "Invalid URL (POST /v1/nope)",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_generation_matches_plan(
    client: httpx.Client, dialect: str, engine: MockEngine, stream: bool
) -> None:
    model = "gpt-4o-mini" if dialect == "openai" else engine.model
    path, body = gen_request(dialect, model, stream=stream, prompt="Tell me", max_tokens=7, seed=5)
    r = client.post(path, json=body)
    assert r.status_code == 200
    plan = make_plan("Tell me", seed=5, max_tokens=7)
    if stream:
        assert stream_texts(dialect, r.content) == list(plan.tokens)
    else:
        out = r.json()
        text = out["content"] if dialect == "llamacpp" else out["choices"][0]["text"]
        assert text == plan.text
        if dialect != "llamacpp":
            assert out["usage"]["completion_tokens"] == 7
            assert out["usage"]["prompt_tokens"] == plan.prompt_tokens


def test_chat_non_stream(client: httpx.Client, dialect: str, engine: MockEngine) -> None:
    model = "gpt-4o-mini" if dialect == "openai" else engine.model
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    r = client.post(
        "/v1/chat/completions", json={"model": model, "messages": msgs, "max_tokens": 5, "seed": 1}
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["object"] == "chat.completion"
    assert out["choices"][0]["message"]["role"] == "assistant"
    from llorch_conformance.mock_engines import chat_prompt

    assert (
        out["choices"][0]["message"]["content"]
        == make_plan(chat_prompt(msgs), seed=1, max_tokens=5).text
    )
    if dialect == "openai":
        assert r.content.startswith(b'{\n  "id": "chatcmpl-')  # the API pretty-prints bodies


def test_request_seed_defaults_to_engine_seed() -> None:
    with run_mock_engine("llamacpp", seed=123) as eng:
        r = httpx.post(
            eng.base_url + "/completion", json={"prompt": "x", "n_predict": 5}, timeout=TIMEOUT
        )
    assert r.json()["content"] == make_plan("x", seed=123, max_tokens=5).text


# -- bad input ---------------------------------------------------------------------------------------


BAD = {
    "llamacpp": [
        ("/completion", b"{not json", 400, "invalid_request_error"),  # real b11434: 400
        ("/completion", b"[1,2]", 400, "invalid_request_error"),
        ("/completion", b'{"n_predict": 3}', 400, "invalid_request_error"),
        ("/completion", b'{"prompt": {"a": 1}}', 400, "invalid_request_error"),
        ("/v1/chat/completions", b'{"messages": "hi"}', 400, "invalid_request_error"),
    ],
    "vllm": [
        ("/v1/completions", b"{not json", 400, "Bad Request"),
        ("/v1/completions", b'{"model": "Qwen/Qwen2.5-0.5B-Instruct"}', 400, "BadRequestError"),
        ("/v1/completions", b'{"prompt": "x", "max_tokens": "ten"}', 400, "Bad Request"),
        ("/v1/chat/completions", b'{"messages": [1]}', 400, "Bad Request"),
        ("/v1/completions", b'{"prompt": "x", "model": "other"}', 404, "NotFoundError"),
        ("/v1/completions", b'{"prompt": "x", "stream_options": {}}', 400, "BadRequestError"),
    ],
    "openai": [
        ("/v1/chat/completions", b"{not json", 400, "invalid_request_error"),
        ("/v1/chat/completions", b'{"model": "gpt-4o-mini"}', 400, "invalid_request_error"),
        ("/v1/chat/completions", b'{"model": "gpt-4o-mini", "messages": [], "max_tokens": "x"}', 400, "invalid_request_error"),
        ("/v1/chat/completions", b'{"model": "nope", "messages": []}', 404, "invalid_request_error"),
        ("/v1/completions", b'{"prompt": "x"}', 400, "invalid_request_error"),
    ],
}  # fmt: skip


def test_bad_input_gets_engine_envelope(client: httpx.Client, dialect: str) -> None:
    for path, body, status, etype in BAD[dialect]:
        r = client.post(path, content=body, headers={"content-type": "application/json"})
        assert r.status_code == status, (path, body, r.text)
        err = r.json()["error"]
        assert err["type"] == etype, (path, body, r.text)
        assert err["message"]
        if dialect == "llamacpp":
            assert err["code"] == status
        elif dialect == "vllm":
            assert list(err) == ["message", "type", "param", "code"] and err["code"] == status
        else:
            assert list(err) == ["message", "type", "param", "code"]
            assert err["code"] is None or isinstance(err["code"], str)


@pytest.mark.parametrize("dialect", ["llamacpp"])
def test_wrong_types_fall_back_to_defaults_on_llamacpp(client: httpx.Client, dialect: str) -> None:
    r = client.post(
        "/completion", json={"prompt": "x", "n_predict": "three", "stream": "yes", "seed": 4}
    )
    assert r.status_code == 200
    assert r.json()["stop_type"] == "eos"  # n_predict fell back to -1 (unlimited)


def test_huge_body_is_rejected_cleanly(dialect: str) -> None:
    with run_mock_engine(dialect, max_body_bytes=1024) as eng:
        r = httpx.post(
            eng.base_url + "/v1/completions",
            content=b'{"prompt":"' + b"x" * 200_000 + b'"}',
            headers={"authorization": "Bearer k", "content-type": "application/json"},
            timeout=TIMEOUT,
        )
        assert r.status_code == 413
        if dialect != "llamacpp":
            assert r.json()["error"]["message"]
        entry = eng.journal.last()
        assert entry is not None and entry.status == 413 and entry.body_size > 1024


# -- auth ------------------------------------------------------------------------------------------------


def test_llamacpp_api_key() -> None:
    with run_mock_engine("llamacpp", api_key="sekrit") as eng:
        base = eng.base_url
        assert httpx.get(base + "/health", timeout=TIMEOUT).status_code == 200  # public
        r = httpx.post(base + "/completion", json={"prompt": "x"}, timeout=TIMEOUT)
        assert r.status_code == 401
        assert (
            r.content
            == b'{"error":{"message":"Invalid API Key","type":"authentication_error","code":401}}'
        )
        ok = httpx.post(
            base + "/completion",
            json={"prompt": "x", "n_predict": 1},
            headers={"Authorization": "Bearer sekrit"},
            timeout=TIMEOUT,
        )
        assert ok.status_code == 200
        assert (
            httpx.get(base + "/props", headers={"X-Api-Key": "sekrit"}, timeout=TIMEOUT).status_code
            == 200
        )
        entry = eng.journal.find(path="/completion")[-1]
        assert (
            entry.header("authorization")
            == "Bearer ****" + __import__("hashlib").sha256(b"sekrit").hexdigest()[:6]
        )
        assert "sekrit" not in json.dumps(eng.journal.to_dict())


def test_vllm_api_key_guards_only_v1() -> None:
    with run_mock_engine("vllm", api_key="k1") as eng:
        assert httpx.get(eng.base_url + "/health", timeout=TIMEOUT).status_code == 200
        r = httpx.get(eng.base_url + "/v1/models", timeout=TIMEOUT)
        assert (r.status_code, r.content) == (401, b'{"error":"Unauthorized"}')
        ok = httpx.get(
            eng.base_url + "/v1/models", headers={"authorization": "Bearer k1"}, timeout=TIMEOUT
        )
        assert ok.status_code == 200


def test_openai_requires_a_key() -> None:
    with run_mock_engine("openai", api_key="sk-right") as eng:
        r = httpx.get(eng.base_url + "/v1/models", timeout=TIMEOUT)
        assert r.status_code == 401
        assert r.json()["error"]["message"].startswith("You didn't provide an API key.")
        bad = httpx.get(
            eng.base_url + "/v1/models",
            headers={"authorization": "Bearer sk-wrong"},
            timeout=TIMEOUT,
        )
        assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_api_key"
        assert "sk-wrong" not in bad.text
        ok = httpx.get(
            eng.base_url + "/v1/models",
            headers={"authorization": "Bearer sk-right"},
            timeout=TIMEOUT,
        )
        assert ok.status_code == 200


def test_stream_frames_are_joined_per_due_moment(
    client: httpx.Client, dialect: str, engine: MockEngine
) -> None:
    """With the fast profile everything is due at once: one write carries all frames."""
    model = "gpt-4o-mini" if dialect == "openai" else engine.model
    path, body = gen_request(dialect, model, stream=True, max_tokens=5)
    client.post(path, json=body)
    entry = engine.journal.find(path=path)[-1]
    assert entry.completed and not entry.disconnected
    assert len(entry.frames) == len(sse_json(b"".join(entry.frames))) + (
        0 if dialect == "llamacpp" else 1
    )
    assert entry.t_first_byte is not None and entry.t_last_byte is not None
    assert entry.t_received <= entry.t_first_byte <= entry.t_last_byte


def test_created_defaults_to_now() -> None:
    import time

    with run_mock_engine("vllm") as eng:
        r = httpx.post(
            eng.base_url + "/v1/completions", json={"prompt": "x", "max_tokens": 1}, timeout=TIMEOUT
        )
    assert abs(r.json()["created"] - time.time()) < 60
    assert r.json()["created"] > CREATED


@pytest.mark.parametrize("dialect", ["llamacpp"])
def test_tokens_per_chunk_groups_tokens_into_frames(dialect: str) -> None:
    from llorch_conformance.mock_engines import load_profile

    with run_mock_engine(dialect, profile=load_profile("fast", tokens_per_chunk=3)) as eng:
        r = httpx.post(
            eng.base_url + "/completion",
            json={"prompt": "Hello", "n_predict": 7, "stream": True, "seed": 2},
            timeout=TIMEOUT,
        )
    plan = make_plan("Hello", seed=2, max_tokens=7)
    partials = [o for o in sse_json(r.content) if not o["stop"]]
    assert [o["content"] for o in partials] == [
        "".join(plan.tokens[0:3]),
        "".join(plan.tokens[3:6]),
        "".join(plan.tokens[6:7]),
    ]
    assert [o["tokens"] for o in partials] == [list(plan.token_ids[k : k + 3]) for k in (0, 3, 6)]
    assert [o["tokens_predicted"] for o in partials] == [3, 6, 7]
