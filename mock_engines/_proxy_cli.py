"""``llorch-conformance proxy``: run the fault proxy in front of a live engine, for manual use.

Prints one line ``proxying <dialect> <engine-url> (<version>) on http://HOST:PORT`` (flushed)
once the port is bound, then serves until SIGINT or SIGTERM. Faults are selected as on a mock
engine: ``--fault`` (engine-wide, repeatable), ``POST /__mock__/config`` or the ``X-Mock-Fault``
request header; ``GET /__mock__/journal`` shows what the engine was sent.
"""

from __future__ import annotations

import argparse
from typing import Any

from ._cli import _DIALECT_CHOICES, add_serving_options


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
    add_serving_options(p, seed_help="seed of rate= fault selection")
    p.set_defaults(func=_proxy)


def _proxy(args: argparse.Namespace) -> int:
    from llorch_conformance.adapters.api import ConfigError, UsageError

    from ._proxy import ProxyApp, ProxyContext
    from ._server import EngineServer, serve_until_signalled

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

    async def ready(server: EngineServer) -> None:
        await ctx.probe()
        version = ctx.engine_version or "version unknown"
        print(
            f"proxying {args.dialect} {ctx.upstream.url} ({version}) on {server.base_url}",
            flush=True,
        )

    return serve_until_signalled(
        ProxyApp(ctx), args.host, args.port, ready, on_stop=ctx.upstream.close_idle
    )
