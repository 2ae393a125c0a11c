"""Parameters llama-server b11434 honours are honoured by the llama.cpp mock (never ignored).

Prompt lists (one result per prompt), token-id prompts, ``n_probs``, OAI ``n`` and ``logprobs``,
``/tokenize`` and ``/detokenize``. Shapes are held against the real server by the drift fixture;
values here against the generation plans.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llorch_conformance.mock_engines import make_plan, run_mock_engine

from ._helpers import TIMEOUT


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with (
        run_mock_engine("llamacpp", seed=3) as eng,
        httpx.Client(base_url=eng.base_url, timeout=TIMEOUT) as c,
    ):
        yield c


def _events(r: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(e[6:]) for e in r.text.split("\n\n") if e.startswith("data: {")]


def test_prompt_list_gives_one_result_per_prompt(client: httpx.Client) -> None:
    body = {"prompt": ["Hello", "World"], "n_predict": 4, "seed": 1}
    out = client.post("/completion", json=body).json()
    assert [o["index"] for o in out] == [0, 1]
    assert [o["content"] for o in out] == [
        make_plan(p, seed=1, max_tokens=4).text for p in ("Hello", "World")
    ]
    events = _events(client.post("/completion", json={**body, "stream": True}))
    finals = [e for e in events if e["stop"]]
    assert sorted(f["index"] for f in finals) == [0, 1]
    joined = {i: "".join(e["content"] for e in events if e["index"] == i) for i in (0, 1)}
    assert joined == {0: out[0]["content"], 1: out[1]["content"]}


def test_token_id_prompts(client: httpx.Client) -> None:
    ids = client.post("/tokenize", json={"content": "Hello world"}).json()["tokens"]
    assert client.post("/detokenize", json={"tokens": ids}).json() == {"content": "Hello world"}
    out = client.post("/completion", json={"prompt": ids, "n_predict": 3, "seed": 1}).json()
    assert out["tokens_evaluated"] == len(ids)
    assert out["content"] == make_plan("Hello world", seed=1, max_tokens=3).text
    nested = client.post("/completion", json={"prompt": [ids, ids], "n_predict": 2}).json()
    assert len(nested) == 2


def test_n_probs_and_oai_logprobs(client: httpx.Client) -> None:
    out = client.post("/completion", json={"prompt": "Hi", "n_predict": 3, "n_probs": 2}).json()
    probs = out["completion_probabilities"]
    assert [p["token"] for p in probs] == [p for p in make_plan("Hi", seed=3, max_tokens=3).tokens]
    assert all(len(p["top_logprobs"]) == 2 and p["top_logprobs"][0]["id"] == p["id"] for p in probs)
    msgs = [{"role": "user", "content": "Hi"}]
    chat = client.post(
        "/v1/chat/completions",
        json={"messages": msgs, "max_tokens": 3, "logprobs": True, "top_logprobs": 2},
    ).json()
    content = chat["choices"][0]["logprobs"]["content"]
    assert "".join(c["token"] for c in content) == chat["choices"][0]["message"]["content"]


def test_oai_n_choices(client: httpx.Client) -> None:
    msgs = [{"role": "user", "content": "Hi"}]
    body = {"messages": msgs, "max_tokens": 3, "n": 2, "seed": 4}
    out = client.post("/v1/chat/completions", json=body).json()
    assert [c["index"] for c in out["choices"]] == [0, 1]
    events = _events(client.post("/v1/chat/completions", json={**body, "stream": True}))
    assert {c["index"] for e in events for c in e["choices"]} == {0, 1}
    too_many = client.post("/v1/chat/completions", json={**body, "n": 1000})
    assert too_many.status_code == 400
