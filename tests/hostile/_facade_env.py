"""A facade over scripted adapters on a real socket (``tests.orchestrator._env``), with
per-request timing for the figures."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx

from llorch_conformance.adapters.api import TokenEvent
from llorch_conformance.adapters.http_util import SSEDecoder

from ..host.fakes import FakeAdapter
from ..orchestrator._env import FacadeServer, task

__all__ = ["TOKEN", "FacadeEnv", "rss_mb", "task"]

TOKEN = "hostile-facade-token-0123456789"


class FacadeEnv(FacadeServer):
    """``with FacadeEnv(FakeAdapter()) as e: e.post(...)``; counts cases, 500s and worst latency."""

    client_timeout_s = 10.0

    def __init__(self, fake: FakeAdapter, **cfg: Any) -> None:
        super().__init__(fake, **cfg)
        self.cases = 0
        self.http_500 = 0
        self.worst_s = 0.0

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
