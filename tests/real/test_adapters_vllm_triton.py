"""The vLLM and Triton adapters driven directly against the real engines (wire facts the mocks
only imitate): coalesced tokens, U+FFFD, usage chunk with ``choices: []``, ``stop_reason``,
stop lists, errors inside a 200 stream, model discovery."""

from __future__ import annotations

import time
from typing import Any

import anyio
import httpx
import pytest

from llorch_conformance.adapters.api import TaskRequest, TokenEvent
from llorch_conformance.adapters.rbee_worker import BridgeConfig, run_worker_bridge
from llorch_conformance.adapters.triton import TritonAdapter
from llorch_conformance.adapters.vllm import VllmAdapter

from .conftest import LiveEngine


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _task(i: int, engine: str, **over: object) -> TaskRequest:
    fields: dict[str, object] = {
        "task_id": f"real-{engine}-{i}-{time.monotonic_ns()}",
        "session_id": "s-real",
        "workload": "completion",
        "model_ref": "hf:llorch/mock-model",  # not what the engine serves: discovery finds it
        "engine": engine,
        "ctx": 4096,
        "priority": "interactive",
        "max_tokens": 24,
        "deadline_ms": 60_000,
        "seed": i,
        "determinism": "strict",
        "prompt": "café 日本 Hello",
    }
    extra = over.pop("extra", None)
    fields.update(over)
    task = TaskRequest.from_dict(fields)
    if extra is not None:
        object.__setattr__(task, "extra", extra)
    return task


async def _collect(adapter: Any, task: TaskRequest) -> list[TokenEvent]:
    return [ev async for ev in adapter.submit(task)]


def _text(events: list[TokenEvent]) -> str:
    return "".join(str(e.data["t"]) for e in events if str(e.kind) == "token")


def _shape(events: list[TokenEvent]) -> list[str]:
    kinds = [str(e.kind) for e in events]
    return [kinds[0], kinds[-1]]


@pytest.mark.xdist_group("vllm")
@pytest.mark.anyio
async def test_vllm_adapter_streams_real_vllm(vllm_engine: LiveEngine) -> None:
    """Greedy twice → the same joined text (chunking may differ: vLLM coalesces tokens when
    its API process falls behind); usage from the ``choices: []`` chunk; chat and completions;
    a stop list; no model configured (the served ``tiny`` is found)."""
    with anyio.fail_after(180):
        async with VllmAdapter(vllm_engine.base_url) as adapter:
            caps = await adapter.capabilities()
            a = await _collect(adapter, _task(1, "vllm"))
            b = await _collect(adapter, _task(1, "vllm"))
            chat = await _collect(adapter, _task(2, "vllm", extra={"endpoint": "chat"}))
            stop = await _collect(adapter, _task(3, "vllm", extra={"stop": ["e", "a"]}))
    assert caps.engine_version == "0.32.0" and caps.ctx_max == 4096
    for events in (a, b, chat, stop):
        assert _shape(events) == ["started", "end"], events[-1].data
    assert _text(a) == _text(b) and _text(a)
    end = a[-1].data
    assert end["usage"]["completion_tokens"] == 24 and end["stop_reason"] == "length"
    assert end["usage"]["prompt_tokens"] > 0
    assert _text(chat)
    stop_end = stop[-1].data
    assert stop_end["stop_reason"] in ("stop", "length", "eos")
    if stop_end["stop_reason"] == "stop":
        assert "e" not in _text(stop) and "a" not in _text(stop)
    # indices rise by one whatever the chunking
    idx = [e.data["i"] for e in a if str(e.kind) == "token"]
    assert idx == list(range(len(idx)))


