"""Benchmark of the mock engines: streamed events/s and timing fidelity at scale, old vs new.

Measures and prints; it never asserts a speed. Every run starts one mock engine as its own process
(``llorch-conformance serve``) pinned to one core, and the client as a second process pinned to
another core (``os.sched_setaffinity``), on uvloop when installed, with a raw ``asyncio.Protocol``
and its garbage collector frozen, so the client costs as little as possible per event and never
pauses to collect. This process only orchestrates and sleeps meanwhile.

1. **Throughput** (no delays, ``fast`` profile with enough slots): ``--streams`` concurrent streams
   of ``--tokens`` tokens each (``ignore_eos``); events counted on the wire (every SSE event ends
   with a blank line; compact JSON never contains one). Printed as events/s and as events per
   CPU-second of the mock (the raw client is usually the bottleneck of the first figure).
2. **Timing fidelity**: for each ``--fidelity-streams`` count, that many concurrent streams of
   ``--fidelity-tokens`` tokens, TTFT ``--ttft-ms`` and ITL ``--itl-ms``, no jitter, starts spread
   over ``--ramp-s``. Errors are ``|measured − configured|`` in ms, at p50 and p99:

   * **server side**, from the mock's own journal (``GET /__mock__/journal?frames=0&timing=1``):
     TTFT = first write − request received; ITL = gap between consecutive writes − the scheduled
     gap (the journal keeps each timed write's scheduled and actual send time);
   * **client side**: TTFT = first byte read − connection made; ITL = gap between reads.

   The client side includes the kernel, the connection accept backlog and the client's own
   scheduling, so it is an upper bound on the mock's error; the server side is the mock's own.

**Warm-up**: each fidelity measurement follows an unmeasured run of the same shape on the same
mock process; ``--cold`` measures a fresh process's first run instead. The two used to differ:
the first run stalled the whole mock 8-14 ms two or three times — not page faults (it takes
~9,000 minor faults, the next run 42, but pre-faulting the heap left the stalls in place) but
the kernel doubling the descriptor table at 256 and 512 open descriptors, which in a process
with two threads waits for an RCU grace period (``perf``: ``accept4 -> expand_files ->
synchronize_rcu``). ``serve`` now grows the table at start-up and keeps one thread
(``mock_engines._server.reserve_descriptors``), so the first run meets the goal as well.

**Old vs new**: with ``--baseline REV`` (default ``84df667``, the main commit before issue 18.2's
timing work) the same runs are made against that revision's mock (extracted with
``git archive`` into a temporary directory), alternating old and new, and the table shows the
median of ``--repeat`` runs per cell. A baseline without the journal's send times shows ``-`` for
its server-side ITL. ``--baseline none`` skips it; a directory is used as an existing checkout.

Goals from the issues: ≥ 30 000 events/s; p99 TTFT and ITL error < 5 ms at 500 streams × 20 ms
ITL. Numbers on a shared machine are noisy: take final figures on a quiet one.

``--realtime`` runs mock and client under SCHED_FIFO (root or CAP_SYS_NICE) so that other work
on a shared machine cannot preempt them: on a loaded 2-core machine that is the difference
between measuring the mock and measuring the neighbours. The header says whether it took effect.

``--py-spy OUT.json`` records a py-spy profile (speedscope format) of the new mock during the
first run of the largest stream count, to see where its time goes (``pip install py-spy``).

Usage: ``python benches/bench_mock_engine.py [--fidelity-streams 500,1000] [--repeat 3]
[--baseline 84df667|none|DIR] [--realtime] [--cold] [--dialect vllm] [--streams 100]
[--tokens 2000] [--py-spy OUT]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import http.client
import json
import multiprocessing
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BASELINE = "84df667"


# -- machine ------------------------------------------------------------------------------------
def _cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return []


def _pin(pid: int, cpu: int | None) -> bool:
    """Pin ``pid`` (0 = this process) to one CPU; False where that is not possible."""
    if cpu is None:
        return False
    try:
        os.sched_setaffinity(pid, {cpu})
        return True
    except (AttributeError, OSError):
        return False


def _realtime(pid: int, on: bool) -> bool:
    """``--realtime``: SCHED_FIFO for ``pid``'s main thread (needs root or CAP_SYS_NICE), so a
    shared machine's other work cannot preempt the mock or the client mid-measurement. Both are
    I/O bound; the kernel's real-time throttling still leaves the other tasks 5 % of each core."""
    if not on:
        return False
    try:
        os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(10))
        return True
    except (AttributeError, OSError):
        return False


