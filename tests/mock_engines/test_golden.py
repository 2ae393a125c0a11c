"""Golden bytes: a fixed seed/plan rendered by each dialect must match the engine's framing exactly.

The expected bytes are spelled out here from the reference transcripts (engine-dialects.md §1.9,
§2.8, §4.3) — key order, separators, ``data: `` prefix, ``\\n\\n``, ``[DONE]`` only where the
engine sends it — with the token texts taken from the plan (the oracle), not from the mock's
renderer.
"""

from __future__ import annotations

import hashlib
import json

import httpx

from llorch_conformance.mock_engines import chat_prompt, make_plan, run_mock_engine

from ._helpers import CREATED, TIMEOUT

SEED = 42
MSGS = [{"role": "user", "content": "Say hi"}]


def js(v: object) -> str:
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"))


def post(base: str, path: str, body: dict[str, object], **headers: str) -> httpx.Response:
    return httpx.post(base + path, json=body, timeout=TIMEOUT, headers=headers)


def test_llamacpp_native_stream() -> None:
    plan = make_plan("Hello", seed=SEED, max_tokens=4)
    with run_mock_engine("llamacpp", created=CREATED) as eng:
        r = post(
            eng.base_url,
            "/completion",
            {"prompt": "Hello", "n_predict": 4, "stream": True, "seed": SEED},
        )
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/event-stream"
    assert r.headers["server"] == "llama.cpp"
    expected = b"".join(
        (
            f'data: {{"index":0,"content":{js(t)},"tokens":[{i}],"stop":false,"id_slot":0,'
            f'"tokens_predicted":{k + 1},"tokens_evaluated":{plan.prompt_tokens}}}\n\n'
        ).encode()
        for k, (t, i) in enumerate(zip(plan.tokens, plan.token_ids, strict=True))
    )
    assert r.content.startswith(expected)
    final = r.content[len(expected) :]
    assert final.startswith(
        (
            'data: {"index":0,"content":"","tokens":[],"id_slot":0,"stop":true,'
            f'"model":{js(eng.model)},"tokens_predicted":4,"tokens_evaluated":{plan.prompt_tokens},'
            '"generation_settings":{"n_predict":4,"seed":42,'
        ).encode()
    )
    assert final.endswith(
        (
            f'"prompt":"Hello","has_new_line":{js(chr(10) in plan.text)},"truncated":false,'
            '"stop_type":"limit","stopping_word":"","tokens_cached":'
            f'{plan.prompt_tokens + 4},"timings":{{"cache_n":0,"prompt_n":{plan.prompt_tokens},'
            '"prompt_ms":0.0,"prompt_per_token_ms":0.0,"prompt_per_second":0.0,"predicted_n":4,'
            '"predicted_ms":0.0,"predicted_per_token_ms":0.0,"predicted_per_second":0.0}}\n\n'
        ).encode()
    )
    assert b"[DONE]" not in r.content


def test_llamacpp_oai_chat_stream_with_usage() -> None:
    plan = make_plan(chat_prompt(MSGS), seed=SEED, max_tokens=3)
    with run_mock_engine("llamacpp", created=CREATED) as eng:
        r = post(
            eng.base_url,
            "/v1/chat/completions",
            {"messages": MSGS, "max_tokens": 3, "seed": SEED, "stream": True,
             "stream_options": {"include_usage": True}},
        )  # fmt: skip
    frames = r.content.split(b"\n\n")
    cid = json.loads(frames[0][6:])["id"]
    assert cid.startswith("chatcmpl-")
    tail = (
        f',"created":{CREATED},"id":"{cid}","model":{js(eng.model)},'
        f'"system_fingerprint":"{eng.engine_version}","object":"chat.completion.chunk"'
    )
    expected = [
        f'data: {{"choices":[{{"finish_reason":null,"index":0,"delta":{{"role":"assistant","content":null}}}}]{tail}}}'
    ]
    expected += [
        f'data: {{"choices":[{{"finish_reason":null,"index":0,"delta":{{"content":{js(t)}}}}}]{tail}}}'
        for t in plan.tokens
    ]
    expected.append(
        f'data: {{"choices":[{{"finish_reason":"length","index":0,"delta":{{}}}}]{tail}}}'
    )
    usage = (
        f'"usage":{{"completion_tokens":3,"prompt_tokens":{plan.prompt_tokens},'
        f'"total_tokens":{plan.prompt_tokens + 3},"prompt_tokens_details":{{"cached_tokens":0}}}}'
    )
    timings = (
        f'"timings":{{"cache_n":0,"prompt_n":{plan.prompt_tokens},"prompt_ms":0.0,'
        '"prompt_per_token_ms":0.0,"prompt_per_second":0.0,"predicted_n":3,"predicted_ms":0.0,'
        '"predicted_per_token_ms":0.0,"predicted_per_second":0.0}'
    )
    expected.append(f'data: {{"choices":[]{tail},{usage},{timings}}}')
    expected.append("data: [DONE]")
    assert r.content == ("\n\n".join(expected) + "\n\n").encode()


