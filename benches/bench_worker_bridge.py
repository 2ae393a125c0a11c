"""Benchmark: the rbee worker bridge (adapters.rbee_worker) over the in-process MockAdapter.

Measures and prints; asserts nothing about time (a benchmark is not a test).

* ``direct``: tokens/s of ``MockAdapter.submit`` consumed in-process (no HTTP) — the ceiling;
* ``bridge 1 stream``: tokens/s of one ``POST /v1/infer`` (stream true) read over a real socket;
* ``bridge C streams``: aggregate tokens/s of C concurrent streams (the bridge's slots = C);
* ``bridge json``: non-streaming requests/s (C concurrent clients, short answers).

The ratio bridge/direct is the cost of the worker API (an HTTP request per stream, Starlette
``StreamingResponse``, one small ``json.dumps`` and one write per token). The mock plan stops at
its natural length (4..96 tokens, about 50 on average) whatever ``max_tokens`` says, so each
stream is short and the per-request cost weighs as much as the per-token one; tokens are counted
from the frames received, not assumed.

Run: ``.venv/bin/python benches/bench_worker_bridge.py [--streams C] [--requests N]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import httpx

from llorch_conformance.adapters.api import TaskRequest
from llorch_conformance.adapters.mock import MockAdapter
from llorch_conformance.mock_engines.rbee import run_mock_queen


def _task(i: int) -> TaskRequest:
    return TaskRequest.from_dict(
        {
            "task_id": f"b-{i}",
            "session_id": "bench",
            "workload": "completion",
            "model_ref": "hf:bench/m",
            "engine": "mock",
            "ctx": 4096,
            "priority": "interactive",
            "max_tokens": 4096,
            "deadline_ms": 600_000,
            "prompt": f"benchmark prompt {i}",
        }
    )


async def direct(n: int) -> tuple[int, float]:
    adapter = MockAdapter()
    tokens = 0
    t0 = time.perf_counter()
    for i in range(n):
        async for ev in adapter.submit(_task(i)):
            if ev.kind == "token":
                tokens += 1
    return tokens, time.perf_counter() - t0


async def streams(url: str, concurrency: int, per_client: int) -> tuple[int, float]:
    total = 0

    async def one(client: httpx.AsyncClient, k: int) -> None:
        nonlocal total
        for j in range(per_client):
            body = {
                "prompt": f"benchmark prompt {k * per_client + j}",
                "max_tokens": 4096,
                "stream": True,
            }
            async with client.stream("POST", url + "/v1/infer", json=body) as r:
                async for chunk in r.aiter_raw():
                    total += chunk.count(b'data: {"token"')

    seconds = await _clients(one, concurrency)  # before reading the count it fills
    return total, seconds


async def _clients(
    one: Callable[[httpx.AsyncClient, int], Coroutine[Any, Any, None]], concurrency: int
) -> float:
    """Run ``one(client, k)`` for ``k`` in ``range(concurrency)`` at once over one pooled
    client; the seconds they took together."""
    t0 = time.perf_counter()
    async with (
        httpx.AsyncClient(timeout=60.0, limits=httpx.Limits(max_connections=concurrency)) as client,
        anyio.create_task_group() as tg,
    ):
        for k in range(concurrency):
            tg.start_soon(one, client, k)
    return time.perf_counter() - t0


async def json_requests(url: str, concurrency: int, n: int) -> tuple[int, float]:
    done = 0

    async def one(client: httpx.AsyncClient, k: int) -> None:
        nonlocal done
        for j in range(n // concurrency):
            r = await client.post(url + "/v1/infer", json={"prompt": f"q{k}-{j}", "max_tokens": 4})
            r.raise_for_status()
            done += 1

    seconds = await _clients(one, concurrency)  # before reading the count it fills
    return done, seconds


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--streams", type=int, default=16, help="concurrent streams (default 16)")
    ap.add_argument(
        "--per-stream", type=int, default=20, help="requests per concurrent client (default 20)"
    )
    ap.add_argument(
        "--requests", type=int, default=800, help="non-streaming requests (default 800)"
    )
    args = ap.parse_args()

    rows: list[tuple[str, str, float]] = []
    tok, dt = anyio.run(direct, args.streams * args.per_stream)
    direct_rate = tok / dt
    rows.append(("direct (MockAdapter, no HTTP)", f"{tok} tokens", direct_rate))

    # The worker runs as the real ``llorch-conformance worker`` command in its own process, so the
    # client below does not share a GIL with it; heartbeats go to an in-process mock queen.
    with run_mock_queen() as queen:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llorch_conformance.conformance.cli",
                "worker",
                "--adapter",
                "mock",
                "--queen-url",
                queen.url,
                "--port",
                "0",
                "--slots",
                str(args.streams),
                "--worker-id",
                "bench-worker",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            line = proc.stdout.readline() if proc.stdout else ""
            url = line.split(" on ", 1)[1].split(" ", 1)[0]
            queen.state.wait_for(lambda s: s.is_available("bench-worker"), 30.0)
            res: Any = anyio.run(streams, url, 1, args.per_stream)
            rows.append(
                (f"bridge, 1 stream x {args.per_stream} (SSE)", f"{res[0]} tokens", res[0] / res[1])
            )
            res = anyio.run(streams, url, args.streams, args.per_stream)
            rows.append(
                (f"bridge, {args.streams} streams (SSE)", f"{res[0]} tokens", res[0] / res[1])
            )
            res = anyio.run(json_requests, url, args.streams, args.requests)
            rows.append(
                (f"bridge, {args.streams} clients (JSON)", f"{res[0]} requests", res[0] / res[1])
            )
        finally:
            proc.terminate()
            proc.wait(30)
            if proc.stdout is not None:
                proc.stdout.close()

    print(f"{'case':40} {'work':>16} {'per second':>14} {'vs direct':>10}")
    for name, work, rate in rows:
        ratio = f"{rate / direct_rate:9.2f}x" if "tokens" in work else ""
        print(f"{name:40} {work:>16} {rate:14,.0f} {ratio:>10}")


if __name__ == "__main__":
    main()