def _raise_nofile() -> None:
    """1,000 streams need over 2,000 descriptors between client and mock (inherited by both)."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of a process (Linux /proc), 0.0 where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


# -- the code under test: this tree or a baseline revision ------------------------------------------
@dataclass(frozen=True)
class Code:
    label: str
    root: Path


def baseline_code(spec: str, tmp: Path) -> tuple[Code | None, str]:
    """The baseline to compare with: ``none``, an existing checkout directory, or a git revision
    of this repository extracted with ``git archive`` (symlinks kept). Returns (code, note)."""
    if spec.lower() == "none":
        return None, "baseline: none"
    if Path(spec).is_dir():
        return Code(f"old {Path(spec).name}", Path(spec).resolve()), f"baseline: checkout {spec}"
    dest = tmp / "baseline"
    dest.mkdir()
    try:
        proc = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", spec],
            capture_output=True,
            check=False,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"baseline: skipped (git archive {spec}: {exc})"
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        return None, f"baseline: skipped (git archive {spec}: {err[-1] if err else 'failed'})"
    tar_path = tmp / "baseline.tar"
    tar_path.write_bytes(proc.stdout)
    with tarfile.open(tar_path) as tar:
        tar.extractall(dest, filter="tar")
    if not (dest / "llorch_conformance").exists():
        return None, f"baseline: skipped ({spec} predates the llorch_conformance namespace)"
    return Code(f"old {spec}", dest), f"baseline: git revision {spec}"


@contextlib.contextmanager
def mock_process(
    code: Code, dialect: str, profile: dict[str, object], cpu: int | None, realtime: bool = False
) -> Iterator[tuple[str, int, int]]:
    """``llorch-conformance serve`` of ``code`` on a free port, pinned to ``cpu``; (host, port, pid)."""
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
        path = os.pathsep.join(p for p in (str(code.root), os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
        # cwd too: ``python -m`` puts the working directory first on sys.path, ahead of PYTHONPATH.
        with subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=code.root,
        ) as proc:
            try:
                assert proc.stdout is not None
                line = proc.stdout.readline()
                if not line.startswith("serving "):
                    raise SystemExit(f"{code.label}: mock did not start: {line!r}")
                url = line.split(" on ")[1].split()[0]
                _pin(proc.pid, cpu)
                _realtime(proc.pid, realtime)
                host, port = url.removeprefix("http://").rsplit(":", 1)
                yield host, int(port), proc.pid
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def control(host: str, port: int, method: str, path: str) -> Any:
    """One request to the mock's control plane; the decoded JSON answer."""
    conn = http.client.HTTPConnection(host, port, timeout=60)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise SystemExit(f"control {method} {path}: HTTP {resp.status}")
        return json.loads(body)
    finally:
        conn.close()


# -- the client (runs in its own process) ---------------------------------------------------------
def request_bytes(dialect: str, host: str, port: int, tokens: int, seed: int) -> bytes:
    if dialect == "llamacpp":
        path = "/completion"
        body: dict[str, Any] = {
            "prompt": "bench",
            "n_predict": tokens,
            "stream": True,
            "seed": seed,
            "ignore_eos": True,
        }
    else:
        path = "/v1/completions"
        body = {
            "model": "Qwen/Qwen2.5-0.5B-Instruct",
            "prompt": "bench",
            "max_tokens": tokens,
            "stream": True,
            "seed": seed,
            "ignore_eos": True,
        }
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


class StreamProtocol(asyncio.Protocol):
    """Counts SSE events as they arrive and stamps each read (into an untracked array)."""

    def __init__(self, request: bytes, stamps: bool) -> None:
        self.request = request
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.events = 0
        self.t_sent = 0.0
        self.arrivals = array("d")
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
                self.arrivals.append(now)

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


@dataclass(frozen=True)
class Job:
    host: str
    port: int
    dialect: str
    streams: int
    tokens: int
    stamps: bool
    ramp_s: float
    ttft_ms: float
    itl_ms: float
    cpu: int | None
    realtime: bool = False


