"""A misbehaving engine on a real socket against all five HTTP adapters (issue 16 items 3, 4, 14, 15).

The engine is a small raw asyncio HTTP/1.1 server (no framework that would tidy up what it sends):
every response closes its connection, and each instance plays one behaviour — compression bombs on
the stream and on the control GETs, slowloris, garbage framing, a line that never ends, bad UTF-8,
impossible token counts, non-ASCII headers both ways, and 429/503 with ``Retry-After``. Each case
asserts what a caller relies on: exactly one terminal event with the mapped error, within the
deadline plus a little slack, bounded memory, and a healthy stream on the same event loop whose
tokens keep coming (no gap over a second — a generous bound, not a benchmark).
"""

from __future__ import annotations

import asyncio
import gzip
import importlib
import json
import resource
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import anyio
import pytest

from llorch_conformance.adapters.api import TaskRequest, TokenEvent, WorkerError
from llorch_conformance.adapters.http_util import ACCEPT_ENCODING, HttpClientConfig, RetryPolicy
from llorch_conformance.adapters.llamacpp import LlamaCppAdapter
from llorch_conformance.adapters.openai import OpenAIAdapter
from llorch_conformance.adapters.tgi import TgiAdapter
from llorch_conformance.adapters.triton import TritonAdapter
from llorch_conformance.adapters.vllm import VllmAdapter

DIALECTS = ("llamacpp", "vllm", "tgi", "triton", "openai")
AREA = "engine (adapters vs a hostile engine)"
DEADLINE_MS = 3000
SLOWLORIS_DEADLINE_MS = 1500
#: Slack over the deadline for a terminal event on a loaded 2-core CI machine.
SLACK_S = 1.5
#: Largest allowed growth of the process's peak RSS during one case.
MAX_RSS_GROWTH_MB = 96.0
#: Largest allowed silence between two tokens of the healthy neighbour stream.
MAX_NEIGHBOUR_GAP_S = 1.0
#: The decompressed size of the bombs (compressed: about a thousandth of it).
BOMB_BYTES = 128 << 20
#: Every coding the adapters advertise (br only where the brotli module is installed).
CODINGS = [c.strip() for c in ACCEPT_ENCODING.split(",")]

HTTP = HttpClientConfig(
    connect_timeout_s=2.0, first_byte_timeout_s=2.0, inter_chunk_timeout_s=2.0, total_timeout_s=3.0
)
RETRY = RetryPolicy(base_ms=1, cap_ms=5, seed=3)
MODEL = "hostile-model"
TOKENS = ("Hel", "lo", " wor", "ld")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- wire pieces ---------------------------------------------------------------------------------
@cache
def _bomb(coding: str) -> bytes:
    """``BOMB_BYTES`` of newlines, compressed (built once; ~0.1 s)."""
    if coding == "br":
        brotli = importlib.import_module("brotli")  # present: ACCEPT_ENCODING names br
        return bytes(brotli.compress(b"\n" * BOMB_BYTES, quality=1))
    comp = zlib.compressobj(9, zlib.DEFLATED, 31 if coding == "gzip" else 15)
    block = b"\n" * (1 << 20)
    parts = [comp.compress(block) for _ in range(BOMB_BYTES >> 20)]
    return b"".join(parts) + comp.flush()


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def stream_frames(dialect: str, prompt_tokens: Any = 3, completion_tokens: Any = None) -> bytes:
    """A well-formed stream of ``TOKENS`` in the dialect, reporting the given counts."""
    n = len(TOKENS)
    done = completion_tokens if completion_tokens is not None else n
    out: list[bytes] = []
    if dialect == "llamacpp":
        for i, t in enumerate(TOKENS):
            out.append(_sse({"content": t, "stop": False, "tokens_predicted": i + 1}))
        out.append(
            _sse(
                {
                    "content": "",
                    "stop": True,
                    "stop_type": "eos",
                    "tokens_predicted": done,
                    "tokens_evaluated": prompt_tokens,
                }
            )
        )
    elif dialect in ("vllm", "openai"):
        for t in TOKENS:
            out.append(_sse({"choices": [{"index": 0, "delta": {"content": t}}]}))
        out.append(
            _sse(
                {
                    "choices": [
                        {"index": 0, "delta": {}, "finish_reason": "stop", "stop_reason": None}
                    ]
                }
            )
        )
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": done}
        out.append(_sse({"choices": [], "usage": usage}))
        out.append(b"data: [DONE]\n\n")
    elif dialect == "tgi":
        for i, t in enumerate(TOKENS):
            token = {"id": i, "text": t, "logprob": 0.0, "special": False}
            out.append(_sse({"index": i + 1, "token": token, "generated_text": None}))
        details = {
            "finish_reason": "eos_token",
            "generated_tokens": done,
            "input_length": prompt_tokens,
        }
        last = {"id": 2, "text": "</s>", "logprob": 0.0, "special": True}
        out.append(
            _sse(
                {
                    "index": n + 1,
                    "token": last,
                    "generated_text": "".join(TOKENS),
                    "details": details,
                }
            )
        )
    elif dialect == "triton":
        for t in TOKENS:
            out.append(_sse({"text_output": t, "num_output_tokens": 1}))
        out.append(
            _sse(
                {
                    "text_output": "",
                    "finish_reason": "stop",
                    "num_input_tokens": prompt_tokens,
                    "num_output_tokens": 0 if completion_tokens is None else done,
                }
            )
        )
    else:  # pragma: no cover
        raise AssertionError(dialect)
    return b"".join(out)