def test_llamacpp_oai_completion_stream() -> None:
    plan = make_plan("Hello", seed=SEED, max_tokens=2)
    with run_mock_engine("llamacpp", created=CREATED) as eng:
        r = post(
            eng.base_url,
            "/v1/completions",
            {"prompt": "Hello", "max_tokens": 2, "seed": SEED, "stream": True},
        )
    objs = [json.loads(f[6:]) for f in r.content.split(b"\n\n") if f and f != b"data: [DONE]"]
    cid = objs[0]["id"]
    head = f'"created":{CREATED},"model":{js(eng.model)},"system_fingerprint":"{eng.engine_version}","object":"text_completion"'
    expected = [
        f'data: {{"choices":[{{"text":{js(t)},"index":0,"logprobs":null,"finish_reason":null}}],{head},"id":"{cid}"}}'
        for t in plan.tokens
    ]
    assert r.content.startswith(("\n\n".join(expected) + "\n\n").encode())
    assert r.content.endswith(b"}}\n\ndata: [DONE]\n\n")
    assert objs[-1]["choices"][0] == {
        "text": "",
        "index": 0,
        "logprobs": None,
        "finish_reason": "length",
    }
    assert list(objs[-1]) == [
        "choices",
        "created",
        "model",
        "system_fingerprint",
        "object",
        "usage",
        "id",
        "timings",
    ]


def test_vllm_chat_stream_with_usage() -> None:
    """Bytes as vLLM 0.32.0 writes them (measured by the drift check)."""
    plan = make_plan(chat_prompt(MSGS), seed=SEED, max_tokens=3)
    with run_mock_engine("vllm", created=CREATED) as eng:
        r = post(
            eng.base_url,
            "/v1/chat/completions",
            {"model": eng.model, "messages": MSGS, "max_tokens": 3, "seed": SEED, "stream": True,
             "stream_options": {"include_usage": True}},
            **{"X-Request-Id": "7f3c"},
        )  # fmt: skip
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert r.headers["x-request-id"] == "7f3c"
    fp = "vllm-0.32.0-" + hashlib.sha256(eng.model.encode()).hexdigest()[:8]
    head = f'"id":"chatcmpl-7f3c","object":"chat.completion.chunk","created":{CREATED},"model":{js(eng.model)}'
    lines = [
        f'data: {{{head},"choices":[{{"index":0,"delta":{{"role":"assistant","content":""}},"logprobs":null,"finish_reason":null}}],"prompt_token_ids":null,"prompt_text":null}}'
    ]
    for k, t in enumerate(plan.tokens):
        fin = '"length","stop_reason":null' if k == len(plan.tokens) - 1 else "null"
        lines.append(
            f'data: {{{head},"choices":[{{"index":0,"delta":{{"content":{js(t)}}},"logprobs":null,"finish_reason":{fin},"token_ids":null}}]}}'
        )
    lines.append(
        f'data: {{{head},"choices":[],"usage":{{"prompt_tokens":{plan.prompt_tokens},'
        f'"total_tokens":{plan.prompt_tokens + 3},"completion_tokens":3}},"system_fingerprint":"{fp}"}}'
    )
    lines.append("data: [DONE]")
    assert r.content == ("\n\n".join(lines) + "\n\n").encode()


def test_vllm_completion_stream_has_every_field() -> None:
    plan = make_plan("Hello", seed=SEED, max_tokens=2)
    with run_mock_engine("vllm", created=CREATED) as eng:
        r = post(
            eng.base_url,
            "/v1/completions",
            {"model": eng.model, "prompt": "Hello", "max_tokens": 2, "seed": SEED, "stream": True},
            **{"X-Request-Id": "r1"},
        )
    fp = "vllm-0.32.0-" + hashlib.sha256(eng.model.encode()).hexdigest()[:8]
    head = f'"id":"cmpl-r1","object":"text_completion","created":{CREATED},"model":{js(eng.model)}'
    lines = []
    for k, t in enumerate(plan.tokens):
        last = k == len(plan.tokens) - 1
        fin = '"length"' if last else "null"
        tail = f',"system_fingerprint":"{fp}"' if last else ""
        lines.append(
            f'data: {{{head},"choices":[{{"index":0,"text":{js(t)},"logprobs":null,"finish_reason":{fin},'
            f'"stop_reason":null,"prompt_token_ids":null,"token_ids":null}}]{tail}}}'
        )
    lines.append("data: [DONE]")
    assert r.content == ("\n\n".join(lines) + "\n\n").encode()


