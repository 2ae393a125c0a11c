"""Model discovery: an adapter without a configured model uses the engine's served model.

A real vLLM serves whatever ``--served-model-name`` says; a task's ``model_ref`` names the
model the orchestrator thinks of. Without an explicit ``model`` the OpenAI-style adapters ask
``GET /v1/models`` once and send the engine's only model (issue 15: no more POOL_UNAVAILABLE
"model mock-model does not exist"); the Triton adapter takes the first ready ``text_input``
model of the repository index; the rbee worker bridge reports the served model as its
``model_id``. The mocks here are started with a model name the task does not know.
"""

from __future__ import annotations

import time

import anyio
import httpx
import pytest

from llorch_conformance.adapters.api import TaskRequest, WorkerError
from llorch_conformance.adapters.openai import OpenAIAdapter
from llorch_conformance.adapters.rbee_worker import BridgeConfig, run_worker_bridge
from llorch_conformance.adapters.triton import TritonAdapter
from llorch_conformance.adapters.vllm import VllmAdapter
from llorch_conformance.mock_engines import run_mock_engine

SERVED = "deploy/served-name-7"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _task(i: int, **over: object) -> TaskRequest:
    fields: dict[str, object] = {
        "task_id": f"disc-{i}",
        "session_id": "s-disc",
        "workload": "completion",
        "model_ref": "hf:llorch/mock-model",
        "engine": "vllm",
        "ctx": 2048,
        "priority": "interactive",
        "max_tokens": 5,
        "deadline_ms": 20_000,
        "seed": 7,
        "determinism": "strict",
        "prompt": "Hello",
    }
    fields.update(over)
    return TaskRequest.from_dict(fields)


async def _kinds(adapter: object, task: TaskRequest) -> list[str]:
    return [str(ev.kind) async for ev in adapter.submit(task)]  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_vllm_adapter_sends_the_engines_only_model() -> None:
    with anyio.fail_after(30):
        async with (
            run_mock_engine("vllm", seed=1, model=SERVED) as eng,
            VllmAdapter(eng.base_url) as adapter,
        ):
            kinds = await _kinds(adapter, _task(1))
            kinds2 = await _kinds(adapter, _task(2))
    assert kinds[0] == "started" and kinds[-1] == "end"
    assert kinds2[-1] == "end"
    gens = [e for e in eng.journal.find(path="/v1/completions")]
    assert gens and all(b'"model":"' + SERVED.encode() + b'"' in e.body for e in gens)
    # asked once, then remembered
    assert len(eng.journal.find(path="/v1/models")) == 1


@pytest.mark.anyio
async def test_a_configured_model_is_sent_as_is() -> None:
    with anyio.fail_after(30):
        async with (
            run_mock_engine("vllm", seed=1, model=SERVED) as eng,
            VllmAdapter(eng.base_url, model="some-other") as adapter,
        ):
            kinds = await _kinds(adapter, _task(3))
    assert kinds[-1] == "error"  # the engine's 404, not a silent substitution
    assert not eng.journal.find(path="/v1/models")


@pytest.mark.anyio
async def test_openai_adapter_without_model_uses_a_single_model_servers_model() -> None:
    """An OpenAI-compatible server with one model (here vLLM's) needs no model name."""
    with anyio.fail_after(30):
        async with (
            run_mock_engine("vllm", seed=1, model=SERVED) as eng,
            OpenAIAdapter(eng.base_url, api_key="sk-test-0123456789") as adapter,
        ):
            kinds = await _kinds(adapter, _task(4, engine="openai"))
    assert kinds[0] == "started" and kinds[-1] == "end"
    gens = eng.journal.find(path="/v1/chat/completions")
    assert gens and SERVED.encode() in gens[-1].body


@pytest.mark.anyio
async def test_openai_adapter_never_guesses_among_several_models() -> None:
    with anyio.fail_after(30):
        async with (
            run_mock_engine("openai", seed=1, model=SERVED, api_key="sk-test-0123456789") as eng,
            OpenAIAdapter(eng.base_url, api_key="sk-test-0123456789") as adapter,
        ):
            kinds = await _kinds(adapter, _task(5, engine="openai"))
            with pytest.raises(WorkerError, match="configure model="):
                await adapter.engine_version()
    assert kinds[-1] == "error"  # the server's own 404 for the task's model_ref
    gens = eng.journal.find(path="/v1/chat/completions")
    assert gens and b"hf:llorch/mock-model" in gens[-1].body


@pytest.mark.anyio
async def test_triton_adapter_without_model_finds_the_llm_model() -> None:
    with anyio.fail_after(30):
        async with (
            run_mock_engine("triton", seed=1, model="llm_7") as eng,
            TritonAdapter(eng.base_url) as adapter,
        ):
            caps = await adapter.capabilities()
            kinds = await _kinds(adapter, _task(5, engine="triton"))
    assert adapter.model == "llm_7"
    assert caps.engine == "triton"
    assert kinds[0] == "started" and kinds[-1] == "end"
    assert eng.journal.find(path="/v2/models/llm_7/generate_stream")


def test_worker_bridge_reports_the_engines_served_model() -> None:
    with run_mock_engine("vllm", seed=1, model=SERVED) as eng:
        adapter = VllmAdapter(eng.base_url)
        cfg = BridgeConfig(dialect="vllm", readiness_poll_s=0.01, health_poll_s=0.05)
        with run_worker_bridge(adapter, cfg, own_adapter=True) as srv:
            deadline = time.monotonic() + 15
            info: dict[str, object] = {}
            while time.monotonic() < deadline:
                info = httpx.get(srv.base_url + "/info", timeout=5).json()
                if info.get("status") == "ready":
                    break
                time.sleep(0.02)  # polling a server in another thread
            assert info.get("status") == "ready", info
            assert info["model_id"] == SERVED
            r = httpx.post(
                srv.base_url + "/v1/infer",
                json={"prompt": "Hi", "max_tokens": 4, "stream": False},
                timeout=15,
            )
    assert r.status_code == 200, r.text
    gens = eng.journal.find(path="/v1/completions")
    assert gens and SERVED.encode() in gens[-1].body


def test_worker_bridge_keeps_a_configured_model_id() -> None:
    with run_mock_engine("vllm", seed=1, model=SERVED) as eng:
        cfg = BridgeConfig(dialect="vllm", model_id="pinned/name", readiness_poll_s=0.01)
        with run_worker_bridge(VllmAdapter(eng.base_url), cfg, own_adapter=True) as srv:
            info = httpx.get(srv.base_url + "/info", timeout=5).json()
    assert info["model_id"] == "pinned/name"