# -- the engine ---------------------------------------------------------------------------------
@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, bytes]


Behaviour = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]


def head(status: int = 200, ctype: str = "text/event-stream", **extra: str | bytes) -> bytes:
    lines = [
        f"HTTP/1.1 {status} X".encode(),
        f"Content-Type: {ctype}".encode(),
        b"Connection: close",
    ]
    for name, value in extra.items():
        raw = value if isinstance(value, bytes) else value.encode("latin-1")
        lines.append(name.replace("_", "-").encode() + b": " + raw)
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def send(
    writer: asyncio.StreamWriter, header: bytes, body: bytes, *, length: bool = True
) -> None:
    if length:
        header = header[:-2] + f"Content-Length: {len(body)}\r\n\r\n".encode()
    writer.write(header + body)
    await writer.drain()


@dataclass
class HostileEngine:
    """One behaviour for the stream POST and one for every GET, on 127.0.0.1:<free port>."""

    on_stream: Behaviour
    on_get: Behaviour | None = None
    seen: list[Request] = field(default_factory=list)
    server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aenter__(self) -> HostileEngine:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        if hasattr(self.server, "close_clients"):
            self.server.close_clients()
        with anyio.move_on_after(2):
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
            lines = raw.split(b"\r\n")
            method, path, _ = lines[0].decode("latin-1").split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if b":" in line:
                    k, v = line.split(b":", 1)
                    headers[k.strip().lower().decode("latin-1")] = v.strip()
            size = int(headers.get("content-length", b"0"))
            if size:
                await reader.readexactly(size)
            req = Request(method, path, headers)
            self.seen.append(req)
            if method == "POST":
                await self.on_stream(req, writer)
            elif self.on_get is not None:
                await self.on_get(req, writer)
            else:
                await send(writer, head(404, "application/json"), b'{"error":"not here"}')
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def stream_of(body: bytes, **extra: str | bytes) -> Behaviour:
    async def behave(req: Request, writer: asyncio.StreamWriter) -> None:
        await send(writer, head(**extra), body)

    return behave


async def paced_stream(
    writer: asyncio.StreamWriter, frames: list[bytes], interval_s: float
) -> None:
    writer.write(head())  # no Content-Length: the body ends when the connection closes
    for frame in frames:
        writer.write(frame)
        await writer.drain()
        await asyncio.sleep(interval_s)


# -- adapters and the healthy neighbour --------------------------------------------------------
_CLASSES: dict[str, Any] = {
    "llamacpp": LlamaCppAdapter,
    "vllm": VllmAdapter,
    "tgi": TgiAdapter,
    "triton": TritonAdapter,
    "openai": OpenAIAdapter,
}


def adapter_for(dialect: str, url: str) -> Any:
    config: dict[str, Any] = {"http": HTTP, "retry": RETRY}
    if dialect == "openai":
        config["api_key"] = "sk-hostile-test-key-0123456789"
    if dialect in ("openai", "vllm", "triton"):
        config["model"] = MODEL
    if dialect == "openai":
        config["endpoint"] = "chat"
    return _CLASSES[dialect](url, **config)


