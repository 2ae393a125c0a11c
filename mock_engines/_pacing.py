"""Stream pacing: every write of a response leaves at its due time, never early.

Deadlines are absolute (``t0 + offset``), so errors do not accumulate. Untimed writes (the
``fast`` profile) go out through ASGI ``send`` at once. Timed streams on our own server are
written by one shared :class:`Ticker` per event loop, which wakes for the earliest due write and
writes every due segment of every stream in one pass straight to the transport (chunked framing
identical to uvicorn's), so 500 concurrent streams cost one timer, not 500 sleeping tasks.
Nothing is logged per token; each timed write's due and actual send time go to the journal entry
(``t_due`` / ``t_sent``, two flat ``array('d')``) so the mock's fidelity can be read server side.

What held timing at 500-1,000 streams (issue 18.2), and the design answer:

* **Collector pauses.** A job used to keep its segments (and each segment's list of frames):
  three collector-tracked objects per frame, 175k at 500 streams, so every full collection
  walked them all and paused every stream (22-74 ms each, 3 or 4 a run; 155-374 ms on a loaded
  2-core machine), long enough for accepted connections to pile up behind it. A :class:`Job`
  now holds flat data only: due and send times in two ``array('d')`` (one object each, nothing
  inside for the collector to visit), the bytes and the journal's frames in one list each; the
  reply's frames are dropped once segmented. (``serve`` also freezes its start-up objects and
  makes full collections rarer: ``mock_engines._cli``.)
* **Loop lag from bursts of requests.** Rendering a request costs 0.3-1 ms of CPU; after any
  hiccup the accepted connections pile up and their renders ran back to back while frames fell
  due. :func:`flush_due` writes what is due before each render, so a due frame waits for at
  most one render, never for a burst of them.
* **A fresh process's descriptor table.** The kernel doubles it (256, 512, 1,024 ...) as
  connections are accepted and, in a multi-threaded process, waits for an RCU grace period each
  time: 8-14 ms with the loop stopped, twice in a fresh mock's first 500-stream ramp. ``serve``
  grows it at start-up and runs on one thread (``mock_engines._server.reserve_descriptors``).
* **The mock's own work counted into TTFT.** The schedule started after the request was parsed
  and rendered (and after any requests ahead of it on the loop); with a free slot it now starts
  when the request arrived, as a real engine's TTFT does (``MockEngineApp._generate``).
* Not the limit: the listen backlog (2048; the kernel queue never overflowed, the loop was not
  accepting), the ticker's shape (already one timer at the earliest deadline of a heap) or
  uvloop/httptools (already used via ``uvicorn[standard]``). Each write is one ``send()`` per
  stream and due moment; writes to different sockets cannot be merged.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from array import array
from typing import Any

from ._asgi import Send
from ._journal import Journal, JournalEntry
from ._segments import Seg

__all__ = ["Job", "Ticker", "flush_due", "pace", "ticker"]


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
    otherwise each goes through ``send`` after sleeping until its due time. The ticker path
    empties ``segs`` once its job holds the data. A timed stream records its schedule and each
    write's send time in ``entry`` (``t_start``, ``t_due``, ``t_sent``).
    """
    timed = bool(segs) and segs[-1].due > 0.0
    if transport is not None and timed:
        # Timed stream on our own server: one shared ticker writes every due frame of every
        # stream in a single pass, straight to the transport (no task switch per event).
        job = Job(segs, t0, transport, entry, journal)
        segs.clear()  # the job holds what it needs; the segments need not outlive this line
        ticker().add(job)
        try:
            await job.finished
        finally:
            job.cancelled = True
        return not job.lost
    mono = time.monotonic
    sink = entry.frames
    sent_at: array[float] | None = None
    if timed:
        entry.t_start = t0
        entry.t_due = array("d", [t0 + s.due for s in segs])
        sent_at = entry.t_sent = array("d")
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
        if first or sent_at is not None:  # untimed streams read the clock once, not per write
            now = mono()
            if sent_at is not None:
                sent_at.append(now)
            if first:
                entry.t_first_byte = now
                first = False
        await send({"type": "http.response.body", "body": seg.data, "more_body": True})
        entry.n_writes += 1
        sink.extend(seg.done)
        journal.notify()
    return True


