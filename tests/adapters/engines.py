"""Helpers that pair each HTTP adapter with its mock engine for the adapter tests."""

from __future__ import annotations

from typing import Any

from llorch_conformance.adapters.api import TaskRequest
from llorch_conformance.adapters.http_util import HttpClientConfig, RetryPolicy
from llorch_conformance.adapters.llamacpp import LlamaCppAdapter
from llorch_conformance.adapters.openai import OpenAIAdapter
from llorch_conformance.adapters.tgi import TgiAdapter
from llorch_conformance.adapters.triton import TritonAdapter
from llorch_conformance.adapters.vllm import VllmAdapter
from llorch_conformance.mock_engines import chat_prompt, make_plan

HTTP_DIALECTS = ("llamacpp", "vllm", "tgi", "openai", "triton")

#: The OpenAI mock requires this key; it must never show up in logs.
API_KEY = "sk-test-0123456789abcdefSECRET"

#: Short timeouts so that stall tests finish fast; still far above a healthy local stream.
FAST_HTTP = HttpClientConfig(
    connect_timeout_s=2.0, first_byte_timeout_s=2.0, inter_chunk_timeout_s=2.0, total_timeout_s=5.0
)
FAST_RETRY = RetryPolicy(base_ms=1, cap_ms=5, seed=11)

_CLASSES: dict[str, type[Any]] = {
    "llamacpp": LlamaCppAdapter,
    "vllm": VllmAdapter,
    "tgi": TgiAdapter,
    "openai": OpenAIAdapter,
    "triton": TritonAdapter,
}


def engine_kwargs(dialect: str) -> dict[str, Any]:
    """Extra ``run_mock_engine`` arguments a dialect needs."""
    return {"api_key": API_KEY} if dialect == "openai" else {}


def build_adapter(dialect: str, base_url: str, model: str, **config: Any) -> Any:
    config.setdefault("http", FAST_HTTP)
    config.setdefault("retry", FAST_RETRY)
    if dialect == "openai":
        config.setdefault("api_key", API_KEY)
        config.setdefault("model", model)
    elif dialect in ("triton", "vllm"):
        config.setdefault("model", model)
    return _CLASSES[dialect](base_url, **config)


def expected_plan(dialect: str, request: TaskRequest) -> Any:
    """The plan the mock engine renders for what this dialect's adapter sends."""
    prompt = request.prompt or ""
    if dialect == "openai":
        prompt = chat_prompt([{"role": "user", "content": prompt}])
    strict = str(request.determinism) == "strict"
    return make_plan(
        prompt,
        seed=request.seed if request.seed is not None else 0,
        max_tokens=request.max_tokens,
        temperature=0.0 if strict else None,
        top_p=1.0 if strict else None,
    )
