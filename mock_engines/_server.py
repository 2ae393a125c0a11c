"""Serving a mock engine on a real socket: uvicorn + httptools with two small additions.

1. :class:`_Protocol` subclasses uvicorn's httptools protocol to (a) count open connections in the
   journal, (b) apply the engine-wide ``conn.accept_then_close`` fault right at accept time and
   (c) expose the transport to the app as ``scope["extensions"]["llorch.transport"]`` so faults
   can close a connection mid-response without uvicorn logging an application error.
2. :class:`EngineServer` owns the listening socket so the port can be *closed and reopened on the
   same number*: vLLM/TGI/Triton keep the port closed while loading (connection refused), and
   ``conn.port_closed`` does the same on demand. While closed, the socket stays bound but does
   not listen — the kernel refuses connections and nobody else can take the port.

``EngineServer.serve()`` runs in the caller's event loop (the CLI) or, via
:class:`ThreadedServer`, in a thread of its own (the in-process runner for tests).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Self

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from llorch_conformance._serving import StartStop as StartStop  # the handles' base, re-exported
from llorch_conformance._serving import bind_socket as _bind

from ._app import MockEngineApp
from ._context import EngineContext
from ._faults import FaultRule
from ._journal import Journal

__all__ = [
    "EngineHandle",
    "EngineServer",
    "ThreadedServer",
    "reserve_descriptors",
    "serve_until_signalled",
]

_log = logging.getLogger("llorch.mock_engines")


def _protocol_class(ctx: EngineContext) -> type[HttpToolsProtocol]:
    journal = ctx.journal

    class _Protocol(HttpToolsProtocol):
        _counted = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            journal.connection_opened()
            self._counted = True
            if ctx.select_connection_fault() is not None:
                transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            if self._counted:
                self._counted = False
                journal.connection_closed()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.scope["extensions"] = {"llorch.transport": self.transport}  # type: ignore[dict-item]

    return _Protocol


class EngineServer:
    """One mock engine on ``host:port`` (port 0 = pick a free one; read :attr:`port`)."""

    def __init__(
        self,
        app: MockEngineApp,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.app = app
        self.ctx = app.ctx
        self.host = host
        self.ssl_context = ssl_context
        self._sock: socket.socket | None = _bind(host, port)
        self.port: int = self._sock.getsockname()[1]
        self.config = uvicorn.Config(
            app,
            host=host,
            port=self.port,
            http=_protocol_class(self.ctx),
            loop="auto",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            date_header=False,
            timeout_graceful_shutdown=1,
            timeout_keep_alive=5,
            backlog=2048,
            # The mock never reads the client address; uvicorn's proxy-headers middleware would
            # wrap every request for nothing.
            proxy_headers=False,
        )
        self.server = uvicorn.Server(self.config)
        self._asyncio_server: asyncio.base_events.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._open_lock: asyncio.Lock | None = None
        self._stop: asyncio.Event | None = None
        self.ready = threading.Event()
        #: called on the server loop once it serves (``ready`` is for other threads)
        self.on_serving: Callable[[], None] | None = None
        self.failed: BaseException | None = None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    # -- port control (runs on the server loop) ---------------------------------------------------
    def _protocol_factory(self) -> Any:
        config = self.config
        server = self.server

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config,
                server_state=server.server_state,
                app_state={},
                _loop=_loop,
            )

        return create_protocol

    async def _open(self) -> None:
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            await self._open_locked()

    async def _open_locked(self) -> None:
        if self._asyncio_server is not None:
            return
        if self._sock is None:
            self._sock = _bind(self.host, self.port)
        sock = self._sock
        sock.listen(self.config.backlog)
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(
            self._protocol_factory(),
            sock=sock,
            backlog=self.config.backlog,
            ssl=self.ssl_context,
        )
        self._asyncio_server = srv
        self.server.servers.append(srv)

    def _close(self) -> None:
        srv = self._asyncio_server
        if srv is None:
            return
        self._asyncio_server = None
        srv.close()  # closes the listening socket: connection refused from now on
        # keep the port: bind a fresh (non-listening) socket on the same number
        self._sock = None
        for _ in range(50):
            try:
                self._sock = _bind(self.host, self.port)
                break
            except OSError:
                time.sleep(0.01)

    def _sync_port(self) -> None:
        """Open or close the listener to match the engine state; re-check at the next deadline."""
        loop = self._loop
        if loop is None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        until = self.ctx.port_closed_until()
        if until is None:
            if self._asyncio_server is None:
                loop.create_task(self._open())
            return
        self._close()
        if until != float("inf"):
            delay = max(0.0, until - time.monotonic()) + 0.001
            self._timer = loop.call_later(delay, self._sync_port)

    async def _sync_port_now(self) -> None:
        if self.ctx.port_closed_until() is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            await self._open()
        else:
            self._sync_port()

    def _listener_hook(self) -> None:
        """Called when the engine state changes; from another thread it returns only once the
        listener matches the state, so ``set_faults([...])`` is effective when it returns."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._sync_port()
            return
        fut = asyncio.run_coroutine_threadsafe(self._sync_port_now(), loop)
        with contextlib.suppress(TimeoutError, concurrent.futures.CancelledError):
            fut.result(timeout=5.0)

    # -- lifecycle ----------------------------------------------------------------------------------
    async def serve(self) -> None:
        """Serve until :meth:`request_stop`; the listener follows the engine's port state.

        uvicorn's own main loop polls every 100 ms and its shutdown sleeps another 100 ms; the
        mock waits on an event instead and stops in a few milliseconds (tests start hundreds).
        """
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        config = self.config
        if not config.loaded:
            config.load()
        server = self.server
        server.servers = []
        server.lifespan = config.lifespan_class(config)
        server.started = True
        self.ctx.port_listener = self._listener_hook
        try:
            if self.ctx.port_closed_until() is None:
                await self._open()
            else:
                self._sync_port()
            self.ready.set()
            if self.on_serving is not None:
                self.on_serving()
            await self._stop.wait()
        finally:
            self.ctx.port_listener = None
            if self._timer is not None:
                self._timer.cancel()
            await self._shutdown()

    async def _shutdown(self) -> None:
        state = self.server.server_state
        for srv in self.server.servers:
            srv.close()
        self.app.abort_all()
        for conn in list(state.connections):
            conn.shutdown()
        tasks = set(state.tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        for conn in list(state.connections):
            transport = getattr(conn, "transport", None)
            if transport is not None:
                transport.abort()
        for t in list(state.tasks):
            t.cancel()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def request_stop(self) -> None:
        """Ask the server to stop (thread-safe)."""
        loop = self._loop
        stop = self._stop
        if loop is None or stop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            stop.set()
        else:
            loop.call_soon_threadsafe(stop.set)


class ThreadedServer:
    """Run an :class:`EngineServer` on its own event loop in a daemon thread."""

    def __init__(self, server: EngineServer) -> None:
        self.server = server
        self._thread = threading.Thread(
            target=self._run, name=f"mock-{server.ctx.dialect.name}-{server.port}", daemon=True
        )

    def _run(self) -> None:
        factory = self.server.config.get_loop_factory()
        try:
            if factory is None:
                asyncio.run(self.server.serve())
            else:
                with asyncio.Runner(loop_factory=factory) as runner:
                    runner.run(self.server.serve())
        except BaseException as exc:  # reported to the starter, never swallowed silently
            self.server.failed = exc
            self.server.ready.set()

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        if not self.server.ready.wait(timeout):
            raise RuntimeError("mock engine did not start in time")
        if self.server.failed is not None:
            raise RuntimeError(f"mock engine failed to start: {self.server.failed!r}")

    def stop(self, timeout: float = 10.0) -> None:
        self.server.request_stop()
        self._thread.join(timeout)

    def call(self, fn: Any, *args: Any) -> None:
        """Run ``fn(*args)`` on the server loop (thread-safe)."""
        loop = self.server._loop
        if loop is not None:
            loop.call_soon_threadsafe(fn, *args)


class EngineHandle(StartStop):
    """What a mock engine's and a fault proxy's handles share: ``app`` served on its own
    thread by an :class:`EngineServer` (started and stopped once however often asked), and the
    facts and controls that come from its context (``journal``, ``dialect``, faults, reset)."""

    def __init__(
        self,
        app: MockEngineApp,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.app = app
        self.ctx: EngineContext = app.ctx
        self._server = EngineServer(app, host, port, ssl_context)
        self._thread = ThreadedServer(self._server)
        self._running = False

    # -- facts -------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (``https`` with TLS; valid even while the port is closed)."""
        return self._server.base_url

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def journal(self) -> Journal:
        return self.ctx.journal

    @property
    def dialect(self) -> str:
        return self.ctx.dialect.name

    # -- control -----------------------------------------------------------------------------------
    def set_faults(self, faults: Iterable[str | FaultRule]) -> None:
        """Replace the engine-wide faults (``[]`` clears them); ConfigError if one does not apply."""
        self.ctx.set_faults(faults)

    def reset(self) -> None:
        """Clear the journal and restart fault counters."""
        self.ctx.reset()

    def start(self) -> Self:
        if not self._running:
            self._thread.start()
            self._running = True
            self._started()
        return self

    def stop(self) -> None:
        """Stop the server: in-flight requests are cancelled, the port is released."""
        if self._running:
            self._running = False
            self._stopping()
            self._thread.stop()

    def _started(self) -> None:
        """Runs once the server serves (a proxy probes its engine here)."""

    def _stopping(self) -> None:
        """Runs before the server stops (a proxy lets go of its idle upstream connections)."""


#: :func:`reserve_descriptors` grows the table to at most this many descriptors (128 KiB of
#: kernel memory; a process that goes beyond pays one more growth then)
FD_TABLE_MAX = 16384


def reserve_descriptors(limit: int = FD_TABLE_MAX) -> int:
    """Grow this process's file descriptor table now to what it may use later: its
    ``RLIMIT_NOFILE`` soft limit, at most ``limit`` entries. Returns the size asked for (0 where
    it could not be done: no ``fcntl``, a soft limit below 64, no descriptor left).

    Why (issue 18.2): the kernel grows a process's descriptor table by doubling (256, 512,
    1024, ...) when a new descriptor needs it, and a process with more than one thread then
    waits for an RCU grace period (``accept4 -> alloc_fd -> expand_files -> synchronize_rcu``)
    — measured 8-14 ms here with the whole event loop stopped. A fresh ``serve`` process's
    first run of 500 streams crossed 256 and 512 mid-ramp: two stalls that made its p99 TTFT
    5-13 ms against 1.5 ms in the next run (the table never shrinks). Grown at start-up, while
    the process has one thread, it costs microseconds and no accept waits for it later.

    The descriptor is duplicated with ``F_DUPFD_CLOEXEC`` at the top of the range (it takes the
    lowest free number there and never replaces an open one), then closed.
    """
    try:
        import fcntl
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return 0
    try:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):  # pragma: no cover - getrlimit does not fail on Linux
        return 0
    size = limit if soft == resource.RLIM_INFINITY else min(soft, limit)
    if size < 64:  # the kernel's initial table already covers it
        return 0
    fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, size - 1)
    except OSError:  # every descriptor up there taken, or the limit lowered meanwhile
        return 0
    else:
        os.close(high)
    finally:
        os.close(fd)
    return size