def _client(job: Job, out: Any) -> None:
    """Client process: warm up, run the streams, send back (events, wall, ttft errs, itl errs)."""
    _pin(0, job.cpu)
    _realtime(0, job.realtime)
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as r:
        r.run(run_streams(job.host, job.port, job.dialect, 4, 3, job.stamps))  # warm-up
        gc.collect()
        gc.freeze()
        gc.disable()  # a collection in the client would show up as a timing error
        try:
            protos, wall = r.run(
                run_streams(
                    job.host,
                    job.port,
                    job.dialect,
                    job.streams,
                    job.tokens,
                    job.stamps,
                    job.ramp_s,
                )
            )
        finally:
            gc.enable()
    ttft: list[float] = []
    itl: list[float] = []
    for p in protos:
        a = p.arrivals
        if not a:
            continue
        ttft.append(abs((a[0] - p.t_sent) * 1000 - job.ttft_ms))
        itl.extend(abs((a[k] - a[k - 1]) * 1000 - job.itl_ms) for k in range(1, len(a)))
    out.send((sum(p.events for p in protos), wall, ttft, itl))
    out.close()


def run_client(job: Job) -> tuple[int, float, list[float], list[float]]:
    ctx = multiprocessing.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_client, args=(job, send), daemon=True)
    proc.start()
    send.close()
    try:
        if not recv.poll(330):
            raise SystemExit("bench client did not finish in 330 s")
        result: tuple[int, float, list[float], list[float]] = recv.recv()
        return result
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()


# -- measurements ------------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[k]


def server_errors(journal: dict[str, Any], ttft_ms: float) -> tuple[list[float], list[float]]:
    """TTFT and ITL errors (ms, absolute) from the journal's own timestamps."""
    ttft: list[float] = []
    itl: list[float] = []
    for e in journal["entries"]:
        if not e.get("generation") or e.get("status") != 200:
            continue
        sent = e.get("t_sent")
        first = sent[0] if sent else e.get("t_first_byte")
        if first is None:
            continue
        ttft.append(abs((first - e["t_received"]) * 1000 - ttft_ms))
        due = e.get("t_due")
        if sent and due:  # the schedule may be longer than the writes made (a cut stream)
            itl.extend(
                abs(((sent[k] - sent[k - 1]) - (due[k] - due[k - 1])) * 1000)
                for k in range(1, min(len(sent), len(due)))
            )
    return ttft, itl


@contextlib.contextmanager
def py_spy(pid: int, out: str | None) -> Iterator[None]:
    """``py-spy record`` of the mock while the block runs (speedscope JSON), when asked for."""
    if out is None:
        yield
        return
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).is_file():
        print(f"--py-spy: py-spy not found (pip install py-spy); no profile written to {out}")
        yield
        return
    cmd = [exe, "record", "-r", "250", "-f", "speedscope", "-o", out, "-p", str(pid)]
    with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as spy:
        time.sleep(0.5)  # attached before the streams start
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
    print(f"py-spy profile of the mock (open it in https://www.speedscope.app): {out}")


def fidelity_once(
    code: Code,
    n: int,
    args: argparse.Namespace,
    cpus: list[int],
    profile_out: str | None = None,
) -> dict[str, float]:
    prof = {
        "base": "fast",
        "ttft_ms": args.ttft_ms,
        "itl_ms": args.itl_ms,
        "slots": 4096,
        "queue_size": 4096,
    }
    mock_cpu = cpus[0] if len(cpus) >= 2 else None
    client_cpu = cpus[1] if len(cpus) >= 2 else None
    rt = bool(args.realtime) and len(cpus) >= 2  # FIFO tasks sharing one core never yield
    with mock_process(code, args.dialect, prof, mock_cpu, rt) as (host, port, pid):
        job = Job(
            host, port, args.dialect, 4, 3, True, 0.0, args.ttft_ms, args.itl_ms, client_cpu, rt
        )
        run_client(job)  # warm-up: imports, first-request paths
        job = Job(
            host,
            port,
            args.dialect,
            n,
            args.fidelity_tokens,
            True,
            args.ramp_s,
            args.ttft_ms,
            args.itl_ms,
            client_cpu,
            rt,
        )
        if not args.cold:
            run_client(job)  # warm-up of the same shape (see the module docstring)
        control(host, port, "POST", "/__mock__/reset")
        with py_spy(pid, profile_out):
            cpu0 = cpu_seconds(pid)
            events, wall, c_ttft, c_itl = run_client(job)
            cpu = cpu_seconds(pid) - cpu0
        journal = control(host, port, "GET", "/__mock__/journal?frames=0&timing=1")
    s_ttft, s_itl = server_errors(journal, args.ttft_ms)
    return {
        "s_ttft50": pct(s_ttft, 50),
        "s_ttft99": pct(s_ttft, 99),
        "c_ttft50": pct(c_ttft, 50),
        "c_ttft99": pct(c_ttft, 99),
        "s_itl50": pct(s_itl, 50),
        "s_itl99": pct(s_itl, 99),
        "c_itl50": pct(c_itl, 50),
        "c_itl99": pct(c_itl, 99),
        "cpu": cpu / wall * 100,
        "eps": events / wall,
        "streams_seen": float(len(s_ttft)),
    }


