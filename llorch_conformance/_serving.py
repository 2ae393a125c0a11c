"""Serve an ASGI app with uvicorn on a background thread — the one copy of that plumbing.

Why one module: the orchestrator facade, the rbee worker bridge and mock queen, the steps' facade
and TLS engine and the benches each need a *real* server in-process (real sockets:
``httpx.ASGITransport`` buffers whole responses and hides streaming and disconnects). Each had
its own socket binding, ``uvicorn.Config``, daemon thread, start-up wait and stop; now they share
this module. It sits at the package root and imports nothing of ours, so every layer may use it
(adapters, mock engines, harness) without an import edge between them.

Why a pre-bound socket: binding first (port 0 → the OS picks) makes the port known before the
app starts — a worker puts it into its very first heartbeat, which goes out from the lifespan
startup, and uvicorn runs the lifespan before it binds — and a client may connect before the
server's loop runs (the kernel queues the connection), so callers that need not wait do not.

:class:`ServedApp` runs the server on a daemon thread with its own event loop; ``on_exit`` is
called when a stop is requested (SIGTERM for :func:`make_server` in a CLI, :meth:`ServedApp.stop`
in process) *before* uvicorn drains connections, so a worker can report ``stopping`` while it
drains. The mock engine keeps its own server loop (``mock_engines._server``: port control and
frame-level faults) and uses :func:`bind_socket` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, Self

import uvicorn

__all__ = ["ExitHookServer", "ServedApp", "StartStop", "bind_socket", "make_server"]

#: What every in-process server here shares unless the caller says otherwise: quiet logs (a
#: server's log is not the harness's evidence), no access log, the app's lifespan run.
DEFAULT_CONFIG: dict[str, Any] = {"log_level": "warning", "access_log": False, "lifespan": "on"}


def bind_socket(host: str = "127.0.0.1", port: int = 0, *, listen: bool = False) -> socket.socket:
    """A TCP socket bound to ``(host, port)``; connections are refused until something listens
    (``listen=True``: they queue in the kernel at once, before any server runs)."""
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


#: How often a stopping server looks at its open connections and tasks.
_STOP_POLL_S = 0.005


class ExitHookServer(uvicorn.Server):
    """uvicorn's server with an ``on_exit`` hook run once when a shutdown is requested, and a
    stop that takes as long as the open connections need, not uvicorn's fixed 0.1 s ticks.

    uvicorn notices ``should_exit`` on a 0.1 s tick, sleeps 0.1 s after asking connections to
    close and polls them every 0.1 s: 0.15-0.3 s per stop, paid by every scenario that serves an
    app (worker scenarios twice: queen and bridge; facade scenarios once). Here a requested exit
    wakes the main loop at once and the drain polls every 5 ms; the graceful-shutdown bound and
    the lifespan shutdown are uvicorn's own.
    """

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_exit = on_exit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    def request_exit(self) -> None:
        if self._on_exit is not None:
            try:
                self._on_exit()
            finally:
                self._on_exit = None
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed: nothing to wake
                loop.call_soon_threadsafe(wake.set)

    async def main_loop(self) -> None:
        """uvicorn's loop (``on_tick`` every 0.1 s: date header, limits), woken by an exit."""
        self._loop = asyncio.get_running_loop()
        self._wake = wake = asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), 0.1)
            should_exit = await self.on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's shutdown (stop accepting, close connections, wait for them and the tasks
        within ``timeout_graceful_shutdown``, lifespan shutdown), polling every 5 ms."""
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        state = self.server_state
        for connection in list(state.connections):
            connection.shutdown()
        try:
            async with asyncio.timeout(self.config.timeout_graceful_shutdown):
                # uvicorn signals no event when a connection or task ends: poll (finely).
                while (state.connections or state.tasks) and not self.force_exit:  # noqa: ASYNC110
                    await asyncio.sleep(_STOP_POLL_S)
                for server in self.servers:
                    await server.wait_closed()
        except TimeoutError:
            logging.getLogger("uvicorn.error").error(
                "Cancel %s running task(s), timeout graceful shutdown exceeded", len(state.tasks)
            )
            for task in state.tasks:
                task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        if not self.force_exit:
            await self.lifespan.shutdown()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._on_exit is not None:
            hook, self._on_exit = self._on_exit, None
            hook()
        super().handle_exit(sig, frame)


def make_server(
    app: Any,
    *,
    on_exit: Callable[[], None] | None = None,
    graceful_s: float | None = 5.0,
    **config: Any,
) -> ExitHookServer:
    """A uvicorn server for ``app`` (``config``: extra ``uvicorn.Config`` options over
    :data:`DEFAULT_CONFIG`); ``graceful_s`` bounds the connection drain on shutdown."""
    options = {**DEFAULT_CONFIG, **config}
    if "timeout_graceful_shutdown" not in options:
        options["timeout_graceful_shutdown"] = (
            None if graceful_s is None else max(1, round(graceful_s))
        )
    return ExitHookServer(uvicorn.Config(app, **options), on_exit)


class StartStop:
    """``with``/``async with`` for a handle that has ``start() -> Self`` and ``stop()``.

    One definition for every server handle (this module's :class:`ServedApp`, the mock engine,
    the fault proxy, the mock queen, the real engines' processes): a context manager enters by
    starting and leaves by stopping; the async forms run both in a worker thread so an event loop
    is never blocked by a server's start-up or shutdown."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> object:  # what it returns (a process's exit status, ...) is the handle's
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        import anyio.to_thread

        return await anyio.to_thread.run_sync(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        import anyio.to_thread

        await anyio.to_thread.run_sync(self.stop)


class ServedApp(StartStop):
    """``with ServedApp(app) as s: httpx.get(s.base_url + "/health")`` (or ``async with``).

    ``sock``: a socket bound by the caller (else one is bound to ``host:port`` here); ``config``:
    extra ``uvicorn.Config`` options (``ssl_certfile``, ``http``, ``lifespan``, ...). The socket
    is closed on :meth:`stop`.
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        sock: socket.socket | None = None,
        on_exit: Callable[[], None] | None = None,
        graceful_s: float | None = 5.0,
        name: str = "llorch-server",
        **config: Any,
    ) -> None:
        self.app = app
        self.host = host
        self._sock = sock if sock is not None else bind_socket(host, port)
        self.port: int = self._sock.getsockname()[1]
        self._server = make_server(app, on_exit=on_exit, graceful_s=graceful_s, **config)
        self._name = name
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self._server.config.is_ssl else "http"
        return f"{scheme}://{host}:{self.port}"

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except BaseException as exc:  # reported by start(), never swallowed silently
            self._error = exc

    def start(self, timeout_s: float | None = 10.0) -> Self:
        """Start the server thread and wait until uvicorn has started (``timeout_s=None``: do
        not wait — the socket listens already, so a client's connection queues until it runs)."""
        if self._thread is not None:
            return self
        if timeout_s is None:
            self._sock.listen(128)
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        if timeout_s is None:
            return self
        deadline = time.monotonic() + timeout_s
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() >= deadline:
                break
            time.sleep(0.005)
        if not self._server.started:
            self.stop()
            raise RuntimeError(f"server {self._name} did not start: {self._error!r}")
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
