"""Incremental ``text/event-stream`` decoder over raw bytes (WHATWG HTML §9.2 "event stream").

Wire facts and choices, and where they come from:

* Parsing follows the WHATWG interpretation rules: lines end in CRLF, LF or CR (a CR at the end of
  one chunk and an LF at the start of the next are one line end); one leading UTF-8 BOM is
  dropped; ``:`` starts a comment (llama.cpp and TGI keep-alives are ``:\\n\\n``, engine-dialects
  §0); ``field:value`` with one optional space removed (TGI on axum 0.6 sends ``data:`` without
  it); ``data`` lines are joined with ``\\n``; ``event``; ``id`` ignored when it contains NUL;
  ``retry`` only when all ASCII digits; unknown fields ignored; a blank line dispatches, but only
  if at least one ``data`` field was seen. End of stream discards an unfinished event (spec), and
  :attr:`SSEDecoder.truncated` says so, so callers can call it a reset.
* Only CR and LF end lines. Never ``str.splitlines()``: U+2028, U+0085 and friends are ordinary
  characters inside tokens (DESIGN.md ecosystem facts).
* Text decoding is per complete field value, as UTF-8 with U+FFFD for invalid bytes. Because CR,
  LF, ``:`` and space are ASCII and never part of a multi-byte sequence, this gives exactly what
  decoding the whole stream first would, and a character split across chunks is decoded whole.
* ``SSEEvent.id`` is the *last event ID* in force when the event was dispatched (it persists
  across events, per spec); ``SSEEvent.retry`` is a ``retry`` field seen in this event's block.
* Limits (``max_line_bytes``, ``max_event_bytes``) raise :class:`SSEDecodeError`: a hostile or
  broken engine cannot make us buffer without bound.

Speed: this is the per-token path. Lines are cut with ``bytes.split(b"\\n")`` in C; CR handling
runs only when a CR is present; a partial line is kept as a list of pieces (no quadratic
re-joining of a long line arriving in small chunks); text is decoded once per event.
"""

from __future__ import annotations

from dataclasses import dataclass

from llorch_conformance.adapters.api import SSEDecodeError

__all__ = ["SSEDecoder", "SSEEvent"]

_BOM = b"\xef\xbb\xbf"
_CR = b"\r"
_LF = b"\n"
_NUL = b"\x00"
# int() refuses strings over 4300 digits; a retry value above 2**63 ms is nonsense anyway.
_MAX_RETRY_DIGITS = 18


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched server-sent event."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


class _EventShell:
    """Same slot layout as :class:`SSEEvent`, but mutable.

    Why: the frozen dataclass ``__init__`` makes four ``object.__setattr__`` calls, which is the
    largest single cost per token. The hot path fills a shell with plain slot stores and then
    turns it into a real :class:`SSEEvent` by ``__class__`` assignment (allowed between classes
    with identical slot layouts): same type, equality, hash, repr and immutability, 3-5x cheaper.
    If an interpreter refuses the assignment, ``_SHELL_OK`` is false and the normal constructor
    is used.
    """

    __slots__ = ("event", "data", "id", "retry")  # noqa: RUF023 - mirrors SSEEvent's fields
    event: str
    data: str
    id: str | None
    retry: int | None


def _shell_works() -> bool:
    try:
        shell = object.__new__(_EventShell)
        shell.event, shell.data, shell.id, shell.retry = "message", "", None, None
        shell.__class__ = SSEEvent  # type: ignore[assignment]
    except TypeError:  # pragma: no cover - other interpreters
        return False
    made: object = shell
    return type(made) is SSEEvent and made == SSEEvent()


_SHELL_OK = _shell_works()
_new = object.__new__


def _message_events(values: list[bytes], last_id: str | None) -> list[SSEEvent]:
    """``message`` events for already-unprefixed data values (the fast paths)."""
    if not _SHELL_OK:  # pragma: no cover - other interpreters
        return [SSEEvent("message", v.decode("utf-8", "replace"), last_id, None) for v in values]
    out: list[SSEEvent] = []
    append = out.append
    new = object.__new__
    shell_cls, event_cls = _EventShell, SSEEvent
    for value in values:
        ev = new(shell_cls)
        ev.event = "message"
        ev.data = value.decode("utf-8", "replace")
        ev.id = last_id
        ev.retry = None
        ev.__class__ = event_cls  # type: ignore[assignment]
        append(ev)  # type: ignore[arg-type]
    return out