def serve_until_signalled(
    app: Any,
    host: str,
    port: int,
    on_ready: Callable[[EngineServer], Awaitable[None]],
    on_stop: Callable[[], None] | None = None,
) -> int:
    """A CLI command's whole life: serve ``app`` on ``host:port`` in the foreground until SIGINT
    or SIGTERM, then say ``stopped`` on stderr; returns the exit status (0).

    One copy for ``serve``, ``proxy`` and ``real replay``: an address that cannot be bound is a
    usage error (exit 2, one line); ``on_ready`` runs once the port listens — it prints the line
    a caller reads the port from — and ``on_stop`` runs however serving ends.
    """
    from llorch_conformance.adapters.api import UsageError

    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port} is not a TCP port")
    reserve_descriptors()
    try:
        server = EngineServer(app, host, port)
    except OSError as exc:
        raise UsageError(f"cannot bind {host}:{port}: {exc.strerror}") from None

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.request_stop)
        # Waited for on the loop, not on a thread of the default executor: that thread would
        # make the process multi-threaded for good (see reserve_descriptors).
        serving: asyncio.Future[None] = loop.create_future()

        def _serving() -> None:
            if not serving.done():
                serving.set_result(None)

        server.on_serving = _serving
        task = loop.create_task(server.serve())
        try:
            await asyncio.wait({task, serving}, return_when=asyncio.FIRST_COMPLETED)
            if serving.done():
                await on_ready(server)
            await task  # ended before it served: its error
        finally:
            if on_stop is not None:
                on_stop()

    with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
        runner.run(main())
    print("stopped", file=sys.stderr, flush=True)
    return 0
