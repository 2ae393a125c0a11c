"""In-process runner of the worker bridge: a real uvicorn server in a thread, port known up front.

``with run_worker_bridge(adapter, BridgeConfig(queen_url=q.url)) as w:`` gives a
:class:`WorkerServer` with ``base_url``, the :class:`~adapters.rbee_worker.WorkerBridge` (status,
transitions, heartbeat attempts) and a graceful :meth:`WorkerServer.stop` that goes through the
same path as SIGTERM in the CLI: ``stopping`` → drain → ``stopped`` → final heartbeat.
"""

from __future__ import annotations

from llorch_conformance.adapters.api import WorkerAdapter

from ._bridge import BridgeConfig, WorkerBridge
from ._serve import ServedApp, ServedHandle, bind_socket

__all__ = ["WorkerServer", "run_worker_bridge"]


class WorkerServer(ServedHandle):
    """Handle on a running bridge (``bridge`` plus the :class:`ServedHandle` surface)."""

    def __init__(self, bridge: WorkerBridge, served: ServedApp) -> None:
        super().__init__(served)
        self.bridge = bridge


def run_worker_bridge(
    adapter: WorkerAdapter,
    config: BridgeConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    own_adapter: bool = False,
) -> WorkerServer:
    """Build (not start) a bridge server; use it as ``with``/``async with`` or call ``start()``."""
    sock = bind_socket(host, port)
    bridge = WorkerBridge(adapter, config, port=sock.getsockname()[1], own_adapter=own_adapter)
    served = ServedApp(
        bridge.app,
        host=host,
        sock=sock,
        on_exit=bridge.request_stop,
        graceful_s=bridge.config.drain_s,
    )
    return WorkerServer(bridge, served)
