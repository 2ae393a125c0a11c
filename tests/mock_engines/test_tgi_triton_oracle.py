"""Cross-dialect oracle: TGI and Triton render the same plan as llama.cpp for the same request.

One greedy request per stop reason goes to the llama.cpp, TGI and Triton mocks, each in its own
native shape; the token texts must be identical and the stop reasons must map onto each
dialect's words (llama.cpp ``limit|eos|word``, TGI ``length|eos_token|stop_sequence``, Triton's
vLLM backend ``length|stop``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llorch_conformance.mock_engines import MockEngine, make_plan, run_mock_engine

STOP = " the"


@pytest.fixture(scope="module")
def engines() -> Iterator[dict[str, MockEngine]]:
    with (
        run_mock_engine("llamacpp", seed=1) as lc,
        run_mock_engine("tgi", seed=2) as tgi,
        run_mock_engine("triton", seed=3) as tr,
    ):
        yield {"llamacpp": lc, "tgi": tgi, "triton": tr}


def _data(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(b[6:]) for b in body.split(b"\n\n") if b.startswith(b"data: ")]


def _llamacpp(url: str, prompt: str, n: int, stop: list[str]) -> tuple[list[str], str]:
    body = {"prompt": prompt, "n_predict": n, "temperature": 0, "stream": True, "stop": stop}
    objs = _data(httpx.post(f"{url}/completion", json=body, timeout=10).content)
    return [o["content"] for o in objs if not o["stop"]], objs[-1]["stop_type"]


def _tgi(url: str, prompt: str, n: int, stop: list[str]) -> tuple[list[str], str]:
    params = {"max_new_tokens": n, "details": True, "stop": stop}
    r = httpx.post(
        f"{url}/generate_stream", json={"inputs": prompt, "parameters": params}, timeout=10
    )
    objs = _data(r.content)
    texts = [o["token"]["text"] for o in objs if not o["token"]["special"]]
    return texts, objs[-1]["details"]["finish_reason"]


def _triton(url: str, prompt: str, n: int, stop: list[str]) -> tuple[list[str], str]:
    params: dict[str, Any] = {"max_tokens": n, "temperature": 0}
    if stop:
        params["stop"] = stop[0]
    body = {
        "text_input": prompt,
        "stream": True,
        "exclude_input_in_output": True,
        "return_finish_reason": True,
        "parameters": params,
    }
    objs = _data(httpx.post(f"{url}/v2/models/llm/generate_stream", json=body, timeout=10).content)
    return [o["text_output"] for o in objs if o["text_output"]], objs[-1]["finish_reason"]


def _prompt(reason: str, stop: tuple[str, ...]) -> str:
    for i in range(500):
        p = f"oracle {i}"
        if make_plan(p, seed=0, max_tokens=100, stop=stop, temperature=0.0).stop_reason == reason:
            return p
    raise AssertionError(reason)


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        pytest.param("length", ("limit", "length", "length"), id="length"),
        pytest.param("eos", ("eos", "eos_token", "stop"), id="eos"),
        pytest.param("stop", ("word", "stop_sequence", "stop"), id="stop-string"),
    ],
)
def test_same_plan_in_every_dialect(
    engines: dict[str, MockEngine], reason: str, words: tuple[str, str, str]
) -> None:
    stop = (STOP,) if reason == "stop" else ()
    prompt = "oracle" if reason == "length" else _prompt(reason, stop)
    n = 7 if reason == "length" else 100
    plan = make_plan(prompt, seed=0, max_tokens=n, stop=stop, temperature=0.0)
    got = {
        "llamacpp": _llamacpp(engines["llamacpp"].base_url, prompt, n, list(stop)),
        "tgi": _tgi(engines["tgi"].base_url, prompt, n, list(stop)),
        "triton": _triton(engines["triton"].base_url, prompt, n, list(stop)),
    }
    assert plan.stop_reason == reason
    for (name, (texts, word)), want in zip(got.items(), words, strict=True):
        assert "".join(texts) == plan.text, name
        assert word == want, name
    assert got["llamacpp"][0] == got["tgi"][0] == list(plan.tokens)


@pytest.mark.parametrize(
    ("dialect", "path", "body"),
    [
        pytest.param(
            "tgi",
            "/generate_stream",
            {"inputs": "Hi", "parameters": {"max_new_tokens": 50, "do_sample": True}},
            id="tgi",
        ),
        pytest.param(
            "triton",
            "/v2/models/llm/generate_stream",
            {"text_input": "Hi", "stream": True, "exclude_input_in_output": True,
             "parameters": {"max_tokens": 50, "ignore_eos": True}},
            id="triton",
        ),
    ],
)  # fmt: skip
def test_client_disconnect_is_journaled_and_stops_generation(
    dialect: str, path: str, body: dict[str, Any]
) -> None:
    with (
        run_mock_engine(dialect, profile="fast") as eng,
        httpx.Client(base_url=eng.base_url, timeout=10) as c,
    ):
        c.post(
            "/__mock__/config", json={"profile": {"base": "fast", "itl_ms": 20.0}}
        ).raise_for_status()
        with c.stream("POST", path, json=body) as r:
            first = next(r.iter_raw())
            assert first.startswith(b"data: ")
        entry = eng.journal.wait_for_sync(
            lambda j: next((e for e in j.entries if e.path == path and e.disconnected), None), 5
        )
        assert entry.t_disconnected is not None
        assert not entry.completed
        assert eng.journal.counters()["cancels"] >= 1
