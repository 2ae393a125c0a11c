"""The llama.cpp adapter driven directly against the real server (wire facts the mock lacks)."""

from __future__ import annotations

import anyio
import pytest

from llorch_conformance.adapters.api import TaskRequest
from llorch_conformance.adapters.llamacpp import LlamaCppAdapter
from llorch_conformance.conformance.real import LlamaServer


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _task(i: int, **over: object) -> TaskRequest:
    fields: dict[str, object] = {
        "task_id": f"real-{i}",
        "session_id": "s-real",
        "workload": "completion",
        "model_ref": "file:tiny.gguf",
        "engine": "llamacpp",
        "ctx": 256,
        "priority": "interactive",
        "max_tokens": 24,
        "deadline_ms": 20_000,
        "seed": i,
        "determinism": "strict",
        "prompt": "café 日本 Hello",
    }
    fields.update(over)
    return TaskRequest(**fields)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_sequential_tasks_survive_the_servers_close_after_stream(
    real_server: LlamaServer,
) -> None:
    """llama-server closes the connection after each stream; reusing it raced that close (about
    1 task in 40 failed with WORKER_RESET before the adapter sent ``Connection: close``).

    The prompts also make the model emit byte tokens, so ``tokens_predicted`` skips (held-back
    partial UTF-8) — every task must still end with ``end``, text intact.
    """
    failures: list[object] = []
    with anyio.fail_after(90):
        async with LlamaCppAdapter(real_server.base_url) as adapter:
            for i in range(60):
                kinds: list[str] = []
                last = None
                async for ev in adapter.submit(_task(i)):
                    kinds.append(str(ev.kind))
                    last = ev
                assert last is not None
                if kinds[0] != "started" or kinds[-1] != "end":
                    failures.append((i, kinds[-1], last.data))
    assert not failures, failures


@pytest.mark.anyio
async def test_stream_request_asks_for_connection_close() -> None:
    """Deterministic half of the above: the stream POST carries ``Connection: close`` (seen in
    the mock's journal), other requests keep the connection."""
    from llorch_conformance.mock_engines import run_mock_engine

    with anyio.fail_after(30):
        async with (
            run_mock_engine("llamacpp", seed=1) as eng,
            LlamaCppAdapter(eng.base_url) as adapter,
        ):
            async for _ev in adapter.submit(_task(1, max_tokens=3)):
                pass
            await adapter.health()
    posts = eng.journal.find(path="/completion")
    assert posts and all(e.header("connection") == "close" for e in posts)
    gets = eng.journal.find(path="/health")
    assert gets and all(e.header("connection") != "close" for e in gets)
