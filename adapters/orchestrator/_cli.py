"""``llorch-conformance orchestrator``: serve the orchestrator facade over real adapters.

Bindings are given as ``--bind POOL/REPLICA=DIALECT@URL[;key=value...]``, for example
``--bind default/r0=vllm@http://127.0.0.1:8000;model=m`` or ``--bind default/r0=mock``. Adapter
settings go through the ``key=value`` list; ``api_key_env=NAME`` reads an API key from the
environment variable NAME so it never appears in a process listing. The API token of the facade
comes from ``LLORCH_API_TOKEN`` (the original's variable) for the same reason.
"""

from __future__ import annotations

import argparse
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from llorch_conformance.adapters.api import UsageError

__all__ = ["Binding", "parse_binding", "register"]


@dataclass(frozen=True, slots=True)
class Binding:
    pool_id: str
    replica_id: str
    dialect: str
    url: str
    config: dict[str, Any] = field(default_factory=dict)


def parse_binding(spec: str, environ: dict[str, str] | None = None) -> Binding:
    """Parse one ``--bind`` value; errors name the part that was wrong."""
    env = os.environ if environ is None else environ
    head, _, params = spec.partition(";")
    if "=" not in head:
        raise UsageError(f"--bind {spec!r}: expected POOL/REPLICA=DIALECT@URL")
    where, _, target = head.partition("=")
    pool, _, replica = where.partition("/")
    if not pool or not replica:
        raise UsageError(f"--bind {spec!r}: expected POOL/REPLICA before '='")
    dialect, _, url = target.partition("@")
    if not dialect:
        raise UsageError(f"--bind {spec!r}: missing the adapter dialect after '='")
    if dialect != "mock" and not url.startswith(("http://", "https://")):
        raise UsageError(f"--bind {spec!r}: the engine URL must start with http:// or https://")
    config: dict[str, Any] = {}
    for item in filter(None, params.split(";")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UsageError(f"--bind {spec!r}: adapter setting {item!r} is not key=value")
        if key == "api_key_env":
            if value not in env:
                raise UsageError(f"--bind {spec!r}: environment variable {value} is not set")
            config["api_key"] = env[value]
        else:
            config[key] = int(value) if value.isdigit() else value
    return Binding(pool, replica, dialect, url or "mock://", config)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "orchestrator",
        help="serve the orchestrator facade (tasks, SSE, cancel, capabilities) over adapters",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=int,
        default=8080,
        help="port (default 8080; 0 picks a free one, shown in the start-up line)",
    )
    p.add_argument(
        "--bind",
        action="append",
        default=[],
        metavar="POOL/REPLICA=DIALECT@URL[;k=v]",
        help="bind an adapter (repeatable); default: default/r0=mock",
    )
    p.add_argument(
        "--default-pool", default="default", help="pool of tasks that name none (default: default)"
    )
    p.add_argument(
        "--admission-capacity",
        type=int,
        default=8,
        help="tasks admitted at once per pool before 429 (default 8)",
    )
    p.add_argument("--heartbeat-ms", type=int, default=0, help="SSE keep-alive comments (0 = off)")
    p.add_argument(
        "--max-deadline-ms",
        type=int,
        default=3_600_000,
        help="largest deadline_ms admitted; larger is a 400 (default 3600000, one hour)",
    )
    p.add_argument(
        "--unopened-ttl-ms",
        type=int,
        default=30_000,
        help="drop an admitted task whose stream is not opened within this (default 30000)",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a Host name trusted for token-less requests besides loopback names (repeatable)",
    )
    p.add_argument(
        "--auth-optional",
        action="store_true",
        help="with a token set, let loopback clients in without it (AUTH-1004)",
    )
    p.add_argument(
        "--no-cancel-on-disconnect",
        action="store_true",
        help="keep a task running when its client goes",
    )
    p.add_argument(
        "--limit-concurrency",
        type=int,
        default=512,
        metavar="N",
        help="open connections (or requests in progress) beyond which a new request gets 503 "
        "(default 512: each connection may hold one upstream connection too, which stays under "
        "the usual 1024 open-file limit)",
    )
    p.add_argument(
        "--timeout-keep-alive",
        type=int,
        default=5,
        metavar="S",
        help="seconds a connection may hold no request in progress (freshly opened, or idle after "
        "a response) before it is closed; a connection that never sends a request is closed too "
        "(default 5)",
    )
    p.add_argument(
        "--write-timeout-ms",
        type=int,
        default=30_000,
        help="a task stream whose client stops reading for this long is ended as on a "
        "disconnect (task cancelled, connection closed) (default 30000)",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import uvicorn

    from llorch_conformance.adapters import create_adapter
    from llorch_conformance.adapters.host import AdapterHost

    from ._app import FacadeConfig, create_app
    from ._auth import AuthPolicy, check_bind
    from ._server import GuardedHttpToolsProtocol

    token = os.environ.get("LLORCH_API_TOKEN") or None
    check_bind(args.host, token)
    if args.port < 0 or args.port > 65535:
        raise UsageError(f"--port {args.port}: must be 0..65535")
    if args.admission_capacity < 1:
        raise UsageError("--admission-capacity must be at least 1")
    for flag, value in (
        ("--max-deadline-ms", args.max_deadline_ms),
        ("--unopened-ttl-ms", args.unopened_ttl_ms),
        ("--limit-concurrency", args.limit_concurrency),
        ("--timeout-keep-alive", args.timeout_keep_alive),
        ("--write-timeout-ms", args.write_timeout_ms),
    ):
        if value < 1:
            raise UsageError(f"{flag} must be at least 1")
    bindings = [parse_binding(s) for s in (args.bind or ["default/r0=mock"])]
    host = AdapterHost()
    for b in bindings:
        host.bind(b.pool_id, b.replica_id, create_adapter(b.dialect, b.url, **b.config))
    cfg = FacadeConfig(
        default_pool=args.default_pool,
        admission_capacity=args.admission_capacity,
        heartbeat_ms=args.heartbeat_ms,
        cancel_on_disconnect=not args.no_cancel_on_disconnect,
        auth=AuthPolicy(token=token, optional=args.auth_optional),
        max_deadline_ms=args.max_deadline_ms,
        unopened_ttl_ms=args.unopened_ttl_ms,
        allowed_hosts=frozenset(h.lower() for h in args.allow_host),
        write_timeout_ms=args.write_timeout_ms,
    )
    pools = ", ".join(f"{b.pool_id}/{b.replica_id}={b.dialect}" for b in bindings)
    # Bind (and listen) before announcing: the printed URL carries the real port, so --port 0
    # works for tests and scripts, and a client may connect as soon as the line is out.
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
        ) from None
    port = sock.getsockname()[1]
    shown = f"[{args.host}]" if family == socket.AF_INET6 else args.host
    print(f"llorch-conformance orchestrator on http://{shown}:{port} ({pools})", flush=True)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(host, cfg),
            log_level="warning",
            http=GuardedHttpToolsProtocol,
            limit_concurrency=args.limit_concurrency,
            timeout_keep_alive=args.timeout_keep_alive,
        )
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0
