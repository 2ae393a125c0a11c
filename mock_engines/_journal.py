"""The journal: what a mock engine saw and sent, and when (DESIGN.md principle 3).

One :class:`JournalEntry` per HTTP request: method, path, query, redacted headers, body,
monotonic timestamps (received, first body byte, last body byte), status, the frames sent, the
fault applied, and whether and when the client disconnected. A timed stream also keeps, per
write, when it was due and when it went out (``t_due`` / ``t_sent``: two flat ``array('d')``,
16 bytes a write, no object per token and no log line) — the mock's own timing fidelity. Counters cover open connections,
in-flight requests and cancels seen (client went away before the response was complete).

Threading: the server runs in its own thread (the in-process runner) while tests read and wait
in theirs. Writes happen on the server's event loop; readers take snapshots under a lock.
Waiters are woken through a :class:`threading.Condition` (``wait_for_sync``) or an
``asyncio.Event`` set thread-safely on the waiter's own loop (``wait_for``); notification is
skipped entirely while nobody waits, so the per-frame path stays cheap.

Timestamps are ``time.monotonic()`` seconds so tests can compare them with their own clock.
Secrets never reach the journal: headers are redacted on entry with the project's one style
(``****`` + the first 6 hex digits of the secret's SHA-256).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SENSITIVE_HEADERS", "Journal", "JournalEntry", "redact_headers", "redact_secret"]

SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "openai-api-key",
        "cookie",
        "set-cookie",
        "x-goog-api-key",
    }
)

_BODY_KEEP = 1 << 20  # bodies above 1 MiB are kept truncated (a huge-body test sends 32 MiB)
#: The journal's default byte budget: bodies, frames and headers of the entries it keeps.
DEFAULT_MAX_BYTES = 64 << 20
#: Bookkeeping bytes counted per entry on top of its body, frames and headers.
_ENTRY_OVERHEAD = 256


def redact_secret(secret: str) -> str:
    """``"test"`` → ``"****9f86d0"``: stable, comparable, never reversible."""
    return "****" + hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()[:6]


def _redact_value(name: str, value: str) -> str:
    if name in ("authorization", "proxy-authorization"):
        scheme, sep, cred = value.partition(" ")
        if sep and cred:
            return f"{scheme} {redact_secret(cred)}"
    return redact_secret(value)


def redact_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Lower-cased header pairs with credentials replaced by their redacted form."""
    out: list[tuple[str, str]] = []
    for name, value in headers:
        n = name.lower()
        out.append((n, _redact_value(n, value) if n in SENSITIVE_HEADERS else value))
    return out


@dataclass(slots=True, eq=False)
class JournalEntry:
    """One request as the mock saw it. Times are ``time.monotonic()`` seconds."""

    id: int
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    t_received: float
    body_size: int = 0
    route: str | None = None
    generation: bool = False
    status: int | None = None
    t_first_byte: float | None = None
    t_last_byte: float | None = None
    frames: list[bytes] = field(default_factory=list)
    n_writes: int = 0
    fault: str | None = None
    fault_note: str | None = None
    disconnected: bool = False
    t_disconnected: float | None = None
    completed: bool = False
    aborted: bool = False
    plan: Any = None
    #: Timed streams only (otherwise ``None``): when the schedule started (the slot was granted)
    #: and, one item per write, when the write was due and when it went out.
    t_start: float | None = None
    t_due: array[float] | None = None
    t_sent: array[float] | None = None
    #: bytes this entry counts against the journal's budget (-1 once it was dropped)
    kept_bytes: int = field(default=0, repr=False, compare=False)

    def size(self) -> int:
        """Bytes this entry holds: body, frames, headers, write times and a fixed overhead."""
        times = 0
        if self.t_due is not None:
            times += self.t_due.itemsize * len(self.t_due)
        if self.t_sent is not None:
            times += self.t_sent.itemsize * len(self.t_sent)
        return (
            len(self.body)
            + sum(map(len, self.frames))
            + sum(len(k) + len(v) for k, v in self.headers)
            + times
            + _ENTRY_OVERHEAD
        )

    def header(self, name: str) -> str | None:
        """The (redacted) value of the last header called ``name``."""
        n = name.lower()
        value: str | None = None
        for k, v in self.headers:
            if k == n:
                value = v
        return value

    def json_body(self) -> Any:
        import json

        return json.loads(self.body)

    def to_dict(self, *, frames: bool = True, timing: bool = False) -> dict[str, Any]:
        """JSON-ready view; ``timing`` adds the per-write ``t_due`` / ``t_sent`` lists."""
        d: dict[str, Any] = {
            "id": self.id,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": [[k, v] for k, v in self.headers],
            "body": self.body.decode("utf-8", "replace"),
            "body_size": self.body_size,
            "route": self.route,
            "generation": self.generation,
            "status": self.status,
            "t_received": self.t_received,
            "t_first_byte": self.t_first_byte,
            "t_last_byte": self.t_last_byte,
            "fault": self.fault,
            "fault_note": self.fault_note,
            "disconnected": self.disconnected,
            "t_disconnected": self.t_disconnected,
            "completed": self.completed,
            "aborted": self.aborted,
            "n_frames": len(self.frames),
            "n_writes": self.n_writes,
            "t_start": self.t_start,
        }
        if timing:
            d["t_due"] = self.t_due.tolist() if self.t_due is not None else None
            d["t_sent"] = self.t_sent.tolist() if self.t_sent is not None else None
        if frames:
            d["frames"] = [f.decode("utf-8", "replace") for f in self.frames]
        return d


