"""``FacadeView``: a real :class:`~adapters.api.WorkerAdapter` over the orchestrator facade's HTTP API.

``submit`` is ``POST /v1/tasks`` followed by the SSE stream of ``GET /v1/tasks/{id}/stream``,
decoded with the shared byte-level decoder; ``cancel`` is ``POST /v1/tasks/{id}/cancel``. With an
in-process facade (the steps serve one, ``steps._orchestrator``) health, props and capabilities
come from the adapter behind it; for an ``--orchestrator-url`` target (``conformance._targets``),
which the harness does not own, they come over HTTP from ``GET /v1/pools/{pool}/health`` and
``GET /v1/capabilities``. It lives in ``conformance`` (not the steps) because target resolution
builds it: ``conformance`` never imports ``steps``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import httpx

from llorch_conformance.adapters.api import (
    Capabilities,
    ProtocolError,
    TaskRequest,
    TokenEvent,
    WorkerHealth,
    WorkerProps,
)
from llorch_conformance.adapters.http_util import verifying_context

__all__ = ["POOL", "FacadeView"]

#: The pool the in-process facade binds the adapter under test to (``default/r0``).
POOL = "default"


class FacadeView:
    """``submit``/``cancel`` over the facade's HTTP API, in the WorkerAdapter shape.

    ``inner`` is the adapter behind an in-process facade; ``None`` for an orchestrator the
    harness does not own, whose health, props and capabilities then come over HTTP from
    ``pool``'s entries.
    """

    #: The pool an in-process facade binds the adapter under test to.
    DEFAULT_POOL: ClassVar[str] = POOL

    def __init__(
        self,
        base_url: str,
        inner: Any,
        *,
        token: str | None,
        http2: bool = False,
        pool: str = POOL,
    ) -> None:
        self.base_url = base_url
        self.inner = inner
        self.token = token
        self.http2 = http2
        self.pool = pool
        self.statuses: list[tuple[str, int]] = []
        self.http_versions: list[str] = []

    @property
    def remote(self) -> bool:
        return self.inner is None

    def headers(self) -> dict[str, str]:
        """The bearer header when a token is configured (none otherwise)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def _get_json(self, path: str) -> dict[str, Any]:
        async with httpx.AsyncClient(
            verify=verifying_context(), trust_env=False, timeout=10.0
        ) as client:
            r = await client.get(f"{self.base_url}{path}", headers=self.headers())
        self.statuses.append((path, r.status_code))
        try:
            body = r.json()
        except ValueError:
            body = None
        if r.status_code != 200 or not isinstance(body, dict):
            raise ProtocolError(f"GET {path} answered {r.status_code} without a JSON object")
        return body

    async def _pool_caps(self) -> dict[str, Any]:
        engines = (await self._get_json("/v1/capabilities")).get("engines")
        entries = [e for e in engines or () if isinstance(e, dict)]
        entry = next((e for e in entries if e.get("pool_id") == self.pool), None)
        if entry is None:
            raise ProtocolError(f"GET /v1/capabilities lists no engine for pool {self.pool!r}")
        return entry

    async def health(self) -> Any:
        if not self.remote:
            return await self.inner.health()
        body = await self._get_json(f"/v1/pools/{self.pool}/health")
        return WorkerHealth(live=bool(body.get("live")), ready=bool(body.get("ready")))

    async def props(self) -> Any:
        if not self.remote:
            return await self.inner.props()
        slots = (await self._pool_caps()).get("concurrency")
        return WorkerProps(slots_total=slots if isinstance(slots, int) else None)

    async def capabilities(self) -> Any:
        if not self.remote:
            return await self.inner.capabilities()
        e = await self._pool_caps()

        def opt_int(key: str) -> int | None:
            v = e.get(key)
            return v if isinstance(v, int) and not isinstance(v, bool) else None

        def strs(key: str) -> tuple[str, ...]:
            v = e.get(key)
            return tuple(str(x) for x in v) if isinstance(v, list) else ()

        return Capabilities(
            engine=str(e.get("engine", "")),
            engine_version=str(e.get("engine_version", "")),
            sampler_profile_version=e.get("sampler_profile_version"),
            ctx_max=opt_int("ctx_max"),
            max_tokens_out=opt_int("max_tokens_out"),
            slots=opt_int("slots") if opt_int("slots") is not None else opt_int("concurrency"),
            supported_workloads=strs("supported_workloads") or ("completion",),
            features=strs("features"),
            declared_unsupported=strs("declared_unsupported"),
        )

    async def engine_version(self) -> str:
        if not self.remote:
            return str(await self.inner.engine_version())
        return str((await self._pool_caps()).get("engine_version", ""))

    async def submit_gen(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        from llorch_conformance.adapters.http_util import SSEDecoder

        async with httpx.AsyncClient(
            http2=self.http2,
            verify=verifying_context(self.http2),
            trust_env=False,
            timeout=20.0,
        ) as client:
            body = request.to_dict()
            if self.remote and self.pool != POOL and not body.get("placement"):
                # the target is that pool: its tasks go there too, not to the default pool
                body["placement"] = {"pin_pool_id": self.pool, "allow_fallback": False}
            r = await client.post(f"{self.base_url}/v1/tasks", json=body, headers=self.headers())
            self.statuses.append(("enqueue", r.status_code))
            if r.status_code != 202:
                body = (
                    r.json()
                    if r.headers.get("content-type", "").startswith("application/json")
                    else {}
                )
                yield TokenEvent(
                    "error",
                    {"code": body.get("code", "INTERNAL"), "retriable": bool(body.get("retriable", False)),
                     "message": str(body.get("message", "")), "http_status": r.status_code},
                )  # fmt: skip
                return
            async with client.stream(
                "GET", f"{self.base_url}/v1/tasks/{request.task_id}/stream", headers=self.headers()
            ) as resp:
                self.statuses.append(("stream", resp.status_code))
                self.http_versions.append(resp.http_version)
                decoder = SSEDecoder()
                async for chunk in resp.aiter_raw():
                    for ev in decoder.feed(chunk):
                        yield TokenEvent(ev.event, json.loads(ev.data) if ev.data else {})

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        return self.submit_gen(request)

    async def cancel(self, task_id: str) -> None:
        async with httpx.AsyncClient(
            verify=verifying_context(), trust_env=False, timeout=10.0
        ) as client:
            r = await client.post(
                f"{self.base_url}/v1/tasks/{task_id}/cancel", headers=self.headers()
            )
            self.statuses.append(("cancel", r.status_code))
        if not 200 <= r.status_code < 300:  # the contract answers 204; a refusal is no cancel
            raise ProtocolError(f"POST /v1/tasks/{task_id}/cancel answered {r.status_code}")

    async def aclose(self) -> None:
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()
