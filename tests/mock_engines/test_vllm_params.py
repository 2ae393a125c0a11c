"""Parameters real vLLM 0.32.0 honours are honoured by the vLLM mock (never silently ignored).

``n``, ``logprobs``, ``echo``, stop lists, prompt lists and token-id prompts; the context checks
of the deployment (``ctx_size``). Shapes are held against the real engine by the drift fixtures;
here the *values* are checked against the generation plans.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llorch_conformance.mock_engines import MockEngine, make_plan, run_mock_engine

from ._helpers import TIMEOUT


@pytest.fixture(scope="module")
def eng() -> Iterator[MockEngine]:
    with run_mock_engine("vllm", seed=5, model="tiny", ctx_size=128) as e:
        yield e


def post(eng: MockEngine, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(eng.base_url + path, json={"model": "tiny", **body}, timeout=TIMEOUT)


def sse_objects(r: httpx.Response) -> list[dict[str, Any]]:
    import json

    out = []
    for ev in r.text.split("\n\n"):
        if ev.startswith("data: {"):
            out.append(json.loads(ev[6:]))
    return out


def test_n_choices_non_stream_and_stream(eng: MockEngine) -> None:
    body = {"prompt": "Hello", "max_tokens": 5, "n": 3, "temperature": 1.0, "seed": 9}
    r = post(eng, "/v1/completions", body).json()
    assert [c["index"] for c in r["choices"]] == [0, 1, 2]
    texts = [c["text"] for c in r["choices"]]
    assert texts[0] == make_plan("Hello", seed=9, max_tokens=5, temperature=1.0).text
    assert texts[1] == make_plan("Hello", seed=10, max_tokens=5, temperature=1.0).text
    assert r["usage"]["completion_tokens"] == sum(
        make_plan("Hello", seed=9 + j, max_tokens=5, temperature=1.0).completion_tokens
        for j in range(3)
    )
    s = post(eng, "/v1/completions", {**body, "stream": True})
    joined: dict[int, str] = {}
    for obj in sse_objects(s):
        for c in obj["choices"]:
            joined[c["index"]] = joined.get(c["index"], "") + c["text"]
    assert [joined[i] for i in range(3)] == texts
    assert s.text.endswith("data: [DONE]\n\n")


def test_prompt_lists_and_token_id_prompts(eng: MockEngine) -> None:
    r = post(eng, "/v1/completions", {"prompt": ["Hello", "World"], "max_tokens": 3}).json()
    assert [c["text"] for c in r["choices"]] == [
        make_plan(p, seed=5, max_tokens=3).text for p in ("Hello", "World")
    ]
    ids = post(eng, "/v1/completions", {"prompt": [1001, 1002, 1003], "max_tokens": 2}).json()
    assert ids["usage"]["prompt_tokens"] == 3
    lists = post(eng, "/v1/completions", {"prompt": [[1001], [1002, 1003]], "max_tokens": 2})
    assert len(lists.json()["choices"]) == 2
    assert lists.json()["usage"]["prompt_tokens"] == 3


def test_echo_and_logprobs(eng: MockEngine) -> None:
    plan = make_plan("Hello", seed=5, max_tokens=4)
    r = post(eng, "/v1/completions", {"prompt": "Hello", "max_tokens": 4, "echo": True}).json()
    assert r["choices"][0]["text"] == "Hello" + plan.text
    lp = post(eng, "/v1/completions", {"prompt": "Hello", "max_tokens": 4, "logprobs": 2}).json()
    lps = lp["choices"][0]["logprobs"]
    assert lps["tokens"] == list(plan.tokens)
    assert len(lps["token_logprobs"]) == len(plan.tokens) == len(lps["top_logprobs"])
    assert all(len(t) == 2 for t in lps["top_logprobs"])
    chat = post(
        eng,
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "logprobs": True,
         "top_logprobs": 2},
    ).json()  # fmt: skip
    content = chat["choices"][0]["logprobs"]["content"]
    assert "".join(c["token"] for c in content) == chat["choices"][0]["message"]["content"]
    assert all(len(c["top_logprobs"]) == 2 for c in content)


def test_stop_list(eng: MockEngine) -> None:
    full = make_plan("Hello", seed=5, max_tokens=40, ignore_eos=True)
    stop = full.tokens[3]
    r = post(
        eng,
        "/v1/completions",
        {"prompt": "Hello", "max_tokens": 40, "ignore_eos": True, "stop": ["\x00never", stop]},
    ).json()
    c = r["choices"][0]
    assert (c["finish_reason"], c["stop_reason"]) == ("stop", stop)
    assert stop not in c["text"]


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/completions", {"prompt": "a " * 200}, "input_tokens"),
        ("/v1/completions", {"prompt": "hello " * 200}, "input_text"),
        ("/v1/completions", {"prompt": "a", "max_tokens": 129}, "max_tokens"),
        ("/v1/completions", {"prompt": "a", "max_tokens": 0}, "max_tokens"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "x"}], "temperature": -0.5},
            "temperature",
        ),
        ("/v1/chat/completions", {"messages": []}, None),
    ],
)
def test_engine_checks_refuse_before_streaming(
    eng: MockEngine, path: str, body: dict[str, Any], param: str | None
) -> None:
    for stream in (False, True):
        r = post(eng, path, {**body, "stream": stream})
        assert (r.status_code, r.headers["content-type"]) == (400, "application/json")
        err = r.json()["error"]
        assert (err["type"], err["param"], err["code"]) == ("BadRequestError", param, 400)


def test_metrics_exposition_is_valid_and_counts_requests(eng: MockEngine) -> None:
    from llorch_conformance.conformance.real import check_exposition

    post(eng, "/v1/completions", {"prompt": "Hello", "max_tokens": 2}).raise_for_status()
    text = httpx.get(eng.base_url + "/metrics", timeout=TIMEOUT).text
    families, problems = check_exposition(text)
    assert problems == []
    assert families["vllm:time_to_first_token_seconds"] == "histogram"
    assert families["http_requests"] == "counter"
    assert 'http_requests_total{handler="/v1/completions",method="POST",status="2xx"}' in text


def test_chat_echo_and_request_checks(eng: MockEngine) -> None:
    """``echo`` on chat repeats a trailing assistant message (else nothing), as 0.32.0 does."""
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Sure:"}]
    body = {"messages": msgs, "max_tokens": 2, "echo": True}
    r = post(eng, "/v1/chat/completions", body).json()
    assert r["choices"][0]["message"]["content"].startswith("Sure:")
    events = sse_objects(post(eng, "/v1/chat/completions", {**body, "stream": True}))
    assert events[1]["choices"][0] == {
        "index": 0,
        "delta": {"content": "Sure:"},
        "logprobs": None,
        "finish_reason": None,
    }
    plain = post(eng, "/v1/chat/completions", {**body, "messages": msgs[:1]}).json()
    assert not plain["choices"][0]["message"]["content"].startswith("Hi")
    n0 = post(eng, "/v1/completions", {"prompt": "Hi", "n": 0}).json()["error"]
    assert (n0["message"], n0["param"]) == ("n must be at least 1, got 0.", None)
    empty = post(eng, "/v1/completions", {"prompt": []}).json()["error"]
    assert empty["message"] == "You must pass at least one prompt"
