"""llorch_conformance._serving: the one "uvicorn on a background thread" helper."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from llorch_conformance._serving import ServedApp, bind_socket


async def _hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


async def _broken_startup(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "lifespan"
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "no model"})


def test_port_is_known_before_start_and_a_request_is_served() -> None:
    served = ServedApp(_hello, name="t-hello")
    port = served.port
    assert port > 0 and served.base_url == f"http://127.0.0.1:{port}"
    with served:
        assert served.running
        assert httpx.get(served.base_url, timeout=5).text == "hello"
    assert not served.running


def test_no_wait_start_queues_the_first_connection() -> None:
    served = ServedApp(_hello, name="t-nowait").start(timeout_s=None)
    try:
        assert httpx.get(served.base_url, timeout=5).status_code == 200
    finally:
        served.stop()


def test_on_exit_runs_once_before_the_stop() -> None:
    calls: list[str] = []
    served = ServedApp(_hello, sock=bind_socket(), on_exit=lambda: calls.append("exit")).start()
    served.stop()
    served.stop()
    assert calls == ["exit"]


def test_a_server_that_cannot_start_is_one_clear_error() -> None:
    with pytest.raises(RuntimeError, match="server t-broken did not start"):
        ServedApp(_broken_startup, name="t-broken").start(timeout_s=5)
