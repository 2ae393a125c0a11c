"""OpenAI API adapter (OC-ADAPT-OAI-6000..6031).

Wire facts used (reference/engine-dialects.md §4, the OpenAPI spec shipped in openai-python):

* ``POST {base}/chat/completions`` (default; ``endpoint="completions"`` for the legacy route)
  with ``stream: true``, ``stream_options: {include_usage: true}``, ``model``, ``messages``,
  ``max_tokens``, ``seed``; ``determinism: strict`` adds ``temperature 0`` and ``top_p 1``
  (OpenAI's seed is best effort, ``system_fingerprint`` says when the backend changed). Frames
  as in :mod:`adapters._oai`, terminated by ``data: [DONE]``.
* The API key is explicit (``api_key=``), sent as ``Authorization: Bearer <key>``, and redacted
  everywhere (OC-ADAPT-OAI-6020). TLS verification stays on unless ``http.verify`` says otherwise;
  proxies only when given explicitly (``http.proxy``; the client never trusts the environment).
* ``base_url`` is either the server root (``https://api.openai.com``) or the API root ending in
  ``/v1`` (the SDK convention); paths are built so both work.
* ``health``: ``GET {base}/models`` → 200 ready; 401/403/429/5xx → live (the service answers) but
  not ready for this key; refused/unreachable → not live.
* ``engine_version``: the upstream model id from ``GET {base}/models/{model}`` and the API version
  from its ``openai-version`` header, as ``<model>@<api version>`` (OC-ADAPT-OAI-6010).
* 429 carries ``Retry-After`` (seconds) → ``retry_after_ms``; ``x-ratelimit-reset-*`` is *not* a
  Retry-After. Stream retries only before the first byte (connect, 429, 503).
* No slots, no published context size per model: ``props`` and ``ctx_max`` are ``None``.
* ``model`` may be omitted for an OpenAI-compatible server that serves one model (a vLLM, a
  llama-server): it is then asked once from ``GET {base}/models`` (:mod:`adapters._oai`).
"""

from __future__ import annotations

from typing import Any

from ._base import protocol_error
from ._oai import OpenAIStyleAdapter
from .api import Capabilities, ConfigError, WorkerHealth, WorkerProps

__all__ = ["OpenAIAdapter"]


class OpenAIAdapter(OpenAIStyleAdapter):
    """Adapter for the OpenAI API (or any faithful copy of it)."""

    engine = "openai"

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        model: str | None = None,
        endpoint: str = "chat",
        **config: Any,
    ) -> None:
        if not api_key:
            raise ConfigError(
                "openai: api_key is required (passed explicitly, never from the environment)"
            )
        if model is not None and not model:
            raise ConfigError("openai: model must not be empty (omit it to ask the server)")
        super().__init__(base_url, api_key=api_key, model=model, **config)
        self.default_endpoint = endpoint
        self.api_prefix = "" if self.base_url.endswith("/v1") else "/v1"

    async def health(self) -> WorkerHealth:
        return await self.probe(
            f"{self.api_prefix}/models",
            ready=frozenset({200}),
            not_ready=frozenset({401, 403, 429, 500, 502, 503, 504}),
        )

    async def props(self) -> WorkerProps:
        await self.get(f"{self.api_prefix}/models")
        return WorkerProps(slots_total=None, slots_free=None)

    async def capabilities(self) -> Capabilities:
        return await self._capabilities(
            ctx_max=None,
            slots=None,
            features=("seed", "stop", "usage", "cancel:close"),
        )

    async def _fetch_engine_version(self, *, retry: bool) -> str:
        model = self.model
        if model is None:  # no model configured: the server's only one (see adapters._oai)
            served = (
                self._served if self._served is not None else await self.served_models(retry=retry)
            )
            if len(served) != 1:
                raise protocol_error(
                    f"GET {self.api_prefix}/models lists {len(served)} models; configure model="
                )
            model = served[0]
        resp = await self.get(f"{self.api_prefix}/models/{model}", retry=retry)
        try:
            doc = resp.json()
        except ValueError:
            raise protocol_error("GET /models/{model}: body is not JSON") from None
        model_id = doc.get("id") if isinstance(doc, dict) else None
        if not isinstance(model_id, str) or not model_id:
            raise protocol_error("GET /models/{model}: no id")
        api_version = resp.headers.get("openai-version")
        return f"{model_id}@{api_version}" if api_version else model_id
