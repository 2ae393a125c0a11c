"""Benchmark of the mock engines: streamed events/s and timing fidelity. Measures and prints.

One mock engine runs as its own process (``llorch-conformance serve``) pinned to one core; the
client runs in this process, pinned to another core when the machine has one, on uvloop with a
raw ``asyncio.Protocol`` so the client costs as little as possible per event.

1. **Throughput** (no delays, ``fast``-like profile with enough slots): ``--streams`` concurrent
   streams of ``--tokens`` tokens each (``ignore_eos``); events counted on the wire
   (every SSE event ends with a blank line; compact JSON never contains one).
2. **Timing fidelity**: ``--fidelity-streams`` concurrent streams, TTFT ``--ttft-ms`` and ITL
   ``--itl-ms`` configured, no jitter. For each stream the client records the arrival time of
   every event; TTFT error = measured − configured, ITL error = each measured gap − configured.
   Errors are reported at p50 and p99 of their absolute value (and signed p50).

Streams start spread over ``--ramp-s`` (default 1 s) so the measurement is of 500 concurrent
streams in steady state, not of 500 simultaneous connection set-ups.

Goals from the issue: ≥ 30 000 events/s; p99 timing error < 5 ms at 500 streams × 20 ms ITL.
The numbers include the client's own scheduling delay on a shared machine, so they are an upper
bound on the mock's error.

Usage: ``python benches/bench_mock_engine.py [--dialect vllm] [--streams 100] [--tokens 2000]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def _pin(pid: int, cpu: int) -> bool:
    try:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return False
        os.sched_setaffinity(pid, {cpus[cpu % len(cpus)]})
        return True
    except (AttributeError, OSError):
        return False


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of a process (Linux /proc), 0.0 where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


@contextlib.contextmanager
def mock_process(dialect: str, profile: dict[str, object]) -> Iterator[tuple[str, int, int]]:
    with tempfile.TemporaryDirectory() as tmp:
        prof = Path(tmp) / "bench.json"
        prof.write_text(json.dumps(profile), encoding="utf-8")
        cmd = [
            sys.executable,
            "-m",
            "llorch_conformance.conformance.cli",
            "serve",
            dialect,
            "--port",
            "0",
            "--profile",
            str(prof),
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) as proc:
            try:
                assert proc.stdout is not None
                line = proc.stdout.readline()
                if not line.startswith("serving "):
                    raise SystemExit(f"mock did not start: {line!r}")
                url = line.split(" on ")[1].split()[0]
                _pin(proc.pid, 0)
                host, port = url.removeprefix("http://").rsplit(":", 1)
                yield host, int(port), proc.pid
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()


def request_bytes(dialect: str, host: str, port: int, tokens: int, seed: int) -> bytes:
    if dialect == "llamacpp":
        path = "/completion"
        body = {
            "prompt": "bench",
            "n_predict": tokens,
            "stream": True,
            "seed": seed,
            "ignore_eos": True,
        }
        auth = ""
    else:
        path = "/v1/completions"
        model = "gpt-4o-mini" if dialect == "openai" else "Qwen/Qwen2.5-0.5B-Instruct"
        body = {
            "model": model,
            "prompt": "bench",
            "max_tokens": tokens,
            "stream": True,
            "seed": seed,
            "ignore_eos": True,
        }
        auth = "Authorization: Bearer bench\r\n" if dialect == "openai" else ""
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


class StreamProtocol(asyncio.Protocol):
    """Counts SSE events as they arrive and stamps each read."""

    def __init__(self, request: bytes, stamps: bool) -> None:
        self.request = request
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.events = 0
        self.t_sent = 0.0
        self.arrivals: list[tuple[float, int]] = []
        self.stamps = stamps
        self._tail = b""
        self._in_body = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t_sent = time.perf_counter()
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        buf = self._tail + data
        if not self._in_body:
            i = buf.find(b"\r\n\r\n")
            if i == -1:
                self._tail = buf[-3:]
                return
            self._in_body = True
            buf = buf[i + 4 :]
        n = buf.count(b"\n\n")
        if buf.endswith(b"\n") and not buf.endswith(b"\n\n"):
            self._tail = b"\n"
        else:
            self._tail = b""
        if n:
            self.events += n
            if self.stamps:
                self.arrivals.append((now, n))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def run_streams(
    host: str, port: int, dialect: str, n: int, tokens: int, stamps: bool, ramp_s: float = 0.0
) -> tuple[list[StreamProtocol], float]:
    loop = asyncio.get_running_loop()
    protos: list[StreamProtocol] = []
    t0 = time.perf_counter()

    async def one(i: int) -> None:
        if ramp_s:
            await asyncio.sleep(ramp_s * i / n)
        p = StreamProtocol(request_bytes(dialect, host, port, tokens, i), stamps)
        protos.append(p)
        await loop.create_connection(lambda: p, host, port)
        await p.done

    async with asyncio.timeout(300):  # a stuck stream ends the run instead of hanging it
        await asyncio.gather(*(one(i) for i in range(n)))
    return protos, time.perf_counter() - t0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[k]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # OpenAI has no ignore_eos: its streams would end at the natural EOS, so it is not offered.
    ap.add_argument("--dialect", default="vllm", choices=["llamacpp", "vllm"])
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--tokens", type=int, default=2000)
    ap.add_argument("--fidelity-streams", type=int, default=500)
    ap.add_argument("--fidelity-tokens", type=int, default=100)
    ap.add_argument("--ramp-s", type=float, default=1.0, help="spread stream starts over this time")
    ap.add_argument("--itl-ms", type=float, default=20.0)
    ap.add_argument("--ttft-ms", type=float, default=100.0)
    args = ap.parse_args()

    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        loop_factory = asyncio.new_event_loop
    pinned = _pin(0, 1)
    print(f"machine: {os.cpu_count()} cpus; client pinned to its own core: {pinned}")

    # 1. throughput
    fast = {"base": "fast", "slots": 4096, "queue_size": 4096}
    with (
        mock_process(args.dialect, fast) as (host, port, pid),
        asyncio.Runner(loop_factory=loop_factory) as r,
    ):
        r.run(run_streams(host, port, args.dialect, 4, 10, False))  # warm-up
        cpu0 = cpu_seconds(pid)
        protos, wall = r.run(
            run_streams(host, port, args.dialect, args.streams, args.tokens, False)
        )
        cpu = cpu_seconds(pid) - cpu0
    events = sum(p.events for p in protos)
    rate = events / wall
    print(
        f"throughput [{args.dialect}]: {args.streams} streams x {args.tokens} tokens: {events} events in {wall:.2f} s = {rate:,.0f} events/s (goal >= 30,000: ratio {rate / 30000:.2f})"
    )
    if cpu > 0:
        print(
            f"  mock CPU {cpu:.2f} s for {wall:.2f} s wall ({cpu / wall:.0%} of a core): {events / cpu:,.0f} events per mock CPU-second"
        )

    # 2. timing fidelity
    prof = {
        "base": "fast",
        "ttft_ms": args.ttft_ms,
        "itl_ms": args.itl_ms,
        "slots": 4096,
        "queue_size": 4096,
    }
    with (
        mock_process(args.dialect, prof) as (host, port, pid),
        asyncio.Runner(loop_factory=loop_factory) as r,
    ):
        r.run(run_streams(host, port, args.dialect, 4, 3, True))  # warm-up
        cpu0 = cpu_seconds(pid)
        protos, wall = r.run(
            run_streams(
                host,
                port,
                args.dialect,
                args.fidelity_streams,
                args.fidelity_tokens,
                True,
                args.ramp_s,
            )
        )
        fcpu = cpu_seconds(pid) - cpu0
    ttft_err: list[float] = []
    itl_err: list[float] = []
    for p in protos:
        if not p.arrivals:
            continue
        first = p.arrivals[0][0]
        ttft_err.append((first - p.t_sent) * 1000 - args.ttft_ms)
        prev = first
        for t, _n in p.arrivals[1:]:
            itl_err.append((t - prev) * 1000 - args.itl_ms)
            prev = t
    ev = sum(p.events for p in protos)
    print(
        f"fidelity [{args.dialect}]: {args.fidelity_streams} streams x {args.fidelity_tokens} tokens (starts spread over {args.ramp_s} s), ttft {args.ttft_ms} ms, itl {args.itl_ms} ms; {ev} events in {wall:.2f} s ({ev / wall:,.0f} events/s)"
    )
    if fcpu > 0:
        print(
            f"  mock CPU {fcpu:.2f} s over {wall:.2f} s wall ({fcpu / wall:.0%} of a core), {fcpu / max(ev, 1) * 1e6:.1f} us per event"
        )
    abs_t = [abs(x) for x in ttft_err]
    abs_i = [abs(x) for x in itl_err]
    print(
        f"  TTFT error ms: p50 {pct(abs_t, 50):.2f}  p99 {pct(abs_t, 99):.2f}  signed median {statistics.median(ttft_err):+.2f}  (n={len(ttft_err)})"
    )
    print(
        f"  ITL  error ms: p50 {pct(abs_i, 50):.2f}  p99 {pct(abs_i, 99):.2f}  signed median {statistics.median(itl_err):+.2f}  (n={len(itl_err)})"
    )
    worst = max(pct(abs_t, 99), pct(abs_i, 99))
    print(f"  p99 error vs goal 5 ms: ratio {worst / 5.0:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
