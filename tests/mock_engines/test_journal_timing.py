"""The journal's own timing record of a timed stream: per write, when it was due and when it left.

These are the mock's server-side fidelity figures (``benches/bench_mock_engine.py`` reads them).
No test here asserts a speed: they check the record's shape and the pacing contract that a write
never leaves before its due time, on both senders (the shared ticker on our own server, and the
sleep-per-write path under a foreign ASGI server), where the schedule starts, and that a stream in
flight keeps no object per frame alive for the garbage collector to walk (issue 18.2).
"""

from __future__ import annotations

import gc
import itertools
import math

import anyio
import httpx

from llorch_conformance.mock_engines import create_app, load_profile, run_mock_engine
from llorch_conformance.mock_engines._journal import JournalEntry
from llorch_conformance.mock_engines._segments import Seg
from llorch_conformance.mock_engines._wire import Frame

from ._helpers import TIMEOUT, gen_request, sse_data

TTFT_MS = 10.0
ITL_MS = 4.0
TOKENS = 12


def _check_schedule(entry: JournalEntry) -> None:
    assert entry.t_start is not None and entry.t_due is not None and entry.t_sent is not None
    due, sent = entry.t_due, entry.t_sent
    assert len(sent) == entry.n_writes
    assert len(due) >= len(sent)
    # The schedule: absolute times from the start, TTFT first, then one ITL per token.
    assert math.isclose(due[0] - entry.t_start, TTFT_MS / 1000, abs_tol=1e-9)
    for k in range(1, len(due)):
        assert math.isclose(due[k] - due[k - 1], ITL_MS / 1000, abs_tol=1e-9)
    # Never early, and in order.
    assert all(s >= d for d, s in zip(due, sent, strict=False))
    assert all(b >= a for a, b in itertools.pairwise(sent))
    assert entry.t_first_byte == sent[0]
    assert entry.t_received <= entry.t_start <= sent[0]


def test_ticker_records_due_and_sent_per_write() -> None:
    prof = load_profile("fast", ttft_ms=TTFT_MS, itl_ms=ITL_MS)
    with (
        run_mock_engine("vllm", profile=prof) as eng,
        httpx.Client(base_url=eng.base_url, timeout=TIMEOUT) as c,
    ):
        path, body = gen_request("vllm", eng.model, stream=True, max_tokens=TOKENS)
        r = c.post(path, json=body)
        assert r.status_code == 200
        entry = eng.journal.wait_for_sync(
            lambda j: j.last() if j.last() is not None and j.last().completed else None, timeout=5
        )
        _check_schedule(entry)
        assert len(entry.t_due) == len(entry.t_sent) >= TOKENS  # type: ignore[arg-type]
        # A free slot: the schedule starts when the request arrived (the mock's parsing and
        # rendering do not add to the TTFT it models).
        assert entry.t_start == entry.t_received

        # The control plane gives them on request only (they are per write).
        plain = c.get("/__mock__/journal?frames=0").json()["entries"][-1]
        assert "t_due" not in plain and plain["t_start"] == entry.t_start
        timed = c.get("/__mock__/journal?frames=0&timing=1").json()["entries"][-1]
        assert timed["t_due"] == list(entry.t_due)  # type: ignore[arg-type]
        assert timed["t_sent"] == list(entry.t_sent)  # type: ignore[arg-type]


def test_untimed_stream_records_no_schedule() -> None:
    with (
        run_mock_engine("vllm") as eng,
        httpx.Client(base_url=eng.base_url, timeout=TIMEOUT) as c,
    ):
        path, body = gen_request("vllm", eng.model, stream=True, max_tokens=4)
        assert c.post(path, json=body).status_code == 200
        entry = eng.journal.wait_for_sync(
            lambda j: j.last() if j.last() is not None and j.last().completed else None, timeout=5
        )
        assert entry.t_start is None and entry.t_due is None and entry.t_sent is None
        timed = c.get("/__mock__/journal?frames=0&timing=1").json()["entries"][-1]
        assert timed["t_due"] is None and timed["t_sent"] is None


