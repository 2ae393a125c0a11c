"""A facade over scripted adapters on a real socket, with per-request timing for the figures."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx

from llorch_conformance.adapters.api import TokenEvent
from llorch_conformance.adapters.host import AdapterHost
from llorch_conformance.adapters.http_util import RetryPolicy, SSEDecoder
from llorch_conformance.adapters.orchestrator import FacadeConfig, create_app
from llorch_conformance.adapters.orchestrator._server import ServerThread

from ..host.fakes import FakeAdapter

TOKEN = "hostile-facade-token-0123456789"


def task(task_id: str = "t-0", **over: Any) -> dict[str, Any]:
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


class FacadeEnv:
    """``with FacadeEnv(FakeAdapter()) as e: e.post(...)``; counts cases, 500s and worst latency."""

    def __init__(self, fake: FakeAdapter, **cfg: Any) -> None:
        self.fake = fake
        self.host = AdapterHost(retry_policy=RetryPolicy(seed=1), sleep=_no_sleep)
        self.host.bind("default", "r0", fake)
        self.app = create_app(self.host, FacadeConfig(**cfg))
        self.server = ServerThread(self.app)
        self.cases = 0
        self.http_500 = 0
        self.worst_s = 0.0

    def __enter__(self) -> FacadeEnv:
        self.server.start()
        self.client = httpx.Client(base_url=self.server.base_url, timeout=10, trust_env=False)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.server.stop()

    @property
    def facade(self) -> Any:
        """The facade object behind the gate (for white-box looks at its queue)."""
        return self.app.app.state.facade  # type: ignore[attr-defined]

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        t0 = time.perf_counter()
        r = self.client.request(method, url, **kw)
        self.worst_s = max(self.worst_s, time.perf_counter() - t0)
        self.cases += 1
        self.http_500 += r.status_code >= 500 and r.status_code != 503
        return r

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def events(self, task_id: str, **kw: Any) -> list[TokenEvent]:
        t0 = time.perf_counter()
        with self.client.stream("GET", f"/v1/tasks/{task_id}/stream", **kw) as r:
            assert r.status_code == 200, r.read()
            dec = SSEDecoder()
            out = [
                TokenEvent(e.event, json.loads(e.data)) for c in r.iter_raw() for e in dec.feed(c)
            ]
        self.worst_s = max(self.worst_s, time.perf_counter() - t0)
        self.cases += 1
        return out

    def series(self, name: str, **kw: Any) -> list[str]:
        """The sample lines of metric ``name`` in ``/metrics``."""
        text = self.get("/metrics", **kw).text
        return [ln for ln in text.splitlines() if re.match(rf"{name}(\{{| )", ln)]


def rss_mb() -> float:
    """Current resident set of this process (the server runs in it), MiB."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0