def request(task_id: str, deadline_ms: int = DEADLINE_MS, **extra: Any) -> TaskRequest:
    return TaskRequest(
        task_id=task_id,
        session_id="s-hostile",
        workload="completion",
        model_ref=f"hf:{MODEL}",
        engine="llamacpp",
        ctx=4096,
        priority="interactive",
        max_tokens=16,
        deadline_ms=deadline_ms,
        seed=1,
        prompt="Hello",
        extra=extra,
    )


class Neighbour:
    """A healthy llama.cpp stream on the same loop; records the largest gap between its tokens."""

    def __init__(self) -> None:
        frames = [
            _sse({"content": "x", "stop": False, "tokens_predicted": i + 1}) for i in range(600)
        ]
        self.engine = HostileEngine(lambda req, w: paced_stream(w, frames, 0.02))
        self.worst_gap = 0.0
        self.tokens = 0
        self.measuring = True
        self.flowing = anyio.Event()  # set at the second token

    async def run(self, adapter: Any) -> None:
        last = time.monotonic()
        async for ev in adapter.submit(request("neighbour", deadline_ms=60_000)):
            now = time.monotonic()
            if ev.kind == "token" and self.measuring:
                self.worst_gap = max(self.worst_gap, now - last)
                self.tokens += 1
                if self.tokens == 2:
                    self.flowing.set()
            last = now


@dataclass
class Outcome:
    events: list[TokenEvent]
    elapsed_s: float
    rss_growth_mb: float
    neighbour_gap_s: float
    neighbour_tokens: int

    @property
    def terminal(self) -> TokenEvent:
        return self.events[-1]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run_case(dialect: str, engine: HostileEngine, req: TaskRequest, figures: Any) -> Outcome:
    """Stream ``req`` against ``engine`` while a healthy neighbour streams on the same loop."""
    neighbour = Neighbour()
    async with engine, neighbour.engine:
        healthy = LlamaCppAdapter(neighbour.engine.url, http=HTTP, retry=RETRY)
        hostile = adapter_for(dialect, engine.url)
        events: list[TokenEvent] = []
        async with healthy, hostile, anyio.create_task_group() as tg:
            tg.start_soon(neighbour.run, healthy)
            with anyio.fail_after(3.0):  # the neighbour is flowing before the hostile case
                await neighbour.flowing.wait()
            rss0 = _peak_rss_mb()
            t0 = time.monotonic()
            with anyio.fail_after(req.deadline_ms / 1000 + 20):  # a hang fails, never blocks CI
                async for ev in hostile.submit(req):
                    events.append(ev)
            elapsed = time.monotonic() - t0
            neighbour.measuring = False
            growth = _peak_rss_mb() - rss0
            await healthy.cancel("neighbour")
    figures.record(
        AREA,
        1,
        worst_latency_s=elapsed,
        deadline_s=req.deadline_ms / 1000,
        peak_rss_mb=_peak_rss_mb(),
    )
    return Outcome(events, elapsed, growth, neighbour.worst_gap, neighbour.tokens)


def assert_one_terminal(out: Outcome, *, code: str | None, deadline_ms: int = DEADLINE_MS) -> None:
    """Exactly one terminal event, last; the right mapped code; in time; bounded; no stalled loop."""
    kinds = [e.kind for e in out.events]
    assert sum(k in ("end", "error") for k in kinds) == 1, kinds
    assert out.terminal.kind in ("end", "error")
    if code is None:
        assert out.terminal.kind == "end", out.terminal
    else:
        assert out.terminal.kind == "error", out.terminal
        assert out.terminal.data["code"] == code, out.terminal.data
        assert not str(out.terminal.data.get("message", "")).startswith("adapter bug"), out.terminal
    assert out.elapsed_s <= deadline_ms / 1000 + SLACK_S, f"took {out.elapsed_s:.2f} s"
    assert out.rss_growth_mb <= MAX_RSS_GROWTH_MB, f"peak RSS grew {out.rss_growth_mb:.0f} MB"
    assert out.neighbour_gap_s <= MAX_NEIGHBOUR_GAP_S, (
        f"the healthy neighbour waited {out.neighbour_gap_s:.2f} s for a token"
    )


