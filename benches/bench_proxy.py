"""Benchmark of the fault proxy's overhead: direct to the engine vs through the proxy. Prints only.

The engine is a mock llama.cpp engine in its own process (``llorch-conformance serve``, fast
profile) unless ``--engine-url`` names a live one (e.g. ``llorch-conformance real-engine``); the
proxy runs in its own process (``llorch-conformance proxy``) so its CPU time can be read from
``/proc``. The client is this process (httpx, asyncio).

1. **Streaming throughput**: ``--streams`` concurrent streams of ``--tokens`` tokens; SSE events
   per second, direct vs proxied, and the proxy's CPU time per 1000 events.
2. **Request latency**: ``--requests`` sequential small non-streamed requests (``GET /health``)
   and short streams; median and p90 time to the full answer, direct vs proxied.
3. **Fault path**: the same streams with ``frame.split_every_byte`` (the most expensive fault:
   one write per byte), to show what a hostile-chunking scenario costs.

Throughput is the best of ``--repeat`` runs (the machine is shared); the mock engine writes a
whole ``fast`` stream at once, so this is the proxy's worst case — a live engine sends tens to
hundreds of events per second, where the proxy's per-event CPU time is what matters.

Usage: ``python benches/bench_proxy.py [--streams 8] [--tokens 2000] [--requests 200]
[--engine-url URL --dialect llamacpp]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

CLI = [sys.executable, "-m", "llorch_conformance.conformance.cli"]


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of a process (Linux /proc), 0.0 where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def start(args: list[str], prefix: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        CLI + args,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(prefix):
        proc.kill()
        raise SystemExit(f"could not start {args[0]}: {line!r}")
    return proc, line.rsplit(" on ", 1)[1].split()[0].strip()


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def gen_body(dialect: str, model: str | None, tokens: int, stream: bool) -> tuple[str, Any]:
    if dialect == "llamacpp":
        return "/completion", {
            "prompt": "Benchmark the proxy",
            "n_predict": tokens,
            "stream": stream,
            "ignore_eos": True,
            "seed": 1,
        }
    return "/v1/completions", {
        "model": model,
        "prompt": "Benchmark the proxy",
        "max_tokens": tokens,
        "stream": stream,
        "ignore_eos": True,
        "seed": 1,
    }


async def one_stream(c: httpx.AsyncClient, url: str, body: Any, headers: dict[str, str]) -> int:
    n = 0
    tail = b""
    async with c.stream("POST", url, json=body, headers=headers) as r:
        async for piece in r.aiter_raw():
            data = tail + piece
            n += data.count(b"\n\n")
            tail = data[-1:]
    return n


async def throughput(
    base: str, dialect: str, model: str | None, streams: int, tokens: int, fault: str | None
) -> tuple[float, int, float]:
    path, body = gen_body(dialect, model, tokens, True)
    headers = {"x-mock-fault": fault} if fault else {}
    limits = httpx.Limits(max_connections=streams + 4)
    async with httpx.AsyncClient(timeout=120.0, limits=limits) as c:
        await one_stream(c, base + path, {**body, "n_predict": 4, "max_tokens": 4}, headers)
        t0 = time.perf_counter()
        counts = await asyncio.gather(
            *(one_stream(c, base + path, body, headers) for _ in range(streams))
        )
        dt = time.perf_counter() - t0
    events = sum(counts)
    return events / dt, events, dt


async def latency(base: str, dialect: str, model: str | None, n: int) -> dict[str, float]:
    path, body = gen_body(dialect, model, 4, True)
    health = "/v2/health/ready" if dialect == "triton" else "/health"
    out: dict[str, list[float]] = {"health": [], "stream4": []}
    async with httpx.AsyncClient(timeout=60.0) as c:
        for _ in range(n):
            t = time.perf_counter()
            await c.get(base + health)
            out["health"].append(time.perf_counter() - t)
            t = time.perf_counter()
            await one_stream(c, base + path, body, {})
            out["stream4"].append(time.perf_counter() - t)
    res: dict[str, float] = {}
    for k, v in out.items():
        v.sort()
        res[f"{k}_p50_ms"] = statistics.median(v) * 1000
        res[f"{k}_p90_ms"] = v[int(len(v) * 0.9) - 1] * 1000
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs per measurement")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--engine-url", default=None, help="a live engine instead of a mock")
    ap.add_argument("--dialect", default="llamacpp", choices=["llamacpp", "vllm"])
    args = ap.parse_args()

    engine_proc = None
    if args.engine_url is None:
        engine_proc, engine_url = start(
            ["serve", args.dialect, "--port", "0", "--profile", "fast"], "serving "
        )
    else:
        engine_url = args.engine_url.rstrip("/")
    proxy_proc, proxy_url = start(
        ["proxy", "--dialect", args.dialect, "--engine-url", engine_url, "--port", "0"],
        "proxying ",
    )
    model = None
    if args.dialect == "vllm":
        model = httpx.get(engine_url + "/v1/models", timeout=10).json()["data"][0]["id"]
    results: dict[str, Any] = {
        "engine": engine_url if args.engine_url else f"mock {args.dialect} (fast profile)",
        "streams": args.streams,
        "tokens": args.tokens,
    }
    try:
        for label, base, fault in (
            ("direct", engine_url, None),
            ("proxy", proxy_url, None),
            ("proxy+split_every_byte", proxy_url, "frame.split_every_byte"),
        ):
            best: tuple[float, int, float, float] | None = None
            for _ in range(1 if fault else max(1, args.repeat)):
                cpu0 = cpu_seconds(proxy_proc.pid)
                run = asyncio.run(
                    throughput(base, args.dialect, model, args.streams, args.tokens, fault)
                )
                cpu1 = cpu_seconds(proxy_proc.pid) - cpu0
                if best is None or run[0] > best[0]:
                    best = (*run, cpu1)
            assert best is not None
            eps, events, dt, cpu = best
            results[label] = {
                "events_per_s": round(eps, 1),
                "events": events,
                "seconds": round(dt, 3),
                "proxy_cpu_ms_per_1000_events": round(cpu * 1e6 / max(1, events), 2)
                if label != "direct"
                else None,
            }
        results["latency_direct"] = {
            k: round(v, 3)
            for k, v in asyncio.run(latency(engine_url, args.dialect, model, args.requests)).items()
        }
        results["latency_proxy"] = {
            k: round(v, 3)
            for k, v in asyncio.run(latency(proxy_url, args.dialect, model, args.requests)).items()
        }
    finally:
        stop(proxy_proc)
        if engine_proc is not None:
            stop(engine_proc)
    d, p = results["direct"]["events_per_s"], results["proxy"]["events_per_s"]
    results["ratios"] = {
        "throughput_proxy_over_direct": round(p / d, 3) if d else None,
        "throughput_split_every_byte_over_direct": round(
            results["proxy+split_every_byte"]["events_per_s"] / d, 3
        )
        if d
        else None,
        **{
            f"{k}_proxy_over_direct": round(
                results["latency_proxy"][k] / results["latency_direct"][k], 3
            )
            for k in results["latency_direct"]
            if results["latency_direct"][k]
        },
    }
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
