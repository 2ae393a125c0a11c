"""Run an ASGI app under uvicorn in a background thread on a free loopback port.

Tests and the CLI need a *real* server (``httpx.ASGITransport`` buffers whole responses, which
hides streaming and disconnect behaviour). Port 0 lets the OS choose; the socket is bound before the
server starts, so the port is known at once and parallel test workers never collide.
"""

from __future__ import annotations

from starlette.types import ASGIApp

from llorch_conformance._serving import ServedApp

__all__ = ["ServerThread"]


class ServerThread(ServedApp):
    """``with ServerThread(app) as srv: httpx.get(srv.base_url + "/health")``.

    The package's one serving helper (``llorch_conformance._serving.ServedApp``) with the
    facade's settings: HTTP/1.1 (h11), lifespan on, a free loopback port by default.
    """

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(app, host=host, port=port, name="llorch-server", http="h11")