def test_disconnect_keeps_the_schedule_and_the_writes_made() -> None:
    prof = load_profile("fast", ttft_ms=TTFT_MS, itl_ms=ITL_MS)
    with (
        run_mock_engine("vllm", profile=prof) as eng,
        httpx.Client(base_url=eng.base_url, timeout=TIMEOUT) as c,
    ):
        path, body = gen_request("vllm", eng.model, stream=True, max_tokens=400, ignore_eos=True)
        with c.stream("POST", path, json=body) as r:
            got = b""
            for chunk in r.iter_raw():
                got += chunk
                if len(sse_data(got)) >= 3:
                    break
        entry = eng.journal.wait_for_sync(
            lambda j: j.last() if j.last() is not None and j.last().disconnected else None,
            timeout=5,
        )
        eng.journal.wait_for_sync(lambda j: j.in_flight == 0, timeout=5)
        _check_schedule(entry)
        assert 3 <= len(entry.t_sent) < 400 <= len(entry.t_due)  # type: ignore[arg-type]


def test_foreign_asgi_server_path_records_the_same() -> None:
    """Without our server's transport each write sleeps and goes through ASGI ``send``."""
    app = create_app("vllm", profile=load_profile("fast", ttft_ms=TTFT_MS, itl_ms=ITL_MS))

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mock") as c:
            path, body = gen_request("vllm", app.ctx.model, stream=True, max_tokens=TOKENS)
            r = await c.post(path, json=body)
            assert r.status_code == 200

    anyio.run(main)
    entry = app.journal.last()
    assert entry is not None and entry.completed
    _check_schedule(entry)
    assert len(entry.t_due) == len(entry.t_sent) >= TOKENS  # type: ignore[arg-type]


def test_queued_request_schedule_starts_when_its_slot_is_granted() -> None:
    prof = load_profile("fast", ttft_ms=TTFT_MS, itl_ms=ITL_MS, slots=1, queue_size=4)
    with run_mock_engine("vllm", profile=prof) as eng:

        async def one(c: httpx.AsyncClient, tokens: int) -> None:
            path, body = gen_request(
                "vllm", eng.model, stream=True, max_tokens=tokens, ignore_eos=True
            )
            assert (await c.post(path, json=body)).status_code == 200

        async def main() -> None:
            async with (
                httpx.AsyncClient(base_url=eng.base_url, timeout=TIMEOUT) as c,
                anyio.create_task_group() as tg,
            ):
                tg.start_soon(one, c, 50)
                await eng.journal.wait_for(lambda j: eng.ctx.slots.busy == 1, timeout=5)
                tg.start_soon(one, c, TOKENS)  # queued behind the first: one slot

        anyio.run(main)
        first, second = sorted(
            (e for e in eng.journal.entries if e.generation), key=lambda e: e.t_received
        )
        _check_schedule(first)
        _check_schedule(second)
        assert first.t_start == first.t_received
        # The second waited for the only slot: its schedule starts when the first let it go.
        assert first.t_sent is not None and second.t_start is not None
        assert second.t_start >= first.t_sent[-1] > second.t_received


def test_a_stream_in_flight_keeps_no_object_per_frame() -> None:
    """At 500 streams, per-frame objects held by the streams in flight made every full garbage
    collection walk ~175k of them and pause every stream; the ticker's jobs hold flat data."""
    # 300 frames x 50 ms = 15 s: still in flight when a loaded machine gets round to the GC walk
    # (at 4 ms the whole stream was sent before it, and "not completed" failed under load)
    prof = load_profile("fast", ttft_ms=TTFT_MS, itl_ms=50.0)
    with (
        run_mock_engine("vllm", profile=prof) as eng,
        httpx.Client(base_url=eng.base_url, timeout=TIMEOUT) as c,
    ):
        path, body = gen_request("vllm", eng.model, stream=True, max_tokens=300, ignore_eos=True)
        with c.stream("POST", path, json=body) as r:
            it = r.iter_raw()  # kept open: leaving a for loop over it would close the stream
            got = b""
            while len(sse_data(got)) < 3:
                got += next(it)
            gc.collect()
            alive = sum(1 for o in gc.get_objects() if isinstance(o, Frame | Seg))
            entry = eng.journal.last()
            assert entry is not None and not entry.completed and not entry.disconnected
        assert alive < 30, f"{alive} Frame/Seg objects alive for one 300-frame stream in flight"
