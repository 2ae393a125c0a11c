"""Run an ASGI app under uvicorn in a background thread on a free loopback port.

Tests and the CLI need a *real* server (``httpx.ASGITransport`` buffers whole responses, which
hides streaming and disconnect behaviour). Port 0 lets the OS choose; the bound port is read back
from the server's socket, so parallel test workers never collide.
"""

from __future__ import annotations

import threading
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

__all__ = ["ServerThread"]


class ServerThread:
    """``with ServerThread(app) as srv: httpx.get(srv.base_url + "/health")``."""

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="on",
            access_log=False,
            http="h11",
        )
        self._server = uvicorn.Server(self._config)
        self._thread = threading.Thread(target=self._server.run, name="llorch-server", daemon=True)
        self.host = host
        self.port = port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> ServerThread:
        self._thread.start()
        started = threading.Event()

        def poll() -> None:
            while not self._server.started and self._thread.is_alive():
                started.wait(0.005)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        poller.join(timeout_s)
        if not self._server.started:
            self.stop()
            raise RuntimeError("server did not start (see its log above)")
        sockets = [s for srv in self._server.servers for s in srv.sockets]
        self.port = sockets[0].getsockname()[1]
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
