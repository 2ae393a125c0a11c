"""vLLM OpenAI-compatible server adapter (OC-ADAPT-5020/5021/5030, ORCH-3055).

Wire facts used (reference/engine-dialects.md §2, vllm-project/vllm ``entrypoints/openai``):

* ``POST /v1/completions`` (default) or ``/v1/chat/completions`` (``endpoint="chat"`` in config
  or ``TaskRequest.extra["endpoint"]``) with ``stream: true`` and
  ``stream_options: {include_usage: true}`` (so ``end`` carries usage); the frame shapes are those
  of :mod:`adapters._oai`. ``seed`` is per-request (``SamplingParams.seed``); ``determinism:
  strict`` adds ``temperature 0`` and ``top_p 1``. vLLM is best-effort deterministic only.
* ``GET /health``: 200 ready, 503 (engine dead) live but not ready; while the model loads the port
  is closed (connection refused) → not live.
* No slot endpoint: ``props`` reports ``None`` for both counts (capacity is only visible in
  ``/metrics`` as queue gauges, which are not slots).
* ``GET /v1/models`` → ``max_model_len`` of the served model (ctx_max); ``GET /version`` →
  ``{"version": "x.y.z"}``, the stable engine version.
* Errors before the stream: ``{"error": {message, type, param, code}}`` with HTTP status = code;
  401 with ``--api-key`` is ``{"error": "Unauthorized"}``. The optional ``api_key`` is sent as
  ``Authorization: Bearer`` and never logged.
* The served model name is ``model`` from config, else the ``model_ref`` without its ``hf:``
  scheme (vLLM serves HF names).
"""

from __future__ import annotations

from typing import Any

from ._base import protocol_error
from ._oai import OpenAIStyleAdapter
from .api import Capabilities, TaskRequest, WorkerHealth, WorkerProps

__all__ = ["VllmAdapter"]


class VllmAdapter(OpenAIStyleAdapter):
    """Adapter for ``vllm serve``; construct with ``(base_url, **explicit config)``."""

    engine = "vllm"

    def __init__(self, base_url: str, *, endpoint: str = "completions", **config: Any) -> None:
        super().__init__(base_url, **config)
        self.default_endpoint = endpoint

    async def health(self) -> WorkerHealth:
        return await self.probe("/health", ready=frozenset({200}), not_ready=frozenset({503}))

    async def props(self) -> WorkerProps:
        # Readiness first: props of an engine that does not answer are an error, not "None".
        await self.get("/health")
        return WorkerProps(slots_total=None, slots_free=None)

    async def capabilities(self) -> Capabilities:
        models = await self.get_object("/v1/models")
        data = models.get("data")
        if not isinstance(data, list) or not data:
            raise protocol_error("GET /v1/models: no models listed")
        entry = next(
            (m for m in data if isinstance(m, dict) and m.get("id") == self.model),
            data[0],
        )
        ctx = entry.get("max_model_len") if isinstance(entry, dict) else None
        ctx_max = ctx if isinstance(ctx, int) else None
        self._ctx_max = ctx_max
        if self.model is None and isinstance(entry, dict) and isinstance(entry.get("id"), str):
            self.model = entry["id"]
        return await self._capabilities(
            ctx_max=ctx_max,
            slots=None,
            features=("seed", "stop", "usage", "cancel:close"),
        )

    async def _fetch_engine_version(self, *, retry: bool) -> str:
        return await self.get_text_field("/version", "version", retry=retry)

    def _stream_request(self, request: TaskRequest, prompt: str) -> tuple[str, dict[str, Any]]:
        path, body = super()._stream_request(request, prompt)
        if self.model is None:
            ref = request.model_ref
            body["model"] = ref[3:] if ref.startswith("hf:") else ref
        return path, body