# -- item 3: compression bombs on the stream ----------------------------------------------------
@pytest.mark.anyio
@pytest.mark.parametrize("coding", CODINGS)
@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_compressed_bomb_stream_ends_fast_with_a_protocol_error(
    dialect: str, coding: str, hostile_figures: Any
) -> None:
    engine = HostileEngine(stream_of(_bomb(coding), Content_Encoding=coding))
    out = await run_case(dialect, engine, request(f"bomb-{coding}"), hostile_figures)
    assert_one_terminal(out, code="INTERNAL")
    assert "expands more than" in out.terminal.data["message"]


@pytest.mark.anyio
@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_compressed_stream_that_is_no_bomb_still_streams(
    dialect: str, hostile_figures: Any
) -> None:
    """The bounded decoder is a decoder: a gzip-compressed ordinary stream ends normally."""
    engine = HostileEngine(
        stream_of(gzip.compress(stream_frames(dialect)), Content_Encoding="gzip")
    )
    out = await run_case(dialect, engine, request("gzip-ok"), hostile_figures)
    assert_one_terminal(out, code=None)
    assert "".join(e.data["t"] for e in out.events if e.kind == "token") == "".join(TOKENS)


# -- item 4: bombs on the control GETs ----------------------------------------------------------
@pytest.mark.anyio
@pytest.mark.parametrize("dialect", DIALECTS)
async def test_health_and_version_refuse_a_compressed_bomb_fast(
    dialect: str, hostile_figures: Any
) -> None:
    bomb = _bomb("gzip")

    async def get(req: Request, writer: asyncio.StreamWriter) -> None:
        await send(writer, head(200, "application/json", Content_Encoding="gzip"), bomb)

    engine = HostileEngine(stream_of(b""), on_get=get)
    async with engine:
        adapter = adapter_for(dialect, engine.url)
        async with adapter:
            rss0 = _peak_rss_mb()
            t0 = time.monotonic()
            with anyio.fail_after(30):
                health = await adapter.health()
                with pytest.raises(WorkerError) as caught:
                    await adapter.engine_version()
            elapsed = time.monotonic() - t0
            growth = _peak_rss_mb() - rss0
    hostile_figures.record(AREA, 1, worst_latency_s=elapsed, deadline_s=2 * HTTP.total_timeout_s)
    assert not health.ready, health
    assert caught.value.code.value == "INTERNAL", caught.value
    assert "expands more than" in caught.value.message or "larger than" in caught.value.message
    assert elapsed <= 2 * HTTP.total_timeout_s, f"took {elapsed:.2f} s"
    assert growth <= MAX_RSS_GROWTH_MB, f"peak RSS grew {growth:.0f} MB"


# -- slowloris, garbage, huge lines, bad UTF-8 --------------------------------------------------
@pytest.mark.anyio
@pytest.mark.parametrize("dialect", DIALECTS)
async def test_slowloris_one_byte_at_a_time_meets_the_deadline(
    dialect: str, hostile_figures: Any
) -> None:
    body = stream_frames(dialect)

    async def drip(req: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head())
        for i in range(len(body)):
            writer.write(body[i : i + 1])
            await writer.drain()
            await asyncio.sleep(0.1)

    out = await run_case(
        dialect, HostileEngine(drip), request("slow", SLOWLORIS_DEADLINE_MS), hostile_figures
    )
    assert_one_terminal(out, code="DEADLINE_UNMET", deadline_ms=SLOWLORIS_DEADLINE_MS)


GARBAGE = b"data: \x00\xff{{{ not json at all\n\n" + bytes(range(256)) * 64 + b"\n\n"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("case", "body", "code"),
    [
        ("garbage-framing", GARBAGE, "INTERNAL"),
        ("huge-line-no-newline", b"data: " + b"a" * (8 << 20), "INTERNAL"),
        ("garbage-then-eof", bytes(range(1, 256)) * 512, "WORKER_RESET"),
    ],
)
@pytest.mark.parametrize("dialect", DIALECTS)
async def test_broken_framing_is_one_mapped_error(
    dialect: str, case: str, body: bytes, code: str, hostile_figures: Any
) -> None:
    out = await run_case(dialect, HostileEngine(stream_of(body)), request(case), hostile_figures)
    assert_one_terminal(out, code=code)