def throughput_once(code: Code, args: argparse.Namespace, cpus: list[int]) -> dict[str, float]:
    fast = {"base": "fast", "slots": 4096, "queue_size": 4096}
    mock_cpu = cpus[0] if len(cpus) >= 2 else None
    client_cpu = cpus[1] if len(cpus) >= 2 else None
    rt = bool(args.realtime) and len(cpus) >= 2  # FIFO tasks sharing one core never yield
    with mock_process(code, args.dialect, fast, mock_cpu, rt) as (host, port, pid):
        warm = Job(host, port, args.dialect, 4, 10, False, 0.0, 0.0, 0.0, client_cpu, rt)
        run_client(warm)
        cpu0 = cpu_seconds(pid)
        job = Job(
            host,
            port,
            args.dialect,
            args.streams,
            args.tokens,
            False,
            0.0,
            0.0,
            0.0,
            client_cpu,
            rt,
        )
        events, wall, _, _ = run_client(job)
        cpu = cpu_seconds(pid) - cpu0
    return {"eps": events / wall, "per_cpu": events / cpu if cpu > 0 else float("nan")}


def _med(rows: list[dict[str, float]], key: str) -> float:
    vals = [r[key] for r in rows if r[key] == r[key]]  # drop NaN
    return statistics.median(vals) if vals else float("nan")


def _pair(a: float, b: float) -> str:
    def f(x: float) -> str:
        return "-" if x != x else f"{x:.1f}"

    return f"{f(a)} / {f(b)}"


