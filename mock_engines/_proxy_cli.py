"""``llorch-conformance proxy``: run the fault proxy in front of a live engine, for manual use.

Prints one line ``proxying <dialect> <engine-url> (<version>) on http://HOST:PORT`` (flushed)
once the port is bound, then serves until SIGINT or SIGTERM. Faults are selected as on a mock
engine: ``--fault`` (engine-wide, repeatable), ``POST /__mock__/config`` or the ``X-Mock-Fault``
request header; ``GET /__mock__/journal`` shows what the engine was sent.
"""

from __future__ import annotations

import argparse
from typing import Any

_DIALECT_CHOICES = ("llamacpp", "vllm", "tgi", "openai", "triton")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "proxy",
        help="fault-injecting proxy in front of a live engine (mock engine controls)",
        description=(
            "Serve a fault-injecting proxy on loopback in front of a live engine: the engine's "
            "own bytes pass through, bent by the selected fault; control and journal as on a "
            "mock engine (/__mock__/config, /__mock__/journal, X-Mock-Fault)."
        ),
    )
    p.add_argument("--engine-url", required=True, metavar="URL", help="the live engine")
    p.add_argument(
        "--dialect", required=True, choices=_DIALECT_CHOICES, help="the live engine's API"
    )
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    p.add_argument("--seed", type=int, default=0, help="seed of rate= fault selection")
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="ID[;k=v...]",
        help="engine-wide fault (repeatable); see 'llorch-conformance list faults'",
    )
    p.add_argument("--no-control", action="store_true", help="switch off /__mock__/ endpoints")
    p.set_defaults(func=_proxy)


def _proxy(args: argparse.Namespace) -> int:
    import asyncio
    import signal
    import sys

    from llorch_conformance.adapters.api import ConfigError, UsageError

    from ._proxy import ProxyApp, ProxyContext
    from ._server import EngineServer

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a TCP port")
    try:
        ctx = ProxyContext(
            args.dialect,
            args.engine_url,
            seed=args.seed,
            faults=args.fault,
            control=not args.no_control,
        )
    except ConfigError as exc:
        raise UsageError(f"--engine-url/--fault: {exc}") from None
    app = ProxyApp(ctx)
    try:
        server = EngineServer(app, args.host, args.port)
    except OSError as exc:
        raise UsageError(f"cannot bind {args.host}:{args.port}: {exc.strerror}") from None

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.request_stop)
        task = loop.create_task(server.serve())
        await loop.run_in_executor(None, server.ready.wait)
        await ctx.probe()
        version = ctx.engine_version or "version unknown"
        print(
            f"proxying {args.dialect} {ctx.upstream.url} ({version}) on {server.base_url}",
            flush=True,
        )
        try:
            await task
        finally:
            ctx.upstream.close_idle()

    factory = server.config.get_loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())
    print("stopped", file=sys.stderr, flush=True)
    return 0