class Job:
    """The timed writes of one stream, sent by the :class:`Ticker` at their due times.

    Body writes go straight to the transport in HTTP/1.1 chunked framing — exactly the bytes
    uvicorn's ``send`` would write for ``more_body=True`` — so uvicorn's own ``send`` still
    sends the headers and the final zero-length chunk and keeps its state consistent.

    Flat on purpose (see the module docstring): ``due`` (absolute monotonic seconds, also the
    journal's ``t_due``) and ``sent`` are ``array('d')``, ``data`` is one list of bytes, and the
    frames each write completes are ``frames[ends[i-1]:ends[i]]`` — a handful of objects per
    stream for the collector, whatever its length.
    """

    __slots__ = (
        "cancelled",
        "data",
        "due",
        "ends",
        "entry",
        "finished",
        "frames",
        "i",
        "journal",
        "lost",
        "n",
        "sent",
        "transport",
    )

    def __init__(
        self, segs: list[Seg], t0: float, transport: Any, entry: JournalEntry, journal: Journal
    ) -> None:
        self.due = array("d", [t0 + s.due for s in segs])
        self.data = [s.data for s in segs]
        frames: list[bytes] = []
        ends = array("q")
        for s in segs:
            frames.extend(s.done)
            ends.append(len(frames))
        self.frames = frames
        self.ends = ends
        self.n = len(segs)
        self.sent = array("d")
        entry.t_start = t0
        entry.t_due = self.due
        entry.t_sent = self.sent
        self.i = 0
        self.transport = transport
        self.entry = entry
        self.journal = journal
        self.cancelled = False
        self.lost = False
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def next_due(self) -> float:
        return self.due[self.i]

    def fire(self) -> bool:
        """Write every segment due by now; True while more remain."""
        i = self.i
        n = self.n
        due = self.due
        tr = self.transport
        entry = self.entry
        sink = entry.frames
        frames = self.frames
        ends = self.ends
        sent = self.sent
        mono = time.monotonic
        now = mono()
        while i < n and due[i] <= now:
            if tr.is_closing():
                self.lost = True
                break
            data = self.data[i]
            sent.append(now)
            tr.write(b"%x\r\n%b\r\n" % (len(data), data))
            a = ends[i - 1] if i else 0
            b = ends[i]
            if b - a == 1:
                sink.append(frames[a])
            else:
                sink.extend(frames[a:b])
            i += 1
            now = mono()
        if i > self.i:
            if entry.t_first_byte is None:
                entry.t_first_byte = sent[0]
            entry.n_writes += i - self.i
            self.i = i
            self.journal.notify()
        if self.lost or i >= n:
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

    def flush(self) -> None:
        """Write whatever is due right now, ahead of the timer (cheap when nothing is)."""
        heap = self.heap
        if heap and heap[0][0] <= time.monotonic():
            if self.handle is not None:
                self.handle.cancel()
            self._run()

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
        mono = time.monotonic
        while heap and heap[0][0] <= mono():
            _, _, job = heapq.heappop(heap)
            if job.cancelled:
                continue
            if job.fire():
                self.seq += 1
                heapq.heappush(heap, (job.next_due, self.seq, job))
        if heap and heap[0][0] - mono() < 0.001:
            # uvloop timers have 1 ms resolution: a timer for a due time less than 1 ms away
            # may fire early again; wait one tick instead of spinning.
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


def flush_due() -> None:
    """Before a request's render (about 1 ms of CPU): send the frames already due first."""
    t = _TICKERS.get(asyncio.get_running_loop())
    if t is not None:
        t.flush()
