"""Serving a worker-side ASGI app on a socket bound *before* the app starts.

Why a pre-bound socket: a worker must put its own ``port`` into ``WorkerInfo`` and into the very
first heartbeat, which goes out from the app's lifespan startup — and uvicorn runs the lifespan
before it binds. Binding first (port 0 → the OS picks) makes the port known up front, for the CLI
(``--port 0``) and for tests alike. The same helper serves the mock queen and the mock worker.

:class:`ServedApp` runs uvicorn in a daemon thread with its own loop (tests, the harness);
``on_exit`` is called when a stop is requested (SIGTERM in the CLI, :meth:`ServedApp.stop` in
process) *before* uvicorn drains connections, so a worker can report ``stopping`` while it drains.
The serving itself is the package's one copy (``llorch_conformance._serving``), re-exported here.
"""

from __future__ import annotations

from typing import Any, Self

from llorch_conformance._serving import ServedApp, bind_socket, make_server

__all__ = ["ServedApp", "ServedHandle", "bind_socket", "make_server"]


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