def test_openai_chat_stream_with_usage() -> None:
    plan = make_plan(chat_prompt(MSGS), seed=SEED, max_tokens=3)
    with run_mock_engine("openai", created=CREATED) as eng:
        r = post(
            eng.base_url,
            "/v1/chat/completions",
            {"model": "gpt-4o-mini", "messages": MSGS, "max_tokens": 3, "seed": SEED, "stream": True,
             "stream_options": {"include_usage": True, "include_obfuscation": False}},
            authorization="Bearer sk-test",
        )  # fmt: skip
    assert r.headers["x-request-id"].startswith("req_")
    assert r.headers["x-ratelimit-limit-requests"]
    cid = json.loads(r.content.split(b"\n\n")[0][6:])["id"]
    head = (
        f'"id":"{cid}","object":"chat.completion.chunk","created":{CREATED},'
        '"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_0ba0d124f1"'
    )
    lines = [
        f'data: {{{head},"choices":[{{"index":0,"delta":{{"role":"assistant","content":"","refusal":null}},"logprobs":null,"finish_reason":null}}],"usage":null}}'
    ]
    lines += [
        f'data: {{{head},"choices":[{{"index":0,"delta":{{"content":{js(t)}}},"logprobs":null,"finish_reason":null}}],"usage":null}}'
        for t in plan.tokens
    ]
    lines.append(
        f'data: {{{head},"choices":[{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"length"}}],"usage":null}}'
    )
    lines.append(
        f'data: {{{head},"choices":[],"usage":{{"prompt_tokens":{plan.prompt_tokens},"completion_tokens":3,'
        f'"total_tokens":{plan.prompt_tokens + 3},"prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},'
        '"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,'
        '"rejected_prediction_tokens":0}}}'
    )
    lines.append("data: [DONE]")
    assert r.content == ("\n\n".join(lines) + "\n\n").encode()


def test_openai_obfuscation_is_on_by_default_and_seeded() -> None:
    body = {"model": "gpt-4o-mini", "messages": MSGS, "max_tokens": 3, "stream": True}
    runs = []
    for _ in range(2):
        with run_mock_engine("openai", created=CREATED) as eng:
            r = post(eng.base_url, "/v1/chat/completions", body, authorization="Bearer k")
        objs = [json.loads(f[6:]) for f in r.content.split(b"\n\n") if f.startswith(b"data: {")]
        assert all(isinstance(o["obfuscation"], str) and o["obfuscation"] for o in objs)
        assert all("usage" not in o for o in objs)
        runs.append(r.content)
    assert runs[0] == runs[1]


def test_cross_dialect_oracle_same_texts_and_reason() -> None:
    """Same seed/prompt/max_tokens/stop → same token texts in every dialect's stream."""
    from ._helpers import auth_headers, gen_request, stream_texts

    base = make_plan("Once upon", seed=SEED, max_tokens=12, ignore_eos=True)
    stop = base.text[len(base.tokens[0]) + 1 : len(base.tokens[0]) + 3]
    plan = make_plan("Once upon", seed=SEED, max_tokens=12, stop=[stop])
    for d in ("llamacpp", "vllm", "openai"):
        with run_mock_engine(d) as eng:
            model = "gpt-4o-mini" if d == "openai" else eng.model
            path, body = gen_request(
                d, model, stream=True, prompt="Once upon", max_tokens=12, seed=SEED, stop=[stop]
            )
            r = httpx.post(eng.base_url + path, json=body, headers=auth_headers(d), timeout=TIMEOUT)
            assert stream_texts(d, r.content) == list(plan.tokens), d
            frames = [
                json.loads(f)
                for f in r.content.split(b"\n\n")
                if f.startswith(b"data: {")
                for f in [f[6:]]
            ]
            if d == "llamacpp":
                assert (
                    frames[-1]["stop_type"]
                    == {"stop": "word", "eos": "eos", "length": "limit"}[plan.stop_reason]
                )
            else:
                reasons = [
                    c["finish_reason"]
                    for f in frames
                    for c in f.get("choices", [])
                    if c["finish_reason"]
                ]
                assert reasons == ["length" if plan.stop_reason == "length" else "stop"]