@pytest.mark.anyio
@pytest.mark.parametrize("dialect", DIALECTS)
async def test_bad_utf8_in_tokens_is_replaced_not_fatal(dialect: str, hostile_figures: Any) -> None:
    body = stream_frames(dialect).replace(b"wor", b"w\xff\xfer", 1)
    out = await run_case(dialect, HostileEngine(stream_of(body)), request("utf8"), hostile_figures)
    assert_one_terminal(out, code=None)
    text = "".join(e.data["t"] for e in out.events if e.kind == "token")
    assert "\ufffd" in text


# -- item 15: impossible counts, non-ASCII headers ----------------------------------------------
@pytest.mark.anyio
@pytest.mark.parametrize(
    ("case", "prompt", "completion"),
    [("negative", -5, -7), ("absurd", 10**30, 10**30), ("negative-prompt", -1, None)],
)
@pytest.mark.parametrize("dialect", DIALECTS)
async def test_impossible_token_counts_are_the_engines_protocol_error(
    dialect: str, case: str, prompt: int, completion: int | None, hostile_figures: Any
) -> None:
    body = stream_frames(dialect, prompt, completion)
    out = await run_case(dialect, HostileEngine(stream_of(body)), request(case), hostile_figures)
    assert_one_terminal(out, code="INTERNAL")
    assert "impossible" in out.terminal.data["message"]
    assert not [e for e in out.events if e.kind == "end"], "an impossible count reached end"


@pytest.mark.anyio
@pytest.mark.parametrize("dialect", DIALECTS)
async def test_non_ascii_correlation_id_and_engine_headers_stream_normally(
    dialect: str, hostile_figures: Any
) -> None:
    body = stream_frames(dialect)
    engine = HostileEngine(
        stream_of(body, X_Correlation_Id=b"t\xe2che-\xff", X_Engine_Note=b"\xc3\xa9t\xc3\xa9")
    )
    cid = "tâche-ü\u2028 ok\ud800"
    out = await run_case(dialect, engine, request("cid", correlation_id=cid), hostile_figures)
    assert_one_terminal(out, code=None)
    sent = [r.headers.get("x-correlation-id") for r in engine.seen if r.method == "POST"]
    assert sent and all(s is not None and s.isascii() for s in sent), sent


# -- item 14: 429/503 with Retry-After against the deadline -------------------------------------
@pytest.mark.anyio
@pytest.mark.parametrize(("status", "after_s"), [(429, 30), (503, 10)])
@pytest.mark.parametrize("dialect", DIALECTS)
async def test_retry_after_beyond_the_deadline_ends_at_once_with_pool_unavailable(
    dialect: str, status: int, after_s: int, hostile_figures: Any
) -> None:
    async def busy(req: Request, writer: asyncio.StreamWriter) -> None:
        await send(
            writer, head(status, "application/json", Retry_After=str(after_s)), b'{"error":"busy"}'
        )

    out = await run_case(dialect, HostileEngine(busy), request(f"busy-{status}"), hostile_figures)
    assert_one_terminal(out, code="POOL_UNAVAILABLE")
    assert out.terminal.data["retriable"] is True
    assert out.terminal.data["retry_after_ms"] == after_s * 1000
    assert out.elapsed_s < DEADLINE_MS / 1000 / 2, "waited for a Retry-After it could not use"


@pytest.mark.anyio
@pytest.mark.parametrize("dialect", ["llamacpp", "vllm"])
async def test_a_short_retry_after_is_still_waited_for(dialect: str, hostile_figures: Any) -> None:
    """The other side of item 14: a Retry-After that fits the deadline is honoured, then streams."""
    calls = {"n": 0}
    body = stream_frames(dialect)

    async def once_busy(req: Request, writer: asyncio.StreamWriter) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            await send(writer, head(429, "application/json", Retry_After="1"), b'{"error":"busy"}')
        else:
            await send(writer, head(), body)

    out = await run_case(
        dialect, HostileEngine(once_busy), request("busy-then-ok"), hostile_figures
    )
    assert_one_terminal(out, code=None)
    assert out.elapsed_s >= 0.9 and calls["n"] == 2
