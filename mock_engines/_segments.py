"""Writes of a response body: frames grouped by due time, and the cuts faults make in them.

A :class:`Seg` is one write: the bytes, when they are due (seconds after the start) and the frames
it completes (for the journal). The engine's sender and the ticker write segments; the write-stage
faults (:mod:`mock_engines._faults`) re-split, delay or truncate them with the helpers here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ._wire import Frame

__all__ = ["Seg", "corrupt", "mid_char_cuts", "segments", "split_segments", "truncate"]


@dataclass(slots=True)
class Seg:
    """One write: ``data`` due ``due`` seconds after the start, completing the frames ``done``."""

    due: float
    data: bytes
    done: list[bytes]


def corrupt(data: bytes) -> bytes | None:
    """``data`` without its last ``}`` (invalid JSON), or None when it holds none."""
    i = data.rfind(b"}")
    if i == -1:
        return None
    return data[:i] + data[i + 1 :]


def segments(frames: list[Frame], offsets: list[float]) -> list[Seg]:
    """Group frames into writes: consecutive frames due at the same moment form one write."""
    segs: list[Seg] = []
    last = len(offsets) - 1
    cur_due = -1.0
    buf: list[bytes] = []
    for f in frames:
        s = f.step
        due = 0.0 if s < 0 else offsets[s if s <= last else last]
        if buf and due != cur_due:
            segs.append(Seg(cur_due, b"".join(buf), buf))
            buf = []
        cur_due = due
        buf.append(f.data)
    if buf:
        segs.append(Seg(cur_due, b"".join(buf), buf))
    return segs


def split_segments(segs: list[Seg], cuts: Callable[[bytes], list[int]]) -> list[Seg]:
    """Re-split the concatenated body at ``cuts(body)``; each piece is due with its last byte."""
    body = b"".join(s.data for s in segs)
    if not body:
        return segs
    # byte offset -> due, and frame completion points
    ends: list[tuple[int, float, list[bytes]]] = []
    pos = 0
    for s in segs:
        pos += len(s.data)
        ends.append((pos, s.due, s.done))
    points = sorted({c for c in cuts(body) if 0 < c < len(body)} | {len(body)})
    out: list[Seg] = []
    start = 0
    ei = 0
    for p in points:
        done: list[bytes] = []
        while ei < len(ends) and ends[ei][0] <= p:
            done.extend(ends[ei][2])
            ei += 1
        # due time of the byte at p-1
        due = 0.0
        acc = 0
        for s in segs:
            acc += len(s.data)
            if acc >= p:
                due = s.due
                break
        out.append(Seg(due, body[start:p], done))
        start = p
    return out


def mid_char_cuts(body: bytes) -> list[int]:
    """Positions inside multi-byte UTF-8 characters: one after every lead byte."""
    return [i + 1 for i, b in enumerate(body) if b >= 0xC0]


def truncate(segs: list[Seg], nbytes: int) -> list[Seg]:
    """The first ``nbytes`` bytes of the writes (a cut write completes no frame)."""
    out: list[Seg] = []
    left = nbytes
    for s in segs:
        if left <= 0:
            break
        if len(s.data) <= left:
            out.append(s)
            left -= len(s.data)
        else:
            out.append(Seg(s.due, s.data[:left], []))
            left = 0
    return out
