"""Serving a worker-side ASGI app on a socket bound *before* the app starts.

Why a pre-bound socket: a worker must put its own ``port`` into ``WorkerInfo`` and into the very
first heartbeat, which goes out from the app's lifespan startup — and uvicorn runs the lifespan
before it binds. Binding first (port 0 → the OS picks) makes the port known up front, for the CLI
(``--port 0``) and for tests alike. The same helper serves the mock queen and the mock worker.

:class:`ServedApp` runs uvicorn in a daemon thread with its own loop (tests, the harness);
``on_exit`` is called when a stop is requested (SIGTERM in the CLI, :meth:`ServedApp.stop` in
process) *before* uvicorn drains connections, so a worker can report ``stopping`` while it drains.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, Self

import uvicorn
from starlette.types import ASGIApp

__all__ = ["ServedApp", "ServedHandle", "bind_socket", "make_server"]


def bind_socket(host: str = "127.0.0.1", port: int = 0, *, listen: bool = False) -> socket.socket:
    """A TCP socket bound to ``(host, port)``; connections are refused until something listens."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        if listen:
            sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server with an ``on_exit`` hook run when a shutdown is requested."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def request_exit(self) -> None:
        if self._on_exit is not None:
            try:
                self._on_exit()
            finally:
                self._on_exit = None
        self.should_exit = True

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._on_exit is not None:
            hook, self._on_exit = self._on_exit, None
            hook()
        super().handle_exit(sig, frame)


def make_server(
    app: ASGIApp,
    *,
    on_exit: Callable[[], None] | None = None,
    graceful_s: float | None = 5.0,
    log_level: str = "warning",
) -> _Server:
    config = uvicorn.Config(
        app,
        log_level=log_level,
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=None if graceful_s is None else max(1, round(graceful_s)),
    )
    return _Server(config, on_exit)


class ServedApp:
    """``with ServedApp(app) as s: httpx.get(s.base_url + "/health")`` (or ``async with``)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        sock: socket.socket | None = None,
        on_exit: Callable[[], None] | None = None,
        graceful_s: float | None = 5.0,
    ) -> None:
        self.app = app
        self.host = host
        self._sock = sock if sock is not None else bind_socket(host, port)
        self.port: int = self._sock.getsockname()[1]
        self._server = make_server(app, on_exit=on_exit, graceful_s=graceful_s)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except BaseException as exc:
            self._error = exc

    def start(self, timeout_s: float = 10.0) -> ServedApp:
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="llorch-rbee", daemon=True)
        self._thread.start()
        done = threading.Event()

        def poll() -> None:
            assert self._thread is not None
            while not self._server.started and self._thread.is_alive():
                done.wait(0.005)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        poller.join(timeout_s)
        if not self._server.started:
            self.stop()
            raise RuntimeError(f"server did not start: {self._error!r}")
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        """Request a graceful stop (``on_exit`` runs first) and wait for the thread."""
        self._server.request_exit()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout_s)
        with contextlib.suppress(OSError):
            self._sock.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> ServedApp:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> ServedApp:
        import anyio.to_thread

        await anyio.to_thread.run_sync(self.start)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        import anyio.to_thread

        await anyio.to_thread.run_sync(self.stop)


class ServedHandle:
    """Base of the handles on a served app (bridge, mock worker): URL, port, start/stop, and
    ``with``/``async with`` — written once here; subclasses add their own attributes."""

    def __init__(self, served: ServedApp) -> None:
        self._served = served

    @property
    def base_url(self) -> str:
        return self._served.base_url

    @property
    def port(self) -> int:
        return self._served.port

    @property
    def running(self) -> bool:
        return self._served.running

    def start(self) -> Self:
        self._served.start()
        return self

    def stop(self) -> None:
        self._served.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await self._served.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._served.__aexit__(*exc)