@pytest.mark.xdist_group("vllm")
@pytest.mark.anyio
async def test_vllm_adapter_cancel_and_refusal(vllm_engine: LiveEngine) -> None:
    with anyio.fail_after(120):
        async with VllmAdapter(vllm_engine.base_url) as adapter:
            task = _task(4, "vllm", max_tokens=3000, determinism="best_effort")
            events: list[TokenEvent] = []
            async for ev in adapter.submit(task):
                events.append(ev)
                if str(ev.kind) == "token" and len(events) >= 3:
                    await adapter.cancel(task.task_id)
            # a prompt over the context window: the engine's 400 becomes one terminal error
            long = await _collect(adapter, _task(5, "vllm", prompt="token " * 5000))
    assert str(events[-1].kind) == "end" and events[-1].data["stop_reason"] == "cancelled"
    assert [str(e.kind) for e in long] == ["error"]
    assert long[0].data["code"] == "INVALID_PARAMS"


@pytest.mark.xdist_group("vllm")
def test_worker_bridge_serves_real_vllm_without_a_model_id(vllm_engine: LiveEngine) -> None:
    cfg = BridgeConfig(dialect="vllm", readiness_poll_s=0.05, health_poll_s=0.5)
    with run_worker_bridge(VllmAdapter(vllm_engine.base_url), cfg, own_adapter=True) as srv:
        deadline = time.monotonic() + 30
        info: dict[str, Any] = {}
        while time.monotonic() < deadline:
            info = httpx.get(srv.base_url + "/info", timeout=10).json()
            if info.get("status") == "ready":
                break
            time.sleep(0.05)  # polling a server in another thread
        r = httpx.post(
            srv.base_url + "/v1/infer",
            json={"prompt": "Hi", "max_tokens": 6, "stream": False, "temperature": 0.0},
            timeout=60,
        )
    assert info.get("status") == "ready" and info["model_id"] == vllm_engine.model
    assert r.status_code == 200, r.text
    assert r.json()["tokens_generated"] <= 6


@pytest.mark.xdist_group("triton")
@pytest.mark.anyio
async def test_triton_adapter_streams_real_triton(triton_engine: LiveEngine) -> None:
    """No model configured (the repository's first LLM-shaped model is found); a stop list
    (real Triton refuses lists among request parameters: the adapter sends
    ``sampling_parameters``); greedy twice gives the same text; an error after three tokens is
    one terminal error event after those tokens."""
    with anyio.fail_after(120):
        async with TritonAdapter(triton_engine.base_url) as adapter:
            caps = await adapter.capabilities()
            a = await _collect(adapter, _task(1, "triton"))
            b = await _collect(adapter, _task(1, "triton"))
            stop = await _collect(adapter, _task(2, "triton", extra={"stop": ["é", " a"]}))
            # refused by the model before its first response: Triton answers 400 with the SSE
            # content type and a data: frame; the adapter unwraps it into one terminal error
            refused = await _collect(
                adapter,
                _task(6, "triton", extra={"engine_params": {"parameters": {"temperature": -1}}}),
            )
        async with TritonAdapter(triton_engine.base_url, model="tiny_fails") as failing:
            broken = await _collect(failing, _task(3, "triton"))
    assert [str(e.kind) for e in refused] == ["error"], refused
    assert refused[0].data["code"] == "INVALID_PARAMS"
    assert "temperature must be non-negative" in str(refused[0].data["message"])
    assert adapter.model == "tiny" and caps.engine_version == "2.51.0" and caps.ctx_max == 4096
    for events in (a, b, stop):
        assert _shape(events) == ["started", "end"], events[-1].data
    assert _text(a) == _text(b) and _text(a)
    assert (
        a[-1].data["usage"]["completion_tokens"] == len([e for e in a if str(e.kind) == "token"])
        or a[-1].data["stop_reason"] == "eos"
    )
    if stop[-1].data["stop_reason"] == "stop":
        assert "é" not in _text(stop) and " a" not in _text(stop)
    kinds = [str(e.kind) for e in broken]
    assert kinds == ["started", "token", "token", "token", "error"], kinds
    assert "fail" in str(broken[-1].data["message"])
