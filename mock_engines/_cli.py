"""``llorch-conformance serve <dialect>``: run a mock engine as a server.

Prints one line ``serving <dialect> <version> on http://HOST:PORT`` (flushed) once the port is
bound — with ``--port 0`` that line is how a caller learns the port — and serves until SIGINT or
SIGTERM. The API key may come from ``--api-key`` or, to keep it out of process listings, from the
environment variable ``LLORCH_MOCK_API_KEY``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

_DIALECT_CHOICES = ("llamacpp", "vllm", "tgi", "openai", "triton")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "serve",
        help="serve a mock engine",
        description="Serve a mock inference engine speaking one engine's wire dialect.",
    )
    p.add_argument("dialect", choices=_DIALECT_CHOICES, help="the engine API to speak")
    add_serving_options(p, seed_help="seed of the generated token plans (default 0)")
    p.add_argument("--profile", default="fast", help="fast | realistic | a YAML/JSON file")
    p.add_argument("--model", default=None, help="served model name (default: the dialect's)")
    p.add_argument(
        "--ctx-size",
        type=int,
        default=None,
        metavar="N",
        help="context length in tokens, as the deployment it stands in for (llama.cpp "
        "--ctx-size, vLLM --max-model-len); prompts and max_tokens are held against it",
    )
    p.add_argument("--api-key", default=None, help="require this key (or LLORCH_MOCK_API_KEY)")
    p.set_defaults(func=_serve)


def add_serving_options(p: argparse.ArgumentParser, *, seed_help: str) -> None:
    """The options every mock-engine-shaped server takes (``serve``, ``proxy``): where it
    listens, its seed, its engine-wide faults and whether its ``/__mock__/`` controls are on."""
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    p.add_argument("--seed", type=int, default=0, help=seed_help)
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="ID[;k=v...]",
        help="engine-wide fault (repeatable); see 'llorch-conformance list faults'",
    )
    p.add_argument("--no-control", action="store_true", help="switch off /__mock__/ endpoints")


def _serve(args: argparse.Namespace) -> int:
    import gc

    from llorch_conformance.adapters.api import UsageError

    from ._plan import MAX_CONTEXT
    from ._runner import create_app
    from ._server import EngineServer, serve_until_signalled

    if args.ctx_size is not None and not 16 <= args.ctx_size <= MAX_CONTEXT:
        raise UsageError(f"--ctx-size {args.ctx_size}: must be between 16 and {MAX_CONTEXT}")
    if args.model is not None and not args.model.strip():
        raise UsageError("--model must not be empty")
    api_key = args.api_key or os.environ.get("LLORCH_MOCK_API_KEY") or None
    app = create_app(
        args.dialect,
        seed=args.seed,
        profile=args.profile,
        faults=args.fault,
        control=not args.no_control,
        model=args.model,
        api_key=api_key,
        ctx_size=args.ctx_size,
    )

    async def ready(server: EngineServer) -> None:
        # A process of its own: everything start-up built lives as long as the process, so it
        # leaves the collector's generations and a full collection only walks what requests
        # built (a pause there delays every stream's next frame). Not done in-process
        # (ThreadedServer), where the objects belong to the host program.
        gc.collect()
        gc.freeze()
        # And full collections ten times rarer: at 500 streams one walked the ~20k objects of
        # the requests in flight and the journal (7 ms with every stream waiting); young
        # collections stay as frequent, so cycles are still freed early.
        gc.set_threshold(700, 10, 100)
        ctx = app.ctx
        state = " (port closed: loading)" if ctx.port_closed() else ""
        print(
            f"serving {ctx.dialect.name} {ctx.dialect.engine_version} on {server.base_url}{state}",
            flush=True,
        )

    return serve_until_signalled(app, args.host, args.port, ready)
