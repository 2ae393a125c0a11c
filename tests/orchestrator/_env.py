"""The facade over scripted adapters on a real socket: one setup for the facade tests and the
hostile facade suite (which adds per-request figures on top)."""

from __future__ import annotations

from typing import Any, Self

import httpx

from llorch_conformance.adapters.host import AdapterHost
from llorch_conformance.adapters.http_util import RetryPolicy
from llorch_conformance.adapters.orchestrator import FacadeConfig, create_app
from llorch_conformance.adapters.orchestrator._server import ServerThread

from ..host.fakes import FakeAdapter


def task(task_id: str = "t-0", **over: Any) -> dict[str, Any]:
    """A valid ``POST /v1/tasks`` body; ``over`` replaces or adds fields."""
    raw: dict[str, Any] = {
        "task_id": task_id,
        "session_id": "s-0",
        "workload": "completion",
        "model_ref": "model0",
        "engine": "mock",
        "ctx": 4096,
        "priority": "interactive",
        "prompt": "hello",
        "max_tokens": 4,
        "deadline_ms": 5000,
    }
    raw.update(over)
    return raw


async def _no_sleep(_s: float) -> None:
    return None


class FacadeServer:
    """``with FacadeServer(FakeAdapter()) as e: e.client.post(...)``: one pool ``default`` with
    one replica ``r0`` (retries without back-off sleeps), ``cfg`` as :class:`FacadeConfig`."""

    client_timeout_s = 5.0

    def __init__(self, fake: FakeAdapter, **cfg: Any) -> None:
        self.fake = fake
        self.host = AdapterHost(retry_policy=RetryPolicy(seed=1), sleep=_no_sleep)
        self.host.bind("default", "r0", fake)
        self.app = create_app(self.host, FacadeConfig(**cfg))
        self.server = ServerThread(self.app)

    def __enter__(self) -> Self:
        self.server.start()
        self.client = httpx.Client(
            base_url=self.server.base_url, timeout=self.client_timeout_s, trust_env=False
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.server.stop()
