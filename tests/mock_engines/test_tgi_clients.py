"""The official ``huggingface_hub.InferenceClient`` against the TGI mock, unchanged.

``InferenceClient(base_url=...)`` posts ``text_generation`` to the base URL itself (TGI's compat
``POST /``) and ``chat_completion`` to ``/v1/chat/completions``; it parses the SSE lines itself and
maps ``{"error","error_type"}`` to its own exception classes. The client is sync (``httpx2``) and
carries a timeout, so a broken mock fails the test instead of hanging it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from huggingface_hub import InferenceClient
from huggingface_hub.errors import OverloadedError, ValidationError

from llorch_conformance.mock_engines import MockEngine, make_plan, run_mock_engine


@pytest.fixture
def engine() -> Iterator[MockEngine]:
    with run_mock_engine("tgi", seed=3) as eng:
        yield eng


@pytest.fixture
def client(engine: MockEngine) -> InferenceClient:
    return InferenceClient(base_url=engine.base_url, timeout=10)


def greedy(prompt: str, n: int) -> str:
    return make_plan(prompt, seed=0, max_tokens=n, temperature=0.0).text


def test_text_generation_returns_full_text_on_the_compat_route(
    client: InferenceClient, engine: MockEngine
) -> None:
    out = client.text_generation("Hello", max_new_tokens=4)
    # A text-generation model answers POST / with the prompt prepended (return_full_text).
    assert out == "Hello" + greedy("Hello", 4)
    assert engine.journal.last() is not None
    assert engine.journal.entries[-1].path == "/"


def test_text_generation_details(client: InferenceClient) -> None:
    out = client.text_generation("Hello", max_new_tokens=4, details=True, return_full_text=False)
    assert out.generated_text == greedy("Hello", 4)
    assert out.details is not None
    assert out.details.finish_reason == "length"
    assert out.details.generated_tokens == 4
    assert [t.text for t in out.details.tokens] == list(
        make_plan("Hello", seed=0, max_tokens=4, temperature=0.0).tokens
    )


def test_text_generation_stream(client: InferenceClient) -> None:
    pieces = list(client.text_generation("Hello", max_new_tokens=5, stream=True))
    assert "".join(pieces) == greedy("Hello", 5)


def test_text_generation_stream_details_and_legacy_framing(engine: MockEngine) -> None:
    client = InferenceClient(
        base_url=engine.base_url, timeout=10, headers={"X-Mock-Tgi-Framing": "axum06"}
    )
    outs = list(
        client.text_generation(
            "Hello", max_new_tokens=3, stream=True, details=True, seed=9, do_sample=True
        )
    )
    assert [o.token.text for o in outs] == list(make_plan("Hello", seed=9, max_tokens=3).tokens)
    assert outs[-1].details is not None
    assert outs[-1].details.finish_reason == "length"
    assert outs[-1].details.seed == 9


def test_chat_completion(client: InferenceClient) -> None:
    out = client.chat_completion([{"role": "user", "content": "Hi"}], max_tokens=3, temperature=0)
    assert out.choices[0].message.content is not None
    assert out.choices[0].finish_reason == "length"
    assert out.usage.completion_tokens == 3


def test_chat_completion_stream(client: InferenceClient) -> None:
    chunks = list(
        client.chat_completion(
            [{"role": "user", "content": "Hi"}], max_tokens=3, temperature=0, stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    non_stream = client.chat_completion(
        [{"role": "user", "content": "Hi"}], max_tokens=3, temperature=0
    )
    assert text == non_stream.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "length"


def test_validation_error_raises_the_clients_exception(client: InferenceClient) -> None:
    with pytest.raises(ValidationError, match="temperature"):
        client.text_generation("Hello", max_new_tokens=3, temperature=0.0)
    with pytest.raises(ValidationError, match="temperature"):
        list(client.text_generation("Hello", max_new_tokens=3, temperature=0.0, stream=True))


def test_overload_in_stream_raises_overloaded(engine: MockEngine, client: InferenceClient) -> None:
    engine.set_faults(["engine.overload"])
    with pytest.raises(OverloadedError):
        list(client.text_generation("Hello", max_new_tokens=3, stream=True))
    with pytest.raises(OverloadedError):
        client.text_generation("Hello", max_new_tokens=3)
