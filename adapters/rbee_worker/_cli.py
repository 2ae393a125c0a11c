"""``llorch-conformance worker``: serve any WorkerAdapter as an rbee worker that joins a queen.

Example: ``llorch-conformance worker --adapter llamacpp --engine-url http://127.0.0.1:8080
--queen-url http://127.0.0.1:7833 --port 9301``. ``--adapter`` is a built-in dialect
(``llamacpp, vllm, tgi, triton, openai, mock``) or ``package.module:factory``; adapter settings go
through ``--adapter-opt key=value`` (repeatable); ``--api-key-env NAME`` reads the engine's API
key from the environment so it never shows in a process listing. ``--port 0`` picks a free port;
the first line printed names the address actually bound. SIGTERM/SIGINT stop gracefully:
``stopping``, drain, ``stopped``, final heartbeat.
"""

from __future__ import annotations

import argparse
import importlib
import os
from typing import Any

from llorch_conformance.adapters.api import UsageError

__all__ = ["parse_opt", "register"]


def parse_opt(text: str) -> tuple[str, Any]:
    """``key=value`` with ints, floats and true/false converted."""
    key, eq, value = text.partition("=")
    if not eq or not key:
        raise UsageError(f"--adapter-opt {text!r}: expected key=value")
    low = value.lower()
    conv: Any = value
    if low in ("true", "false"):
        conv = low == "true"
    else:
        for cast in (int, float):
            try:
                conv = cast(value)
                break
            except ValueError:
                continue
    return key, conv


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "worker",
        help="serve an adapter as an rbee worker (/health, /info, /v1/infer, heartbeats to a queen)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--adapter",
        required=True,
        metavar="ENGINE|MODULE:FACTORY",
        help="the adapter behind the worker: a built-in dialect or a vendor factory",
    )
    p.add_argument(
        "--engine-url", metavar="URL", help="the engine's base URL (not needed for mock)"
    )
    p.add_argument(
        "--queen-url", required=True, metavar="URL", help="queen base URL for heartbeats"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, required=True, help="port to listen on (0 picks one)")
    p.add_argument(
        "--worker-id", default=None, help="worker id sent to the queen (default: generated)"
    )
    p.add_argument(
        "--model-id",
        default=None,
        help="WorkerInfo.model_id (default: the engine's served model, GET /v1/models)",
    )
    p.add_argument("--device", default="CPU-0", help="device reported to the queen (default CPU-0)")
    p.add_argument(
        "--implementation",
        default=None,
        help="WorkerInfo.implementation (default from the adapter)",
    )
    p.add_argument(
        "--slots", type=int, default=None, help="concurrent requests (default: the engine's slots)"
    )
    p.add_argument(
        "--heartbeat-interval",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="seconds between heartbeats to the queen (default 30)",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=1 << 20,
        help="largest request body accepted, bytes (default 1 MiB)",
    )
    p.add_argument(
        "--adapter-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra factory keyword argument (repeatable)",
    )
    p.add_argument(
        "--api-key-env",
        default=None,
        metavar="NAME",
        help="environment variable holding the engine's API key (never on argv)",
    )
    p.set_defaults(func=_run)


def _factory(spec: str) -> tuple[Any, str]:
    if ":" in spec:
        mod_name, _, attr = spec.partition(":")
        try:
            obj: Any = importlib.import_module(mod_name)
        except ImportError as exc:
            raise UsageError(f"--adapter {spec!r}: cannot import {mod_name!r} ({exc})") from None
        for part in attr.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                raise UsageError(f"--adapter {spec!r}: {mod_name!r} has no {attr!r}")
        return obj, str(getattr(obj, "dialect", "mock"))
    from llorch_conformance.adapters import adapter_factory

    return adapter_factory(spec), spec


def _run(args: argparse.Namespace) -> int:
    from llorch_conformance.adapters.api import ConfigError

    from ._bridge import BridgeConfig, WorkerBridge
    from ._serve import bind_socket, make_server

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: must be 0..65535")
    if not args.queen_url.startswith(("http://", "https://")):
        raise UsageError(f"--queen-url {args.queen_url!r}: must be an http(s) URL")
    if args.heartbeat_interval <= 0:
        raise UsageError("--heartbeat-interval must be positive")
    if args.slots is not None and args.slots < 1:
        raise UsageError("--slots must be at least 1")
    factory, dialect = _factory(args.adapter)
    if args.engine_url is None and dialect != "mock":
        raise UsageError(f"--adapter {args.adapter}: --engine-url is required")
    if args.engine_url is not None and not args.engine_url.startswith(("http://", "https://")):
        raise UsageError(f"--engine-url {args.engine_url!r}: must be an http(s) URL")
    opts = dict(parse_opt(o) for o in args.adapter_opt)
    if args.api_key_env:
        if args.api_key_env not in os.environ:
            raise UsageError(f"--api-key-env: environment variable {args.api_key_env} is not set")
        opts["api_key"] = os.environ[args.api_key_env]
    try:
        adapter = factory(args.engine_url or "mock://local", **opts)
    except (TypeError, ValueError, ConfigError) as exc:
        raise UsageError(f"--adapter {args.adapter}: {exc}") from None
    try:
        # Listening before the app starts: the address printed below accepts connections at once
        # (the kernel queues them until uvicorn, after the lifespan startup, serves them).
        sock = bind_socket(args.host, args.port, listen=True)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc})"
        ) from None
    cfg_kw: dict[str, Any] = {
        "dialect": dialect,
        "model_id": args.model_id,
        "device": args.device,
        "implementation": args.implementation,
        "queen_url": args.queen_url,
        "heartbeat_interval_s": args.heartbeat_interval,
        "slots": args.slots,
        "max_body_bytes": args.max_body_bytes,
    }
    if args.worker_id:
        cfg_kw["worker_id"] = args.worker_id
    bridge = WorkerBridge(
        adapter, BridgeConfig(**cfg_kw), port=sock.getsockname()[1], own_adapter=True
    )
    server = make_server(bridge.app, on_exit=bridge.request_stop, graceful_s=bridge.config.drain_s)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"llorch-conformance worker {bridge.config.worker_id} on http://{host}:{bridge.port} "
        f"(adapter {args.adapter}, queen {args.queen_url})",
        flush=True,
    )
    server.run(sockets=[sock])
    return 0