class SSEDecoder:
    """Feed raw bytes, get complete :class:`SSEEvent` objects; keep partial state between feeds.

    ``comments`` counts comment lines (keep-alives), ``last_event_id`` and ``retry_ms`` hold the
    stream-level state the spec keeps across events, ``truncated`` is set by :meth:`close` when the
    stream ended inside a line or an undispatched event. After an :class:`SSEDecodeError` the
    decoder refuses further input: its state is no longer trustworthy.
    """

    __slots__ = (
        "_at_start",
        "_data",
        "_data_size",
        "_event",
        "_failed",
        "_head",
        "_max_event",
        "_max_line",
        "_pending",
        "_pending_size",
        "_retry",
        "_skip_lf",
        "comments",
        "last_event_id",
        "retry_ms",
        "truncated",
    )

    def __init__(self, *, max_line_bytes: int = 1 << 20, max_event_bytes: int = 4 << 20) -> None:
        if max_line_bytes < 1 or max_event_bytes < 1:
            raise ValueError("SSEDecoder limits must be positive")
        self._max_line = max_line_bytes
        self._max_event = max_event_bytes
        self._at_start = True
        self._head = b""
        self._skip_lf = False
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._data: list[bytes] = []
        self._data_size = 0
        self._event: bytes | None = None
        self._retry: int | None = None
        self._failed = False
        self.comments = 0
        self.last_event_id: str | None = None
        self.retry_ms: int | None = None
        self.truncated = False

    # -- input ------------------------------------------------------------------------------
    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume ``chunk`` and return the events it completed (possibly none)."""
        if self._failed:
            raise SSEDecodeError("SSE decoder already failed on earlier input")
        if not chunk:
            return []
        # Fast path for the commonest live shape: exactly one "data:" line and its blank line in
        # one network chunk, nothing pending. Same result as the general path, fewer steps.
        if (
            chunk[-2:] == b"\n\n"
            and chunk[:5] == b"data:"
            and chunk.count(_LF) == 2
            and _CR not in chunk
            and not self._pending
            and not self._data
            and self._event is None
            and self._retry is None
            and not self._at_start
            and not self._skip_lf
            and len(chunk) <= self._max_line
            and len(chunk) < self._max_event
        ):
            value = (chunk[6:-2] if chunk[5] == 0x20 else chunk[5:-2]).decode("utf-8", "replace")
            if not _SHELL_OK:  # pragma: no cover - other interpreters
                return [SSEEvent("message", value, self.last_event_id, None)]
            ev = _new(_EventShell)
            ev.event = "message"
            ev.data = value
            ev.id = self.last_event_id
            ev.retry = None
            ev.__class__ = SSEEvent  # type: ignore[assignment]
            return [ev]  # type: ignore[list-item]
        if self._at_start:
            head = self._head + chunk
            if len(head) < 3 and _BOM.startswith(head):
                self._head = head
                return []
            self._at_start = False
            self._head = b""
            chunk = head[3:] if head.startswith(_BOM) else head
            if not chunk:
                return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[0] == 0x0A:
                chunk = chunk[1:]
                if not chunk:
                    return []
        if _CR in chunk:
            if self._pending:
                chunk = b"".join(self._pending) + chunk
                self._pending.clear()
                self._pending_size = 0
            chunk = chunk.replace(b"\r\n", _LF)
            if chunk[-1] == 0x0D:
                # This CR ends a line now; an LF opening the next chunk belongs to it.
                self._skip_lf = True
            chunk = chunk.replace(_CR, _LF)
        elif _LF not in chunk:
            self._pending.append(chunk)
            self._pending_size += len(chunk)
            if self._pending_size > self._max_line:
                self._fail(f"SSE line longer than {self._max_line} bytes")
            return []
        elif self._pending:
            chunk = b"".join(self._pending) + chunk
            self._pending.clear()
            self._pending_size = 0
        if len(chunk) > self._max_line and max(map(len, chunk.split(_LF))) > self._max_line:
            self._fail(f"SSE line longer than {self._max_line} bytes")
        # Cut at blank lines first: the usual block is one "data: ..." line, which becomes an
        # event without walking lines. ``B1\n\nB2\n\nR`` is exactly the lines of B1, a blank
        # line, the lines of B2, a blank line, then R (complete lines + a partial one).
        out: list[SSEEvent] | None = None
        cut = chunk.rfind(b"\n\n") + 2
        if cut > 1:
            if not self._data and self._event is None and self._retry is None:
                out = self._bulk(chunk, cut)
            if out is None:
                out = []
                self._blocks(chunk[: cut - 2].split(b"\n\n"), out)
            if cut == len(chunk):
                return out
            tail = chunk[cut:]
        else:
            out = []
            tail = chunk
        lines = tail.split(_LF)
        rest = lines.pop()
        if rest:
            self._pending.append(rest)
            self._pending_size = len(rest)
        if lines:
            self._lines(lines, out)
        return out

    def close(self) -> list[SSEEvent]:
        """End of stream. Per spec an unfinished event is discarded, so this returns no events;
        :attr:`truncated` tells whether anything was discarded (a partial line or an event whose
        terminating blank line never came)."""
        if self._failed:
            return []
        self.truncated = bool(self._pending or self._head or self._data or self._event is not None)
        self._pending.clear()
        self._pending_size = 0
        self._head = b""
        self._reset_event()
        return []

    @property
    def pending_bytes(self) -> int:
        """Bytes held for an unfinished line (for diagnostics)."""
        return self._pending_size + len(self._head)

    # -- internals --------------------------------------------------------------------------
    def _fail(self, message: str) -> None:
        self._failed = True
        self._pending.clear()
        self._data.clear()
        raise SSEDecodeError(message)

    def _reset_event(self) -> None:
        self._data = []
        self._data_size = 0
        self._event = None
        self._retry = None

    def _bulk(self, chunk: bytes, cut: int) -> list[SSEEvent] | None:
        """Every block of ``chunk[:cut]`` at once, if each is a lone data line; else ``None``.

        The proof is by counting in C. With ``2n`` LFs in the run and ``n - 1`` occurrences of
        ``"\n\n" + prefix`` (prefix ``data: `` or ``data:``, as the run starts), all LFs sit in
        those separators and the final ``\n\n``: there are ``n`` blocks, each one line with that
        prefix. One split then gives every value. Only called on a clean state.
        """
        if cut > self._max_event:
            return None  # let the general path measure each event against the limit
        lf = chunk.count(_LF, 0, cut)
        n = lf >> 1
        if chunk.startswith(b"data: "):
            if chunk.count(b"\n\ndata: ", 0, cut) != n - 1:
                return None
            values = chunk[6 : cut - 2].split(b"\n\ndata: ")
        elif chunk.startswith(b"data:"):
            # TGI on axum 0.6 omits the space; then no block may start with one either.
            if chunk.count(b"\n\ndata:", 0, cut) != n - 1 or chunk.count(b"\n\ndata: ", 0, cut):
                return None
            values = chunk[5 : cut - 2].split(b"\n\ndata:")
        else:
            return None
        if lf & 1:
            return None
        return _message_events(values, self.last_event_id)

    def _blocks(self, blocks: list[bytes], out: list[SSEEvent]) -> None:
        """Each block is followed by a blank line. Fast path: a lone ``data`` line on a clean
        state (no fields pending) is dispatched directly; anything else walks its lines."""
        max_event = self._max_event
        if len(blocks) > 8:
            # Every block ends with a blank line, which leaves a clean state (no data, event or
            # retry pending), so an empty block after the first one dispatches nothing: drop
            # them in C (a flood of blank lines must not cost a Python step per line pair).
            blocks = [blocks[0], *filter(None, blocks[1:])]
        for block in blocks:
            if _LF not in block and not self._data and self._event is None and self._retry is None:
                if block[:5] == b"data:":
                    value = block[6:] if block[5:6] == b" " else block[5:]
                    if len(value) >= max_event:
                        self._fail(f"SSE event larger than {max_event} bytes")
                    out.append(
                        SSEEvent(
                            "message", value.decode("utf-8", "replace"), self.last_event_id, None
                        )
                    )
                    continue
                if block[:1] == b":":
                    self.comments += 1
                    continue
            lines = block.split(_LF)
            lines.append(b"")
            self._lines(lines, out)

    def _lines(self, lines: list[bytes], out: list[SSEEvent]) -> None:
        data = self._data
        for line in lines:
            if not line:
                if data:
                    payload = (data[0] if len(data) == 1 else _LF.join(data)).decode(
                        "utf-8", "replace"
                    )
                    ev = self._event
                    out.append(
                        SSEEvent(
                            ev.decode("utf-8", "replace") if ev else "message",
                            payload,
                            self.last_event_id,
                            self._retry,
                        )
                    )
                    data = self._data = []
                    self._data_size = 0
                self._event = None
                self._retry = None
                continue
            if line.startswith(b"data:"):
                value = line[6:] if line[5:6] == b" " else line[5:]
            else:
                if line[0] == 0x3A:  # ':'
                    self.comments += 1
                    continue
                name, colon, value = line.partition(b":")
                if colon and value[:1] == b" ":
                    value = value[1:]
                if name == b"event":
                    self._event = value
                    continue
                if name == b"id":
                    if _NUL not in value:
                        self.last_event_id = value.decode("utf-8", "replace")
                    continue
                if name == b"retry":
                    if value.isdigit():
                        digits = value.lstrip(b"0")
                        if len(digits) <= _MAX_RETRY_DIGITS:
                            self._retry = self.retry_ms = int(digits or b"0")
                    continue
                if name != b"data":
                    continue
            data.append(value)
            self._data_size += len(value) + 1
            if self._data_size > self._max_event:
                self._fail(f"SSE event larger than {self._max_event} bytes")
