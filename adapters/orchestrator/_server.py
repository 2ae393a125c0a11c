"""Run an ASGI app under uvicorn in a background thread on a free loopback port.

Tests and the CLI need a *real* server (``httpx.ASGITransport`` buffers whole responses, which
hides streaming and disconnect behaviour). Port 0 lets the OS choose; the socket is bound before the
server starts, so the port is known at once and parallel test workers never collide.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from llorch_conformance._serving import ServedApp

__all__ = ["GuardedH11Protocol", "GuardedHttpToolsProtocol", "ServerThread"]


class ServerThread(ServedApp):
    """``with ServerThread(app) as srv: httpx.get(srv.base_url + "/health")``.

    The package's one serving helper (``llorch_conformance._serving.ServedApp``) with the
    facade's settings: HTTP/1.1 (h11), lifespan on, a free loopback port by default.
    """

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(app, host=host, port=port, name="llorch-server", http="h11")


# -- connection guard for the CLI's server -----------------------------------------------------------
# uvicorn times a connection out only between requests, and cancels even that timer on the first
# byte: a client that connects and sends nothing (or one byte) holds its connection for ever, and
# with ``limit_concurrency`` a few hundred such sockets would turn every new client away with 503.
# The facade's protocols give every connection the keep-alive timeout to deliver a complete request
# head (after connecting and after each response); a request in progress is left to its own
# deadlines (a long SSE stream is not idle).


def _arm(
    proto: H11Protocol | HttpToolsProtocol, old: asyncio.TimerHandle | None
) -> asyncio.TimerHandle:
    if old is not None:
        old.cancel()
    return proto.loop.call_later(proto.timeout_keep_alive, _head_deadline, proto)


def _head_deadline(proto: H11Protocol | HttpToolsProtocol) -> None:
    cycle = proto.cycle
    if cycle is not None and not cycle.response_complete:
        return  # a request is in progress; the next response re-arms the deadline
    if not proto.transport.is_closing():
        proto.transport.close()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request head (see above)."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer = _arm(self, self._head_timer)

    def on_response_complete(self) -> None:
        self._head_timer = _arm(self, self._head_timer)  # before a pipelined request starts
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (its default) with a deadline for each request head."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer = _arm(self, self._head_timer)

    def on_response_complete(self) -> None:
        self._head_timer = _arm(self, self._head_timer)
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)
