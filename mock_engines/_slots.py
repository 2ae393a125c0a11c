"""Slots, the queue and the counters of one engine.

``slots`` concurrent generations and a FIFO queue in front of them, the way the engines schedule
(llama.cpp's ``--parallel`` slots with ids, vLLM/TGI's running + waiting sequences); the
:class:`Stats` counters feed each dialect's ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections import deque
from dataclasses import dataclass

__all__ = ["Overloaded", "SlotPool", "Stats"]


class Overloaded(Exception):
    """No free slot and no room in the queue."""


class SlotPool:
    """``slots`` concurrent generations and a FIFO queue of at most ``queue_size`` waiters.

    Slots have ids (llama.cpp reports ``id_slot``); the lowest free id is handed out first. A
    released slot goes straight to the oldest waiter, so queue order is honoured.
    """

    def __init__(self, slots: int, queue_size: int) -> None:
        self.slots = slots
        self.queue_size = queue_size
        self._free = list(range(slots))
        self._waiting: deque[asyncio.Future[int]] = deque()
        self.owner: dict[int, int] = {}  # slot id -> journal id
        self.last_owner: dict[int, int] = {}  # slot id -> journal id of its latest task

    @property
    def busy(self) -> int:
        return self.slots - len(self._free)

    @property
    def queued(self) -> int:
        return sum(1 for f in self._waiting if not f.done())

    async def acquire(self, owner: int) -> int:
        if self._free and not self._waiting:
            sid = heapq.heappop(self._free)
            self.owner[sid] = owner
            self.last_owner[sid] = owner
            return sid
        if self.queued >= self.queue_size:
            raise Overloaded
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        try:
            sid = await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(fut.result())
            else:
                with contextlib.suppress(ValueError):
                    self._waiting.remove(fut)
            raise
        self.owner[sid] = owner
        self.last_owner[sid] = owner
        return sid

    def release(self, sid: int) -> None:
        self.owner.pop(sid, None)
        while self._waiting:
            fut = self._waiting.popleft()
            if not fut.done():
                fut.set_result(sid)
                return
        if sid < self.slots:
            heapq.heappush(self._free, sid)


@dataclass(slots=True)
class Stats:
    """Counters behind each dialect's ``/metrics``."""

    requests_total: int = 0
    requests_success: int = 0
    prompt_tokens_total: int = 0
    tokens_predicted_total: int = 0
    prompt_seconds_total: float = 0.0
    predicted_seconds_total: float = 0.0
    n_decode_total: int = 0
    finished_length: int = 0
    finished_stop: int = 0
    finished_eos: int = 0
    ttft_sum: float = 0.0
    ttft_count: int = 0