class Journal:
    """Thread-safe record of requests and connection counters, with waiting helpers."""

    def __init__(self, max_entries: int = 10_000, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        """Keep the newest ``max_entries`` requests within ``max_bytes`` (bodies, frames and
        headers): a long-running ``serve`` or a hostile client must not grow the journal
        without bound. The oldest entries go first, and the journal says how many it dropped
        (:attr:`dropped_entries`, ``to_dict()["dropped"]``); the newest entry is always kept,
        whatever its size. Counters stay exact. An entry's frames are counted when it
        finishes (the per-frame path stays free of bookkeeping)."""
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._entries: deque[JournalEntry] = deque()
        self.max_entries = max(1, max_entries)
        self.max_bytes = max_bytes
        #: bytes held by the kept entries (frames of unfinished entries not yet counted)
        self.bytes = 0
        self.dropped_entries = 0
        self.dropped_bytes = 0
        self._next_id = 1
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._sync_waiters = 0
        self.open_connections = 0
        self.connections_total = 0
        self.in_flight = 0
        self.cancels = 0
        self.requests_total = 0

    # -- writer side (server loop) ---------------------------------------------------------
    def new_entry(
        self,
        method: str,
        path: str,
        query: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
    ) -> JournalEntry:
        now = time.monotonic()
        kept = body if len(body) <= _BODY_KEEP else body[:_BODY_KEEP]
        with self._lock:
            entry = JournalEntry(
                id=self._next_id,
                method=method,
                path=path,
                query=query,
                headers=redact_headers(headers),
                body=kept,
                t_received=now,
                body_size=len(body),
            )
            self._next_id += 1
            entry.kept_bytes = entry.size()
            self.bytes += entry.kept_bytes
            self._entries.append(entry)
            self._evict()
            self.requests_total += 1
            self.in_flight += 1
        self.notify()
        return entry

    def finish(self, entry: JournalEntry) -> None:
        """Mark the end of a request's handling (response complete, aborted or client gone)."""
        size = entry.size()
        with self._lock:
            self.in_flight -= 1
            if entry.kept_bytes >= 0:
                self.bytes += size - entry.kept_bytes
                entry.kept_bytes = size
                self._evict()
        self.notify()

    def _evict(self) -> None:
        """Drop the oldest entries past the entry or byte budget (lock held)."""
        entries = self._entries
        while len(entries) > 1 and (len(entries) > self.max_entries or self.bytes > self.max_bytes):
            old = entries.popleft()
            self.bytes -= old.kept_bytes
            self.dropped_entries += 1
            self.dropped_bytes += old.kept_bytes
            old.kept_bytes = -1

    def mark_disconnect(self, entry: JournalEntry, *, cancel: bool) -> None:
        with self._lock:
            if entry.disconnected:
                return
            entry.disconnected = True
            entry.t_disconnected = time.monotonic()
            if cancel:
                self.cancels += 1
        self.notify()

    def connection_opened(self) -> None:
        with self._lock:
            self.open_connections += 1
            self.connections_total += 1
        self.notify()

    def connection_closed(self) -> None:
        with self._lock:
            self.open_connections -= 1
        self.notify()

    def notify(self) -> None:
        """Wake waiters; a no-op (no lock taken) while nobody waits."""
        if not self._sync_waiters and not self._async_waiters:
            return
        with self._cond:
            self._cond.notify_all()
            waiters = list(self._async_waiters)
        for loop, event in waiters:
            # A RuntimeError means the waiter's loop is closed: it is not waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    # -- reader side ----------------------------------------------------------------------
    @property
    def entries(self) -> list[JournalEntry]:
        """A snapshot list of all entries (the entries themselves are live objects)."""
        with self._lock:
            return list(self._entries)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def find(
        self,
        *,
        path: str | None = None,
        method: str | None = None,
        generation: bool | None = None,
    ) -> list[JournalEntry]:
        return [
            e
            for e in self.entries
            if (path is None or e.path == path)
            and (method is None or e.method == method)
            and (generation is None or e.generation == generation)
        ]

    def last(self) -> JournalEntry | None:
        with self._lock:
            return self._entries[-1] if self._entries else None

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {
                "open_connections": self.open_connections,
                "connections_total": self.connections_total,
                "in_flight": self.in_flight,
                "cancels": self.cancels,
                "requests": self.requests_total,
            }

    def clear(self) -> None:
        """Forget entries and the cancel count (open connections and in-flight stay true)."""
        with self._lock:
            for e in self._entries:
                e.kept_bytes = -1
            self._entries.clear()
            self.bytes = 0
            self.dropped_entries = 0
            self.dropped_bytes = 0
            self.cancels = 0
            self.requests_total = 0
            self.connections_total = self.open_connections
        self.notify()

    def to_dict(self, *, frames: bool = True, timing: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "counters": self.counters(),
            "entries": [e.to_dict(frames=frames, timing=timing) for e in self.entries],
        }
        with self._lock:
            if self.dropped_entries:
                out["dropped"] = {
                    "entries": self.dropped_entries,
                    "bytes": self.dropped_bytes,
                    "note": (
                        f"the oldest {self.dropped_entries} entries were dropped to keep the "
                        f"journal within {self.max_entries} entries and {self.max_bytes} bytes"
                    ),
                }
        return out

    def wait_for_sync(self, predicate: Callable[[Journal], Any], timeout: float) -> Any:
        """Block until ``predicate(journal)`` is truthy; return its value. TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._sync_waiters += 1
        try:
            while True:
                value = predicate(self)
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"journal condition not met within {timeout} s")
                with self._cond:
                    self._cond.wait(min(remaining, 0.05))
        finally:
            with self._cond:
                self._sync_waiters -= 1

    async def wait_for(self, predicate: Callable[[Journal], Any], timeout: float) -> Any:  # noqa: ASYNC109
        """Await until ``predicate(journal)`` is truthy; return its value. TimeoutError after ``timeout`` s.

        Works on asyncio directly; on other async backends it falls back to a worker thread.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            import anyio.to_thread

            return await anyio.to_thread.run_sync(
                self.wait_for_sync, predicate, timeout, abandon_on_cancel=True
            )
        event = asyncio.Event()
        waiter = (loop, event)
        with self._cond:
            self._async_waiters.append(waiter)
        try:
            deadline = loop.time() + timeout
            while True:
                event.clear()
                value = predicate(self)
                if value:
                    return value
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError(f"journal condition not met within {timeout} s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(remaining, 0.05))
        finally:
            with self._cond:
                self._async_waiters.remove(waiter)


def headers_from_scope(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]


def header_map(pairs: Iterable[tuple[str, str]]) -> Mapping[str, str]:
    return {k.lower(): v for k, v in pairs}
