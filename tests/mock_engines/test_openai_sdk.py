"""The official ``openai`` SDK (3.x, on httpx2) works unchanged against the mocks' /v1 routes."""

from __future__ import annotations

import anyio
import openai
import pytest

from llorch_conformance.mock_engines import MockEngine, chat_prompt, make_plan, run_mock_engine

MSGS = [{"role": "user", "content": "Say hi"}]


def _client(engine: MockEngine) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=engine.base_url + "/v1", api_key="sk-test", max_retries=0, timeout=10
    )


def _model(engine: MockEngine) -> str:
    return "gpt-4o-mini" if engine.dialect == "openai" else engine.model


def test_sdk_chat_and_completions_sync(engine: MockEngine) -> None:
    c = _client(engine)
    plan = make_plan(chat_prompt(MSGS), seed=4, max_tokens=6)
    r = c.chat.completions.create(model=_model(engine), messages=MSGS, max_tokens=6, seed=4)  # type: ignore[arg-type]
    assert r.choices[0].message.content == plan.text
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 6
    rc = c.completions.create(model=_model(engine), prompt="Hello", max_tokens=3, seed=4)
    assert rc.choices[0].text == make_plan("Hello", seed=4, max_tokens=3).text
    ids = [m.id for m in c.models.list()]
    assert _model(engine) in ids


def test_sdk_streaming_sync(engine: MockEngine) -> None:
    c = _client(engine)
    plan = make_plan(chat_prompt(MSGS), seed=4, max_tokens=6)
    stream = c.chat.completions.create(
        model=_model(engine),
        messages=MSGS,  # type: ignore[arg-type]
        max_tokens=6,
        seed=4,
        stream=True,
        stream_options={"include_usage": True},
    )
    texts: list[str] = []
    usage = None
    finish = []
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for ch in chunk.choices:
            if ch.delta.content:
                texts.append(ch.delta.content)
            if ch.finish_reason:
                finish.append(ch.finish_reason)
    assert texts == list(plan.tokens)
    assert finish == ["length"]
    assert (
        usage is not None
        and usage.completion_tokens == 6
        and usage.prompt_tokens == plan.prompt_tokens
    )
    cs = c.completions.create(
        model=_model(engine), prompt="Hello", max_tokens=3, seed=4, stream=True
    )
    assert [x.choices[0].text for x in cs if x.choices and x.choices[0].text] == list(
        make_plan("Hello", seed=4, max_tokens=3).tokens
    )


@pytest.mark.anyio
async def test_sdk_streaming_async(dialect: str) -> None:
    async with run_mock_engine(dialect) as eng:
        c = openai.AsyncOpenAI(
            base_url=eng.base_url + "/v1", api_key="sk-test", max_retries=0, timeout=10
        )
        plan = make_plan(chat_prompt(MSGS), seed=8, max_tokens=5)
        with anyio.fail_after(15):
            stream = await c.chat.completions.create(
                model=_model(eng),
                messages=MSGS,  # type: ignore[arg-type]
                max_tokens=5,
                seed=8,
                stream=True,
            )
            texts = [
                ch.choices[0].delta.content
                async for ch in stream
                if ch.choices and ch.choices[0].delta.content
            ]
        assert texts == list(plan.tokens)
        await c.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_sdk_maps_mock_errors(engine: MockEngine) -> None:
    c = _client(engine)
    h = {"X-Mock-Fault": "http.429_retry_after;seconds=1"}
    with pytest.raises(openai.RateLimitError):
        c.chat.completions.create(model=_model(engine), messages=MSGS, extra_headers=h)  # type: ignore[arg-type]
    with pytest.raises(openai.InternalServerError):
        c.chat.completions.create(
            model=_model(engine),
            messages=MSGS,  # type: ignore[arg-type]
            extra_headers={"X-Mock-Fault": "http.500"},
        )
    with pytest.raises(openai.APIError):
        s = c.chat.completions.create(
            model=_model(engine),
            messages=MSGS,  # type: ignore[arg-type]
            stream=True,
            extra_headers={"X-Mock-Fault": "stream.error_event;after_events=2"},
        )
        list(s)
    with pytest.raises(openai.APIConnectionError):
        c.chat.completions.create(
            model=_model(engine),
            messages=MSGS,  # type: ignore[arg-type]
            extra_headers={"X-Mock-Fault": "conn.accept_then_close"},
        )