def _int_list(text: str) -> list[int]:
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of counts: {text!r}"
        ) from None
    if not out or any(x < 1 for x in out):
        raise argparse.ArgumentTypeError(f"stream counts must be >= 1: {text!r}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    # OpenAI has no ignore_eos: its streams would end at the natural EOS, so it is not offered.
    ap.add_argument("--dialect", default="vllm", choices=["llamacpp", "vllm"])
    ap.add_argument("--streams", type=int, default=100, help="throughput: concurrent streams")
    ap.add_argument("--tokens", type=int, default=2000, help="throughput: tokens per stream")
    ap.add_argument(
        "--fidelity-streams",
        type=_int_list,
        default=[500, 1000],
        metavar="N[,N...]",
        help="timing fidelity: concurrent stream counts (default 500,1000)",
    )
    ap.add_argument("--fidelity-tokens", type=int, default=100)
    ap.add_argument("--ramp-s", type=float, default=1.0, help="spread stream starts over this time")
    ap.add_argument("--itl-ms", type=float, default=20.0)
    ap.add_argument("--ttft-ms", type=float, default=100.0)
    ap.add_argument("--repeat", type=int, default=3, help="runs per cell; the median is shown")
    ap.add_argument(
        "--baseline",
        default=DEFAULT_BASELINE,
        help=f"git revision or checkout to compare with, or 'none' (default {DEFAULT_BASELINE})",
    )
    ap.add_argument("--no-throughput", action="store_true", help="skip the throughput runs")
    ap.add_argument(
        "--cold",
        action="store_true",
        help="measure a fresh mock's first run (no warm-up of the same shape before it)",
    )
    ap.add_argument(
        "--realtime",
        action="store_true",
        help="run mock and client under SCHED_FIFO (root or CAP_SYS_NICE) so other work on a "
        "shared machine cannot preempt them; says in the header whether it took effect",
    )
    ap.add_argument(
        "--py-spy",
        metavar="OUT.json",
        default=None,
        help="profile the new mock with py-spy during the first run of the largest stream count",
    )
    args = ap.parse_args()
    if args.repeat < 1 or args.streams < 1 or args.tokens < 1 or args.fidelity_tokens < 2:
        ap.error("--repeat, --streams and --tokens must be >= 1, --fidelity-tokens >= 2")

    _raise_nofile()
    cpus = _cpus()
    pinned = len(cpus) >= 2
    print(
        f"machine: {os.cpu_count()} cpus; mock and client each pinned to a core of their own: "
        f"{pinned}; load average {os.getloadavg()[0]:.2f}"
    )
    if args.realtime and not pinned:
        print("--realtime: not used (needs two cores: mock and client each on its own)")
    elif args.realtime:
        ok = _realtime(0, True)  # probe: the same permission the children will need
        if ok:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        print(f"--realtime: SCHED_FIFO for mock and client: {'yes' if ok else 'not permitted'}")
    with tempfile.TemporaryDirectory(prefix="bench-mock-") as tmp:
        old, note = baseline_code(args.baseline, Path(tmp))
        print(note)
        codes = [c for c in (old, Code("new", ROOT)) if c is not None]

        if not args.no_throughput:
            tp: dict[str, list[dict[str, float]]] = {c.label: [] for c in codes}
            for _ in range(args.repeat):
                for c in codes:
                    tp[c.label].append(throughput_once(c, args, cpus))
            print(
                f"\nthroughput [{args.dialect}]: {args.streams} streams x {args.tokens} tokens, "
                f"no delays, raw client; median of {args.repeat}"
            )
            print(f"  {'code':<14} {'events/s':>10} {'events per mock CPU-s':>22}")
            for c in codes:
                rows = tp[c.label]
                print(
                    f"  {c.label:<14} {_med(rows, 'eps'):>10,.0f} {_med(rows, 'per_cpu'):>22,.0f}"
                )
            if old is not None:
                ratio = _med(tp["new"], "eps") / _med(tp[old.label], "eps")
                print(f"  new / old events/s: {ratio:.2f}")

        fid: dict[tuple[int, str], list[dict[str, float]]] = {}
        spy_n = max(args.fidelity_streams)
        for n in args.fidelity_streams:
            for rep in range(args.repeat):
                for c in codes:
                    spy = args.py_spy if (c.label == "new" and n == spy_n and rep == 0) else None
                    fid.setdefault((n, c.label), []).append(fidelity_once(c, n, args, cpus, spy))

    print(
        f"\ntiming fidelity [{args.dialect}]: TTFT {args.ttft_ms:g} ms, ITL {args.itl_ms:g} ms, "
        f"{args.fidelity_tokens} tokens per stream, starts over {args.ramp_s:g} s; "
        f"|error| in ms as p50 / p99, median of {args.repeat} runs"
        f"{'; first run of a fresh mock (--cold)' if args.cold else '; each after a warm-up run'}"
    )
    head = (
        f"  {'streams':>7}  {'code':<14} {'TTFT srv':>13} {'TTFT cli':>13} "
        f"{'ITL srv':>13} {'ITL cli':>13} {'mock CPU':>9} {'events/s':>9}"
    )
    print(head)
    print("  " + "-" * (len(head) - 2))
    for n in args.fidelity_streams:
        for c in codes:
            rows = fid[(n, c.label)]
            cells = [
                _pair(_med(rows, f"{side}_{m}50"), _med(rows, f"{side}_{m}99"))
                for m, side in (("ttft", "s"), ("ttft", "c"), ("itl", "s"), ("itl", "c"))
            ]
            print(
                f"  {n:>7}  {c.label:<14} {cells[0]:>13} {cells[1]:>13} {cells[2]:>13} "
                f"{cells[3]:>13} {_med(rows, 'cpu'):>8.0f}% {_med(rows, 'eps'):>9,.0f}"
            )
    worst = (
        max(
            _med(fid[(n, "new")], k)
            for n in args.fidelity_streams
            if n <= 500
            for k in ("s_ttft99", "s_itl99", "c_ttft99", "c_itl99")
        )
        if any(n <= 500 for n in args.fidelity_streams)
        else float("nan")
    )
    if worst == worst:
        print(f"  goal: p99 < 5 ms up to 500 streams; worst p99 of new there: {worst:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
