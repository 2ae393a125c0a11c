"""Stream pacing: every write of a response leaves at its due time, never early.

Deadlines are absolute (``t0 + offset``), so errors do not accumulate. Untimed writes (the
``fast`` profile) go out through ASGI ``send`` at once. Timed streams on our own server are
written by one shared :class:`Ticker` per event loop, which wakes for the earliest due write and
writes every due segment of every stream in one pass straight to the transport (chunked framing
identical to uvicorn's), so 500 concurrent streams cost one timer, not 500 sleeping tasks.
Nothing is logged per token.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from typing import Any

from ._asgi import Send
from ._journal import Journal, JournalEntry
from ._segments import Seg

__all__ = ["Job", "Ticker", "pace", "ticker"]


async def pace(
    segs: list[Seg],
    t0: float,
    send: Send,
    transport: Any,
    entry: JournalEntry,
    journal: Journal,
) -> bool:
    """Write ``segs`` at ``t0 + seg.due`` each; False when the connection went away.

    With a ``transport`` (our own server) and a timed stream the shared ticker writes them;
    otherwise each goes through ``send`` after sleeping until its due time.
    """
    if transport is not None and segs and segs[-1].due > 0.0:
        # Timed stream on our own server: one shared ticker writes every due frame of every
        # stream in a single pass, straight to the transport (no task switch per event).
        job = Job(segs, t0, transport, entry, journal)
        ticker().add(job)
        try:
            await job.finished
        finally:
            job.cancelled = True
        return not job.lost
    mono = time.monotonic
    sink = entry.frames
    first = True
    sleep = asyncio.sleep
    for seg in segs:
        due = seg.due
        if due > 0.0:
            # Loop: uvloop timers have millisecond resolution and may fire a little
            # early; a frame must never leave before its due time.
            delay = t0 + due - mono()
            while delay > 0.0:
                await sleep(delay)
                delay = t0 + due - mono()
        await send({"type": "http.response.body", "body": seg.data, "more_body": True})
        entry.n_writes += 1
        if first:
            entry.t_first_byte = mono()
            first = False
        sink.extend(seg.done)
        journal.notify()
    return True


class Job:
    """The timed segments of one stream, written by the :class:`Ticker` at their due times.

    Body writes go straight to the transport in HTTP/1.1 chunked framing — exactly the bytes
    uvicorn's ``send`` would write for ``more_body=True`` — so uvicorn's own ``send`` still
    sends the headers and the final zero-length chunk and keeps its state consistent.
    """

    __slots__ = (
        "cancelled",
        "entry",
        "finished",
        "i",
        "journal",
        "lost",
        "segs",
        "t0",
        "transport",
    )

    def __init__(
        self, segs: list[Seg], t0: float, transport: Any, entry: JournalEntry, journal: Journal
    ) -> None:
        self.segs = segs
        self.t0 = t0
        self.i = 0
        self.transport = transport
        self.entry = entry
        self.journal = journal
        self.cancelled = False
        self.lost = False
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def next_due(self) -> float:
        return self.t0 + self.segs[self.i].due

    def fire(self, now: float) -> bool:
        """Write every segment due by ``now``; True while more remain."""
        segs = self.segs
        n = len(segs)
        tr = self.transport
        entry = self.entry
        while self.i < n and self.t0 + segs[self.i].due <= now:
            if tr.is_closing():
                self.lost = True
                break
            seg = segs[self.i]
            data = seg.data
            tr.write(b"%x\r\n%b\r\n" % (len(data), data))
            entry.n_writes += 1
            if entry.t_first_byte is None:
                entry.t_first_byte = time.monotonic()
            entry.frames.extend(seg.done)
            self.i += 1
        self.journal.notify()
        if self.lost or self.i >= n:
            if not self.finished.done():
                self.finished.set_result(None)
            return False
        return True


class Ticker:
    """One timer per event loop for all timed streams: the earliest due job wakes it, and each
    wake-up writes every frame that is due, across all streams, in one pass."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.heap: list[tuple[float, int, Job]] = []
        self.seq = 0
        self.handle: asyncio.TimerHandle | None = None
        self.armed_for = float("inf")

    def add(self, job: Job) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (job.next_due, self.seq, job))
        self._arm()

    def _arm(self) -> None:
        if not self.heap:
            return
        due = self.heap[0][0]
        if self.handle is not None:
            if due >= self.armed_for:
                return
            self.handle.cancel()
        # loop.time() is not time.monotonic() on uvloop: schedule by delay, never by absolute.
        delay = due - time.monotonic()
        self.handle = self.loop.call_later(max(delay, 0.0), self._run)
        self.armed_for = due

    def _run(self) -> None:
        self.handle = None
        self.armed_for = float("inf")
        heap = self.heap
        now = time.monotonic()
        while heap and heap[0][0] <= now:
            _, _, job = heapq.heappop(heap)
            if job.cancelled:
                continue
            if job.fire(now):
                self.seq += 1
                heapq.heappush(heap, (job.next_due, self.seq, job))
        if heap and heap[0][0] - now < 0.001:
            # uvloop timers have 1 ms resolution: a timer for a due time less than 1 ms away
            # may fire early again; wait one tick instead of spinning.
            self.seq += 1
            self.handle = self.loop.call_later(0.001, self._run)
            self.armed_for = heap[0][0]
            return
        self._arm()


_TICKERS: dict[asyncio.AbstractEventLoop, Ticker] = {}


def ticker() -> Ticker:
    loop = asyncio.get_running_loop()
    t = _TICKERS.get(loop)
    if t is None:
        for old in [lp for lp in _TICKERS if lp.is_closed()]:
            del _TICKERS[old]
        t = _TICKERS[loop] = Ticker(loop)
    return t
