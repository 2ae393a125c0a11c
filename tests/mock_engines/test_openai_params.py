"""The OpenAI mock against the OpenAI API's own rules (specs: openai-openapi 2.3.0).

Over-long prompts and a completion that does not fit the context are 400
``context_length_exceeded``; ``n``, ``logprobs``/``top_logprobs``, ``echo`` and a named
``tool_choice`` are honoured (never a 200 that silently ignored them). The TGI mock holds the
deployment's ``--max-total-tokens`` (``ctx_size``) the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llorch_conformance.mock_engines import run_mock_engine

from ._helpers import TIMEOUT

MSGS = [{"role": "user", "content": "Hi"}]
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with (
        run_mock_engine("openai", seed=2, ctx_size=64) as eng,
        httpx.Client(
            base_url=eng.base_url, timeout=TIMEOUT, headers={"authorization": "Bearer k"}
        ) as c,
    ):
        yield c


def chat(c: httpx.Client, **body: Any) -> httpx.Response:
    return c.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MSGS, **body})


def events(r: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(e[6:]) for e in r.text.split("\n\n") if e.startswith("data: {")]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"max_tokens": 100}, "you requested"),
        ({"messages": [{"role": "user", "content": "a " * 80}]}, "your messages resulted in"),
    ],
)
def test_context_length_exceeded(client: httpx.Client, body: dict[str, Any], fragment: str) -> None:
    for stream in (False, True):
        r = chat(client, stream=stream, **body)
        assert r.status_code == 400
        err = r.json()["error"]
        assert (err["type"], err["param"], err["code"]) == (
            "invalid_request_error",
            "messages",
            "context_length_exceeded",
        )
        assert fragment in err["message"]


def test_n_choices(client: httpx.Client) -> None:
    r = chat(client, max_tokens=3, n=3, temperature=1.0).json()
    assert [c["index"] for c in r["choices"]] == [0, 1, 2]
    s = chat(client, max_tokens=3, n=3, temperature=1.0, stream=True)
    texts: dict[int, str] = {}
    for e in events(s):
        for c in e["choices"]:
            texts[c["index"]] = texts.get(c["index"], "") + (c["delta"].get("content") or "")
    assert [texts[i] for i in range(3)] == [c["message"]["content"] for c in r["choices"]]
    assert chat(client, n=0).json()["error"]["code"] == "integer_below_min_value"


def test_logprobs(client: httpx.Client) -> None:
    r = chat(client, max_tokens=3, logprobs=True, top_logprobs=2).json()
    content = r["choices"][0]["logprobs"]["content"]
    assert "".join(t["token"] for t in content) == r["choices"][0]["message"]["content"]
    assert all(len(t["top_logprobs"]) == 2 for t in content)
    assert chat(client, top_logprobs=2).status_code == 400  # needs logprobs: true


def test_legacy_completions_echo_and_logprobs(client: httpx.Client) -> None:
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": "Hi", "max_tokens": 3}
    plain = client.post("/v1/completions", json=body).json()["choices"][0]["text"]
    r = client.post("/v1/completions", json={**body, "echo": True, "logprobs": 2}).json()
    c = r["choices"][0]
    assert c["text"] == "Hi" + plain
    assert "".join(c["logprobs"]["tokens"]) == plain
    assert c["logprobs"]["text_offset"][0] == 2


def test_named_tool_choice_calls_the_tool(client: httpx.Client) -> None:
    tc = {"type": "function", "function": {"name": "lookup"}}
    r = chat(client, tools=TOOLS, tool_choice=tc).json()
    choice = r["choices"][0]
    assert choice["finish_reason"] == "stop"
    call = choice["message"]["tool_calls"][0]
    assert call["function"] == {"name": "lookup", "arguments": "{}"}
    s = events(chat(client, tools=TOOLS, tool_choice=tc, stream=True))
    deltas = [e["choices"][0]["delta"] for e in s if e["choices"]]
    assert deltas[0]["tool_calls"][0]["function"]["name"] == "lookup"
    args = "".join(
        d["tool_calls"][0]["function"].get("arguments", "") for d in deltas if "tool_calls" in d
    )
    assert args == "{}"
    assert chat(client, tool_choice=tc).status_code == 400  # tool_choice without tools
    other = {"type": "function", "function": {"name": "other"}}
    assert chat(client, tools=TOOLS, tool_choice=other).status_code == 400


def test_tgi_holds_the_deployment_context() -> None:
    with (
        run_mock_engine("tgi", ctx_size=64) as eng,
        httpx.Client(base_url=eng.base_url, timeout=TIMEOUT) as c,
    ):
        info = c.get("/info").json()
        assert (info["max_input_tokens"], info["max_total_tokens"]) == (63, 64)
        r = c.post("/generate", json={"inputs": "Hi", "parameters": {"max_new_tokens": 100}})
        assert r.status_code == 422
        assert "must be <= 64" in r.json()["error"]
